"""The DSL's field kinds in list queries: the same answers on fakeredis, through RediSearch
and through the scan path (booleans, exact decimals, enums, nullable fields)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import fakeredis
import pytest
from redis.asyncio import Redis

from keyspace import Keyspace, ValidationFailed, connect, parse, search
from keyspace.connection import call
from keyspace.declare import (
    bigint,
    boolean,
    decimal,
    enum,
    integer,
    string,
    table,
    text,
    timestamp,
)
from keyspace.schema import IdStrategy, Schema
from keyspace.server import EmbeddedRedis
from keyspace.system import System
from tests.conftest import BACKENDS

DECLARED = table(
    "item",
    collection="items",
    id=IdStrategy.CUID,
    fields=(
        boolean("isActive", default=True, index=True, sortable=True),
        decimal("price", index=True, sortable=True),
        decimal("fee", null=True, index=True),
        decimal("pct", max_digits=5, places=2, default="0", index=True, sortable=True),
        enum("status", ("pending", "completed", "failed"), default="pending", index=True),
        string("note", null=True, index=True),
        integer("qty", default=0, index=True, sortable=True),
        bigint("block", null=True),
        timestamp("at", null=True, index=True),
        text("title", null=True),
    ),
)
ACCOUNT = table("account", collection="accounts", id=IdStrategy.CUID, fields=(), owner="id")
# Served like any system (namespaced keys, an entity owning the tokens), as a system would be.
SYSTEM = System(
    name="fieldkinds",
    title="field kinds",
    schema=Schema((ACCOUNT, DECLARED)),
    namespace="fieldkinds:",
    principal="account",
).served()
ITEM = SYSTEM.schema.entity("item")


@pytest.fixture(params=BACKENDS)
async def kks(request: pytest.FixtureRequest) -> AsyncIterator[Keyspace]:
    """A Keyspace serving the test schema on fakeredis, and on the real server through
    RediSearch and through the scan path."""
    backend: str = request.param
    client: Redis
    if backend == "fake":
        client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), protocol=2)
    else:
        server: EmbeddedRedis = request.getfixturevalue("redis_server")
        client = connect(server.url)
        await client.flushall()
    use_search = None if backend != "real-scan" else False
    keyspace = Keyspace(client, SYSTEM.schema, use_search=use_search)
    await keyspace.setup()
    yield keyspace
    await client.aclose()


def cid(n: int) -> str:
    return f"c{n:024d}"


async def add(ks: Keyspace, n: int, **data: Any) -> dict[str, Any]:
    return (await ks.create(ITEM, {"id": cid(n), "price": "1", **data})).doc


async def listed(ks: Keyspace, **params: str | list[str]) -> list[int]:
    page = await ks.list(
        ITEM, parse(ITEM, {k: v if isinstance(v, list) else [v] for k, v in params.items()})
    )
    return [int(d["id"][1:]) for d in page.items]


async def walk(ks: Keyspace, sort: str, limit: int = 2) -> list[int]:
    """Every document along ``next_cursor`` pages of ``limit``."""
    seen: list[int] = []
    cursor: str | None = None
    while True:
        params = {"sort": [sort], "limit": [str(limit)], **({"cursor": [cursor]} if cursor else {})}
        page = await ks.list(ITEM, parse(ITEM, params))
        seen += [int(d["id"][1:]) for d in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return seen


async def test_stored_forms_are_what_a_read_returns(kks: Keyspace) -> None:
    made = await add(kks, 1, price=0.1, pct=12.5, block=2**60, fee="-0")
    assert (made["price"], made["pct"], made["block"], made["fee"]) == (
        "0.1",
        "12.50",
        "1152921504606846976",
        "0",
    )
    assert (made["note"], made["at"], made["title"]) == (None, None, None)
    assert (await kks.get(ITEM, cid(1))).doc == made
    with pytest.raises(ValidationFailed, match="at most 2"):
        await add(kks, 2, pct="12.345")
    with pytest.raises(ValidationFailed, match="15 significant digits"):
        await add(kks, 2, price=0.1 + 0.2)


async def test_boolean_filters(kks: Keyspace) -> None:
    await add(kks, 1, isActive=True)
    await add(kks, 2, isActive=False)
    await add(kks, 3)  # default true
    assert await listed(kks, isActive="true") == [1, 3]
    assert await listed(kks, isActive="false") == [2]
    assert await listed(kks, isActive=["false", "true"]) == [1, 2, 3]
    with pytest.raises(ValidationFailed, match="true or false"):
        await listed(kks, isActive="1")
    await kks.patch(ITEM, cid(1), {"isActive": False})
    assert await listed(kks, isActive="false") == [1, 2]


NEIGHBOURS = {1: "0.3", 2: "0.300000000000001", 3: "0.299999999999999", 4: "0.1", 5: "0.2"}


async def test_decimal_equality_and_ranges_are_exact(kks: Keyspace) -> None:
    for n, price in NEIGHBOURS.items():
        await add(kks, n, price=price)
    assert await listed(kks, price="0.3") == [1]
    assert await listed(kks, price="0.30") == [1]
    assert await listed(kks, price=["0.1", "0.2"]) == [4, 5]
    assert await listed(kks, price="0.300000000000001") == [2]
    assert await listed(kks, price_min="0.3") == [1, 2]
    assert await listed(kks, price_max="0.3") == [1, 3, 4, 5]
    assert await listed(kks, price_min="0.2", price_max="0.299999999999999") == [3, 5]
    with pytest.raises(ValidationFailed, match="15 significant digits"):
        await listed(kks, price_min="0.3000000000000001")  # cannot be compared exactly
    page = await kks.list(ITEM, parse(ITEM, {"price_min": ["0.2"], "price_max": ["0.3"]}))
    assert page.total == 3


async def test_decimal_sort_and_cursor_walk(kks: Keyspace) -> None:
    prices = {1: "10", 2: "9.5", 3: "100", 4: "-1", 5: "0.0000001", 6: "9.5", 7: "0.3"}
    for n, price in prices.items():
        await add(kks, n, price=price)
    ascending = [4, 5, 7, 2, 6, 1, 3]  # numeric order, ties by id
    assert await listed(kks, sort="price") == ascending
    assert await listed(kks, sort="-price") == ascending[::-1]
    assert await walk(kks, "price") == ascending
    assert await walk(kks, "-price", limit=3) == ascending[::-1]
    places = {1: "12.5", 2: "12.05", 3: "2.5", 4: "100"}
    for n, pct in places.items():
        await kks.patch(ITEM, cid(n), {"pct": pct})
    assert await walk(kks, "pct") == [5, 6, 7, 3, 2, 1, 4]


async def test_boolean_sort_and_cursor_walk(kks: Keyspace) -> None:
    for n, active in enumerate([True, False, True, False, True], start=1):
        await add(kks, n, isActive=active)
    assert await walk(kks, "isActive") == [2, 4, 1, 3, 5]
    assert await walk(kks, "-isActive") == [5, 3, 1, 4, 2]


async def test_enum_and_integer_filters(kks: Keyspace) -> None:
    await add(kks, 1, status="completed", qty=3)
    await add(kks, 2, status="failed", qty=2**53 - 1)
    await add(kks, 3, qty=-5)
    assert await listed(kks, status="completed") == [1]
    assert await listed(kks, status=["pending", "failed"]) == [2, 3]
    assert await listed(kks, status="done") == []
    assert await listed(kks, qty_min="0", sort="-qty") == [2, 1]
    assert await listed(kks, qty=str(2**53 - 1)) == [2]


async def test_nulls_never_match_and_never_hide_a_document(kks: Keyspace) -> None:
    await add(kks, 1, note="x", fee="0.5", at="2025-01-01T00:00:00")
    await add(kks, 2)  # every nullable field null
    await add(kks, 3, note="y", fee="0")
    assert await listed(kks) == [1, 2, 3]  # a null indexed attribute keeps its document
    assert await listed(kks, sort="-price") == [3, 2, 1]
    assert await listed(kks, note="x") == [1]
    assert await listed(kks, fee_min="-100") == [1, 3]
    assert await listed(kks, fee="0") == [3]
    assert await listed(kks, at_max="2030-01-01T00:00:00") == [1]
    await kks.patch(ITEM, cid(1), {"note": None, "fee": None})
    assert await listed(kks, note="x") == []
    assert await listed(kks, fee_min="-100") == [3]
    assert (await kks.get(ITEM, cid(1))).doc["note"] is None
    if kks.capabilities.search:  # the server indexed every projection, none refused
        name = await search.alias_target(kks.client, ITEM)
        assert name is not None
        info = search.parse_info(await call(kks.client, "FT.INFO", name))
        assert (int(info["num_docs"]), int(info["hash_indexing_failures"])) == (3, 0)
