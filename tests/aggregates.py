"""The schema the aggregation tests share (tests/unit, tests/behaviour, tests/reliability):
every kind an aggregation groups by or measures, nullable and not, and the kinds it refuses."""

from __future__ import annotations

from keyspace.declare import boolean, decimal, enum, integer, string, table, text, timestamp
from keyspace.schema import IdStrategy, Schema
from keyspace.system import System

LOT = table(
    "lot",
    collection="lots",
    id=IdStrategy.CUID,
    fields=(
        enum("side", ("buy", "sell"), index=True),
        string("owner", null=True, case_insensitive=True, index=True),  # folded tags
        boolean("hot", null=True, index=True),
        # DECIMAL(15,6) as The Construct's amounts, and a nullable DECIMAL(5,2).
        decimal("price", max_digits=15, places=6, index=True, sortable=True),
        decimal("fee", null=True, max_digits=5, places=2, index=True),
        integer("qty", null=True, index=True),
        timestamp("at", null=True, index=True),
        decimal("rate", null=True, index=True),  # no places: refused
        string("tags", null=True),
        text("title", null=True),
    ),
)
ACCOUNT = table("account", collection="accounts", id=IdStrategy.CUID, fields=(), owner="id")
SYSTEM = System(
    name="aggregates",
    title="aggregates",
    schema=Schema((ACCOUNT, LOT)),
    namespace="aggregates:",
    principal="account",
).served()
LOTS = SYSTEM.schema.entity("lot")
