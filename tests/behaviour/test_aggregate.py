"""Aggregations through ``Keyspace.aggregate`` and declared ones through ``run_declared``, on
fakeredis, through RediSearch and through the scan path (the property against a brute-force
answer is tests/reliability/test_aggregate_property.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from keyspace import (
    Aggregate,
    Keyspace,
    NotReady,
    ValidationFailed,
    connect,
    parse_aggregation,
    run_declared,
    search,
)
from keyspace.connection import call
from keyspace.server import EmbeddedRedis
from tests.aggregates import LOTS, SYSTEM
from tests.conftest import BACKENDS, client_for

BOOK = Aggregate(
    "book",
    "lots",
    group_by=("side", "price"),
    metrics=("count", "sum:qty", "sum:fee"),
    filters=(("hot", "true"),),
)


@pytest.fixture(params=BACKENDS)
async def aks(request: pytest.FixtureRequest) -> AsyncIterator[Keyspace]:
    backend: str = request.param
    client = await client_for(request, backend)
    ks = Keyspace(client, SYSTEM.schema, use_search=None if backend != "real-scan" else False)
    await ks.setup()
    yield ks
    await client.aclose()


async def lots(ks: Keyspace) -> None:
    for side, price, qty, fee, owner in [
        ("buy", "0.1", 5, "0.1", "Ann"),
        ("buy", "0.1", 2, "0.2", "Bo"),
        ("buy", "0.2", 1, None, "ann"),
        ("sell", "999999999.999999", 9007199254740991, "999.99", "Ann"),
        ("sell", "999999999.999999", 9007199254740991, "999.99", "Ann"),
    ]:
        body = {"side": side, "price": price, "qty": qty, "hot": True, "owner": owner}
        await ks.create(LOTS, body if fee is None else {**body, "fee": fee})
    await ks.create(LOTS, {"side": "buy", "price": "0.1", "qty": 100, "hot": False})


async def test_a_declared_aggregation_runs_with_the_filters_a_request_fixes(
    aks: Keyspace,
) -> None:
    await lots(aks)
    everyone = await run_declared(aks, BOOK)
    assert everyone.body() == {
        "groups": [
            {"key": {"side": "buy", "price": "0.100000"}, "count": 2, "sum:qty": 7,
             "sum:fee": "0.30"},
            {"key": {"side": "buy", "price": "0.200000"}, "count": 1, "sum:qty": 1,
             "sum:fee": None},
            {"key": {"side": "sell", "price": "999999999.999999"}, "count": 2,
             "sum:qty": 18014398509481982, "sum:fee": "1999.98"},
        ],
        "truncated": False,
    }  # fmt: skip
    anns = await run_declared(aks, BOOK, {"owner": "ANN"})
    assert [(g.key["price"], g.values["count"]) for g in anns.groups] == [
        ("0.100000", 1),  # Ann
        ("0.200000", 1),  # ann: owner is caseless, as in lists
        ("999999999.999999", 2),
    ]
    with pytest.raises(ValidationFailed, match="qty_min: must be a number"):
        await run_declared(aks, BOOK, {"qty_min": "many"})


async def test_prices_sum_exactly_past_what_doubles_hold(aks: Keyspace) -> None:
    await lots(aks)
    asked = {"metrics": ["sum:price,avg:price,min:price,max:price"], "hot": ["true"]}
    (group,) = (await aks.aggregate(LOTS, parse_aggregation(LOTS, asked))).groups
    assert group.values == {
        "sum:price": "2000000000.399998",
        "avg:price": "400000000.0799996",
        "min:price": "0.100000",
        "max:price": "999999999.999999",
    }


BIDS = Aggregate(
    "bids",
    "lots",
    group_by=("price",),
    metrics=("count", "sum:qty"),
    filters=(("side", "buy"),),
    limit=2,
    descending=True,
)


async def crowd(ks: Keyspace) -> None:
    """More than 4 groups for every grouping below (within one index command where no
    decimal group field splits them), nulls among them, tags one a prefix of another and
    non-ASCII ones."""
    rows = [
        ("buy", "0.1", 5, None, "ann", True),
        ("buy", "0.2", None, "0.10", "Anna", False),
        ("buy", "10", 7, "0.10", None, None),
        ("buy", "2.5", -3, None, "é", True),
        ("buy", "10", 7, "999.99", "z", None),
        ("sell", "0.3", None, None, None, False),
        ("sell", "11", 12, "-0.01", "ann", True),
        ("sell", "0.1", 0, None, "Bo", None),
    ]
    for side, price, qty, fee, owner, hot in rows:
        body = {"side": side, "price": price, "qty": qty, "fee": fee, "owner": owner, "hot": hot}
        await ks.create(LOTS, {k: v for k, v in body.items() if v is not None})


async def test_descending_is_the_exact_reverse_and_the_limit_cuts_the_low_end(
    aks: Keyspace,
) -> None:
    await crowd(aks)

    async def groups(group_by: str, **more: str) -> tuple[list[dict[str, object]], bool]:
        asked = {"group_by": [group_by], **{k: [v] for k, v in more.items()}}
        answer = await aks.aggregate(LOTS, parse_aggregation(LOTS, asked))
        return [{**g.key, **g.values} for g in answer.groups], answer.truncated

    for group_by in ("price", "hot,qty", "owner,fee", "fee,owner", "at,hot,fee", "side,qty"):
        ascending, _ = await groups(group_by)
        descending, cut = await groups(group_by, order="desc")
        assert descending == ascending[::-1] and not cut, group_by
        assert len(descending) > 4, group_by
        for limit in ("1", "2", "3"):
            top = await groups(group_by, order="desc", limit=limit)
            assert top == (descending[: int(limit)], True), (group_by, limit)
    hot_qty, _ = await groups("hot,qty", order="desc")
    assert [(g["hot"], g["qty"]) for g in hot_qty] == [
        (True, 12), (True, 5), (True, -3), (False, None), (None, 7), (None, 0),
    ]  # fmt: skip
    owners, _ = await groups("owner", order="desc")
    assert [g["owner"] for g in owners] == ["é", "z", "bo", "anna", "ann", None]


async def test_a_declared_book_answers_the_highest_bids(aks: Keyspace) -> None:
    await crowd(aks)
    bids = await run_declared(aks, BIDS)
    assert bids.body() == {
        "groups": [
            {"key": {"price": "10.000000"}, "count": 2, "sum:qty": 14},
            {"key": {"price": "2.500000"}, "count": 1, "sum:qty": -3},
        ],
        "truncated": True,
    }


@pytest.mark.redis
async def test_a_missing_index_refuses_aggregations_as_it_refuses_lists(
    redis_server: EmbeddedRedis,
) -> None:
    client = connect(redis_server.url)
    try:
        await client.flushall()
        ks = Keyspace(client, SYSTEM.schema)
        await ks.setup()
        await lots(ks)
        target = await search.alias_target(client, LOTS)
        assert target is not None
        await call(client, "FT.DROPINDEX", target)
        with pytest.raises(NotReady, match="index unavailable"):
            await ks.aggregate(LOTS, parse_aggregation(LOTS, {}))
        # Refused again without asking Redis while the back-off lasts.
        with pytest.raises(NotReady, match="not ready yet"):
            await ks.aggregate(LOTS, parse_aggregation(LOTS, {}))
    finally:
        await client.aclose()
