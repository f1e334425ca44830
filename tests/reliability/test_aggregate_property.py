"""Property (issue 16, "Aggregations"): for random documents and random aggregations, the
index path (RediSearch), the scan path (on fakeredis and on the real server) and a brute-force
answer computed here with :class:`fractions.Fraction` all agree, exactly.

Documents draw decimals that doubles do not hold (0.1, 0.2), 15-digit ones at the top of
DECIMAL(15,6), negatives, integers up to 2^53 - 1 (so sums pass 2^53), case variants of a
folded tag (and tags one a prefix of another, and non-ASCII ones), booleans, timestamps and
nulls everywhere a field may be null. Aggregations group by 0 to 2 fields (nullable decimals
among them), ask every metric, filter by the lists' filters, and order the groups ascending or
descending (null last, the limit taken at that end). ``make test`` runs the ci budget;
``make soak`` the larger one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

import fakeredis
import pytest
from hypothesis import HealthCheck, assume, given, settings, target
from hypothesis import strategies as st
from redis.asyncio import Redis

from keyspace import Keyspace, ValidationFailed, connect, parse_aggregation
from keyspace.server import EmbeddedRedis
from keyspace.text import fold
from tests.aggregates import LOTS, SYSTEM

from .conftest import Figures

PRICES = [
    "0.1", "0.2", "0.3", "-0.3", "0.000001", "999999999.999999", "999999999.999998",
    "123456789.123456", "-999999999.999999", "1", "2.5", "100",
]  # fmt: skip
BIG = 2**53 - 1

lot = st.fixed_dictionaries(
    {
        "side": st.sampled_from(["buy", "sell"]),
        "owner": st.sampled_from(
            [None, "Ann", "ann", "ANN", "Anna", "Bo", "ß", "ss", "SS", "é", "z"]
        ),
        "hot": st.sampled_from([None, True, False]),
        "price": st.one_of(
            st.sampled_from(PRICES),
            st.decimals(-(10**9) + 1, 10**9 - 1, places=6).map(str),
        ),
        "fee": st.one_of(st.none(), st.sampled_from(["0.1", "0.2", "999.99", "-0.01", "0"])),
        "qty": st.one_of(st.none(), st.sampled_from([BIG, -BIG, 0, 1, 7]), st.integers(-50, 50)),
        "at": st.sampled_from([None, "2024-01-01T00:00:00Z", "2024-06-01T12:00:00Z"]),
    }
)
# Few documents, and crowds of them: many groups, so that a small limit leaves groups out and
# the index's SORTBY ... MAX, not Python, decides which are answered.
lots = st.one_of(st.lists(lot, max_size=14), st.lists(lot, min_size=12, max_size=30))
GROUPS = ["side", "owner", "hot", "price", "fee", "qty", "at"]
METRICS = [f"{op}:{f}" for op in ("sum", "min", "max", "avg") for f in ("price", "fee", "qty")]
asked = st.fixed_dictionaries(
    {
        "group_by": st.lists(st.sampled_from(GROUPS), max_size=2, unique=True),
        "metrics": st.lists(
            st.sampled_from(["count", *METRICS]), min_size=1, max_size=8, unique=True
        ),
        "limit": st.sampled_from([None, "1", "3"]),
        "order": st.sampled_from([None, "asc", "desc"]),
        "filters": st.lists(
            st.sampled_from(
                [
                    ("side", "buy"),
                    ("owner", "ANN"),
                    ("hot", "true"),
                    ("price_min", "0.2"),
                    ("price_max", "0.3"),
                    ("qty_min", "1"),
                    ("fee", "0.10"),
                    ("at_min", "2024-03-01T00:00:00Z"),
                ]
            ),
            max_size=2,
            unique_by=lambda f: f[0],
        ),
    }
)
PLACES = {"price": 6, "fee": 2}


# --- the brute force: the documented rules, written out with Fractions -----------------------


def _number(name: str, value: Any) -> Fraction | None:
    if value is None:
        return None
    return Fraction(Decimal(value)) if name in PLACES else Fraction(value)


def _text(name: str, value: Fraction) -> Any:
    if name not in PLACES:
        return int(value)
    return f"{Decimal(value.numerator) / Decimal(value.denominator):.{PLACES[name]}f}"


def _average(name: str, values: list[Fraction]) -> Any:
    mean = sum(values, Fraction(0)) / len(values)
    if name not in PLACES:
        return mean.numerator / mean.denominator
    digits = PLACES[name] + 6
    rounded = round(mean * 10**digits)  # half-even
    text = f"{Decimal(rounded).scaleb(-digits):.{digits}f}"
    whole, fraction = text.split(".")
    fraction = fraction.rstrip("0").ljust(PLACES[name], "0")
    return f"{whole}.{fraction}" if fraction else whole


def _passes(doc: Mapping[str, Any], filters: list[tuple[str, str]]) -> bool:
    for name, value in filters:
        field, _, bound = name.rpartition("_")
        if bound in ("min", "max") and field in ("price", "qty", "at"):
            have = doc.get(field)
            if have is None:
                return False
            if field == "at":
                have, value = have[:19], value[:19]  # one zone: compare the text
                ok = have >= value if bound == "min" else have <= value
            else:
                have, limit = _number(field, have), _number(field, value)
                assert have is not None and limit is not None
                ok = have >= limit if bound == "min" else have <= limit
            if not ok:
                return False
        elif name == "owner":
            if doc.get("owner") is None or fold(doc["owner"]) != fold(value):
                return False
        elif name == "hot":
            if doc.get("hot") is not (value == "true"):
                return False
        elif name == "fee":
            if doc.get("fee") is None or Decimal(doc["fee"]) != Decimal(value):
                return False
        elif doc.get(name) != value:
            return False
    return True


def _key(doc: Mapping[str, Any], name: str) -> Any:
    value = doc.get(name)
    if value is None:
        return None
    if name == "owner":
        return fold(value)
    if name in PLACES:
        return Fraction(Decimal(value))
    if name == "at":
        return value.replace("Z", "")  # as stored: the engine's ISO form
    return value


def brute_force(docs: list[dict[str, Any]], ask: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The answer, and how many groups it left out past the limit."""
    chosen = [d for d in docs if _passes(d, ask["filters"])]
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for doc in chosen:
        groups.setdefault(tuple(_key(doc, g) for g in ask["group_by"]), []).append(doc)
    if not ask["group_by"] and not groups:
        groups[()] = []
    order = sorted(
        groups, key=lambda k: [(v is not None, v) for v in k], reverse=ask["order"] == "desc"
    )
    limit = int(ask["limit"] or 1000)
    out = []
    for key in order[:limit]:
        members = groups[key]
        shown = {
            g: (_text(g, v) if g in PLACES and v is not None else v)
            for g, v in zip(ask["group_by"], key, strict=True)
        }
        row: dict[str, Any] = {"key": shown}
        for metric in ask["metrics"]:
            if metric == "count":
                row["count"] = len(members)
                continue
            op, name = metric.split(":")
            values = [n for d in members if (n := _number(name, d.get(name))) is not None]
            if not values:
                row[metric] = None
            elif op == "avg":
                row[metric] = _average(name, values)
            else:
                pick = {"sum": sum(values, Fraction(0)), "min": min(values), "max": max(values)}
                row[metric] = _text(name, pick[op])
        out.append(row)
    return {"groups": out, "truncated": len(order) > limit}, len(order) - len(out)


# --- the property -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    name: str
    examples: int


BUDGETS = [
    pytest.param(Budget("ci", examples=50), id="ci"),
    pytest.param(Budget("soak", examples=500), id="soak", marks=pytest.mark.soak),
]
BACKENDS = [
    pytest.param("fakeredis", id="fakeredis"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
]


async def _keyspaces(request: pytest.FixtureRequest, backend: str) -> list[Keyspace]:
    """The scan path on fakeredis; on the real server, RediSearch and the scan path."""
    client: Redis
    if backend == "fakeredis":
        client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), protocol=2)
        uses = [False]
    else:
        server: EmbeddedRedis = request.getfixturevalue("redis_server")
        client = connect(server.url)
        await client.flushall()
        uses = [True, False]
    out = []
    for use in uses:
        ks = Keyspace(client, SYSTEM.schema, use_search=use)
        await ks.setup()
        assert ks.capabilities.search is use
        out.append(ks)
    return out


async def _wipe(client: Redis) -> None:
    """Delete every key but keep the indexes (no rebuild per example): documents, their
    projections and claims; nothing an aggregation reads is a singleton's."""
    found = [k async for k in client.scan_iter(count=1000)]
    for start in range(0, len(found), 500):
        await client.delete(*found[start : start + 500])


def _params(ask: dict[str, Any]) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {"metrics": [",".join(ask["metrics"])]}
    if ask["group_by"]:
        params["group_by"] = [",".join(ask["group_by"])]
    if ask["limit"]:
        params["limit"] = [ask["limit"]]
    if ask["order"]:
        params["order"] = [ask["order"]]
    for name, value in ask["filters"]:
        params[name] = [value]
    return params


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_index_scan_and_brute_force_agree(
    request: pytest.FixtureRequest, figures: Figures, backend: str, budget: Budget
) -> None:
    loop = asyncio.new_event_loop()
    keyspaces = loop.run_until_complete(_keyspaces(request, backend))
    client = keyspaces[0].client
    totals = {"examples": 0, "documents": 0, "groups": 0, "cut": 0}

    @settings(
        max_examples=budget.examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(drawn=lots, ask=asked)
    def check(drawn: list[dict[str, Any]], ask: dict[str, Any]) -> None:
        async def one() -> None:
            await _wipe(client)
            docs = []
            for fields in drawn:
                body = {k: v for k, v in fields.items() if v is not None}
                docs.append((await keyspaces[0].create(LOTS, body)).doc)
            expected, cut = brute_force(docs, ask)
            # Steer towards many groups past the limit: where the index's SORTBY ... MAX
            # decides which groups are answered, ascending and descending.
            target(float(min(cut, 6)), label="groups past the limit")
            try:
                aggregation = parse_aggregation(LOTS, _params(ask))
            except ValidationFailed as exc:  # past MAX_COMMANDS: refused by design
                assume("index commands" not in exc.message)
                raise
            for ks in keyspaces:
                answer = (await ks.aggregate(LOTS, aggregation)).body()
                assert answer == expected, (ks.capabilities.search, ask, drawn)
            totals["examples"] += 1
            totals["documents"] += len(docs)
            totals["groups"] += len(expected["groups"])
            totals["cut"] += cut

        loop.run_until_complete(one())

    started = time.perf_counter()
    try:
        check()
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()
    figures.record(
        f"aggregations: index, scan and brute force ({backend}, {budget.name})",
        **totals,
        seconds=round(time.perf_counter() - started, 1),
    )
