"""Cached view answers (keyspace.viewing) under concurrent writes, on fakeredis and the real
server (through RediSearch and the scan path): a writer reads its own acknowledged write at
once through the cache, and whenever the writes stand still the cached answer of every route
is byte-identical to one computed without the cache (issue 16, "Cached queries")."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import orjson
import pytest

from keyspace import Keyspace, KeyspaceError, System, demo, parse, systems, viewing
from tests.conftest import BACKENDS, client_for

CACHED = systems.load("construct")
UNCACHED = systems.load("construct", cache_ttl=0)
DATA = orjson.loads(demo.demo_file(CACHED).read_bytes())
ROUNDS = 6


@pytest.fixture(params=BACKENDS)
async def both(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Keyspace, Keyspace]]:
    """One Redis holding the demo world, seen by a caching and a non-caching keyspace."""
    backend: str = request.param
    client = await client_for(request, backend)
    search = None if backend != "real-scan" else False
    cached = Keyspace(client, CACHED.schema, use_search=search)
    await cached.setup()
    await demo.load(cached, DATA)
    plain = Keyspace(client, UNCACHED.schema, use_search=search)
    await plain.setup()
    yield cached, plain
    await client.aclose()


def requests() -> list[tuple[str, dict[str, str], dict[str, list[str]]]]:
    """(view, path, query) of every computed route over the demo world."""
    out: list[tuple[str, dict[str, str], dict[str, list[str]]]] = []
    out += [("user_stats", {"user_id": u["id"]}, {}) for u in DATA["users"]]
    out += [("order_book", {"asset_id": a["id"]}, {}) for a in DATA["assets"]]
    out += [("price", {"asset_symbol": a["symbol"]}, {}) for a in DATA["assets"]]
    out += [
        ("manufacturing_progress", {"order_id": o["id"]}, {}) for o in DATA["manufacturing_orders"]
    ]
    out += [("proposal_details", {"proposal_id": p["id"]}, {}) for p in DATA["proposals"]]
    out += [
        ("market_analytics", {}, {}),
        ("manufacturing_analytics", {}, {}),
        ("active_proposals", {}, {}),
        ("asset_search", {}, {"q": ["actuator"]}),
        ("price", {"asset_symbol": "HDA20"}, {"from": ["2026-01-01T00:00:00"]}),
    ]
    return out


async def answer(ks: Keyspace, served: System, name: str, path: dict[str, str],
                 query: dict[str, list[str]]) -> tuple[bytes, bool]:  # fmt: skip
    view = next(v for v in served.views if v.name == name)
    try:
        return await viewing.answer(ks, view, served.aggregates, served.view_ttl(view), path, query)
    except Exception as exc:  # a 404 (a price gone with its asset...) is an answer too
        return type(exc).__name__.encode(), False


async def place_and_see(ks: Keyspace, rng: random.Random, n: int) -> None:
    """Place an order at a price nobody uses, then read the order book through the cache:
    the acknowledged order must be on it."""
    asset = rng.choice(DATA["assets"])
    price = f"{Decimal(1000 + n) / 1000:.6f}"
    side = rng.choice(("buy", "sell"))
    order = {"user_id": rng.choice(DATA["users"])["id"], "asset_id": asset["id"], "side": side,
             "price": price, "quantity": "1"}  # fmt: skip
    await ks.create(ks.schema.collection("trading_orders"), order)
    body, _ = await answer(ks, CACHED, "order_book", {"asset_id": asset["id"]}, {})
    levels = orjson.loads(body)["bids" if side == "buy" else "asks"]
    assert any(level["price"] == price for level in levels), (price, levels)


async def churn(ks: Keyspace, rng: random.Random, n: int) -> None:
    """One write the routes read: cancel or fill an order, vote, move a milestone, price."""
    kind = rng.randrange(4)
    if kind == 0:
        orders = ks.schema.collection("trading_orders")
        page = await ks.list(orders, ks_query(ks, "trading_orders", status=["open"]))
        # Only the demo's orders: one placed by place_and_see must stay on the book.
        demo_ids = {o["id"] for o in DATA["trading_orders"]}
        mine = [o for o in page.items if o["id"] in demo_ids]
        if mine:
            target = rng.choice(mine)
            change = rng.choice(({"status": "cancelled"}, {"status": "filled",
                                 "filled_quantity": target["quantity"]}))  # fmt: skip
            with contextlib.suppress(KeyspaceError):  # a transition another writer made first
                await ks.patch(orders, target["id"], change)
    elif kind == 1:
        votes = ks.schema.collection("votes")
        page = await ks.list(votes, ks_query(ks, "votes"))
        vote = rng.choice(page.items)
        await ks.patch(votes, vote["id"], {"weight": f"{rng.randrange(1, 999)}.5"})
    elif kind == 2:
        users = ks.schema.collection("users")
        await ks.patch(users, rng.choice(DATA["users"])["id"],
                       {"reputation_score": f"{rng.randrange(0, 100)}.25"})  # fmt: skip
    else:
        feeds = ks.schema.collection("price_feeds")
        asset = rng.choice(DATA["assets"])
        await ks.create(feeds, {"asset_id": asset["id"], "asset_symbol": asset["symbol"],
                                "price": f"{rng.randrange(1, 9999)}", "source": "test",
                                "timestamp": f"2026-12-10T00:00:{n % 60:02d}.{n:06d}"})  # fmt: skip


def ks_query(ks: Keyspace, collection: str, **params: list[str]) -> Any:
    return parse(ks.schema.collection(collection), {**params, "limit": ["1000"]})


async def test_cached_answers_equal_uncached_ones_under_concurrent_writes(
    both: tuple[Keyspace, Keyspace],
) -> None:
    cached, plain = both
    rng = random.Random(16)
    every = requests()
    n = 0
    for _ in range(ROUNDS):
        readers = [answer(cached, CACHED, *rng.choice(every)) for _ in range(12)]
        writers, seers = [], []
        for _ in range(6):
            n += 1
            writers.append(churn(cached, rng, n))
        for _ in range(3):
            n += 1
            seers.append(place_and_see(cached, rng, n))
        await asyncio.gather(*readers, *writers, *seers)
        # The writes stand still: every cached answer is the one computed now.
        hits = 0
        for request in every:
            got, hit = await answer(cached, CACHED, *request)
            want, _ = await answer(plain, UNCACHED, *request)
            assert got == want, request
            hits += hit
        assert hits, "some answer stored during the round survived it"
