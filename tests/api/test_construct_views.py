"""The Construct's read API (issue 16: the seed's exact paths) over its demo world, on
fakeredis and the real server: each computed answer equals a brute-force answer from every
document (tests/construct_oracle.py), before and after writes, cached or not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from app import create_app
from app.config import Settings
from keyspace.systems.construct.views import CACHE_TTLS
from tests import construct_oracle as oracle
from tests.conftest import client_for

from .conftest import ADMIN_TOKEN, AUTH

Client = TestClient[web.Request, web.Application]
NS = "construct:"
ARIA = "c0010000-0000-4000-8000-000000000001"
ARIA_WALLET = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
HDA = "c0020000-0000-4000-8000-000000000001"
COLLECTIONS = (
    "users", "assets", "price_feeds", "trading_orders", "manufacturing_orders", "escrows",
    "milestones", "quality_assurance", "proposals", "votes", "transactions",
)  # fmt: skip


async def _client(redis: Redis, **settings: Any) -> Client:
    app = create_app(
        Settings(admin_token=ADMIN_TOKEN, system="construct", **settings), client=redis
    )
    client: Client = TestClient(TestServer(app), headers=AUTH)
    await client.start_server()
    return client


@pytest.fixture(
    params=[
        pytest.param("fake", id="fakeredis"),
        pytest.param("real", id="redis", marks=pytest.mark.redis),
    ]
)
async def world(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Client, Redis]]:
    """The Construct's API with its demo world loaded, and the Redis behind it."""
    redis = await client_for(request, request.param)
    client = await _client(redis)
    dev = await client.patch("/api/settings", json={"system": {"mode": "development"}})
    assert dev.status == 200, await dev.text()
    seeded = await client.post("/api/admin/seed")
    assert seeded.status == 200, await seeded.text()
    assert (await seeded.json())["created"] == 75
    yield client, redis
    await client.close()
    await redis.aclose()


async def everything(api: Client) -> oracle.Docs:
    out: oracle.Docs = {}
    for name in COLLECTIONS:
        page = await api.get(f"/api/{name}", params={"limit": "1000"})
        assert page.status == 200, await page.text()
        out[name] = (await page.json())["items"]
    return out


async def read(api: Client, path: str, **params: str) -> Any:
    response = await api.get(path, params=params)
    assert response.status == 200, (path, await response.text())
    return await response.json()


async def every_answer(api: Client) -> None:
    """Every computed route of the demo world equals its brute-force answer."""
    docs = await everything(api)
    for user in docs["users"]:
        assert await read(api, f"/api/users/{user['id']}/stats") == oracle.user_stats(
            docs, user["id"]
        )
    for asset in docs["assets"]:
        book = await read(api, f"/api/trading/orderbook/{asset['id']}")
        assert book == oracle.order_book(docs, asset["id"])
    for order in docs["manufacturing_orders"]:
        got = await read(api, f"/api/manufacturing/orders/{order['id']}/progress")
        assert got == oracle.progress(docs, order["id"])
    for proposal in docs["proposals"]:
        got = await read(api, f"/api/governance/proposals/{proposal['id']}")
        assert got == oracle.proposal(docs, proposal["id"])
    assert await read(api, "/api/analytics/market") == oracle.market(docs)
    assert await read(api, "/api/analytics/manufacturing") == oracle.manufacturing(docs)


async def test_every_computed_route_equals_brute_force_before_and_after_writes(
    world: tuple[Client, Redis],
) -> None:
    api, _ = world
    await every_answer(api)
    book = await read(api, f"/api/trading/orderbook/{HDA}")
    assert book["bids"] and book["asks"]
    bids = [float(level["price"]) for level in book["bids"]]
    asks = [float(level["price"]) for level in book["asks"]]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
    # The seed's invalidating events: an order filled or cancelled, a transaction completed,
    # a reputation change; and any write to a counted collection.
    orders = (await everything(api))["trading_orders"]
    live = [o for o in orders if o["asset_id"] == HDA and o["status"] == "open"]
    cancelled = await api.patch(
        f"/api/trading_orders/{live[0]['id']}", json={"status": "cancelled"}
    )
    assert cancelled.status == 200, await cancelled.text()
    placed = await api.post(
        "/api/trading_orders",
        json={"user_id": ARIA, "asset_id": HDA, "side": "sell", "price": "130.5", "quantity": "2"},
    )
    assert placed.status == 201, await placed.text()
    filled = await api.patch(
        f"/api/trading_orders/{(await placed.json())['id']}",
        json={"status": "partially_filled", "filled_quantity": "0.5"},
    )
    assert filled.status == 200, await filled.text()
    txs = (await everything(api))["transactions"]
    pending = next(t for t in txs if t["status"] == "pending")
    done = await api.patch(f"/api/transactions/{pending['id']}", json={"status": "confirmed"})
    assert done.status == 200, await done.text()
    assert (await api.patch(f"/api/users/{ARIA}", json={"reputation_score": "91.00"})).status == 200
    votes = (await everything(api))["votes"]
    assert (await api.delete(f"/api/votes/{votes[0]['id']}")).status in (204, 409)
    await every_answer(api)
    assert (await read(api, f"/api/users/{ARIA}/stats"))["reputation_score"] == "91.00"


async def test_answers_are_cached_under_the_seeds_ttls_and_dropped_by_writes(
    world: tuple[Client, Redis],
) -> None:
    api, redis = world
    path = f"/api/trading/orderbook/{HDA}"
    first = await api.get(path)
    assert first.headers["X-Cache"] == "MISS"
    again = await api.get(path)
    assert again.headers["X-Cache"] == "HIT" and await again.read() == await first.read()
    keys = [k async for k in redis.scan_iter(match=f"{NS}api:cache:order_book:*@*")]
    assert len(keys) == 1
    assert CACHE_TTLS["trading"] * 1000 - 5000 < await redis.pttl(keys[0]) <= 60_000
    for route, category in (
        ("/api/analytics/market", "analytics"),
        ("/api/blockchain/prices/HDA20", "price"),
        (f"/api/users/{ARIA}/stats", "user"),
        ("/api/assets/search", "asset"),
    ):
        assert (await api.get(route)).headers["X-Cache"] == "MISS"
        name = {
            "analytics": "market_analytics",
            "price": "price",
            "user": "user_stats",
            "asset": "asset_search",
        }[category]
        (key,) = [k async for k in redis.scan_iter(match=f"{NS}api:cache:{name}:*@*")]
        assert (
            CACHE_TTLS[category] * 1000 - 5000
            < await redis.pttl(key)
            <= CACHE_TTLS[category] * 1000
        )
    # A write to a collection the answer reads: the next read is computed, and shows it.
    made = await api.post(
        "/api/trading_orders",
        json={"user_id": ARIA, "asset_id": HDA, "side": "buy", "price": "1.25", "quantity": "4"},
    )
    assert made.status == 201
    after = await api.get(path)
    assert after.headers["X-Cache"] == "MISS"
    assert {"price": "1.250000", "quantity": "4.000000", "orders": 1, "quote_currency": "USDC"} in (
        await after.json()
    )["bids"]
    # A write elsewhere (a price) leaves the order book's entry standing.
    feed = {
        "asset_id": HDA,
        "asset_symbol": "HDA20",
        "price": "120",
        "source": "test",
        "timestamp": "2026-12-31T00:00:00",
    }
    assert (await api.post("/api/price_feeds", json=feed)).status == 201
    assert (await api.get(path)).headers["X-Cache"] == "HIT"
    latest = await read(api, "/api/blockchain/prices/HDA20")
    assert latest["price"] == "120.000000" and latest["latest"]["source"] == "test"


async def test_document_routes_by_id_wallet_and_hash(world: tuple[Client, Redis]) -> None:
    api, _ = world
    docs = await everything(api)
    for wallet in (ARIA_WALLET, ARIA_WALLET.lower(), "0x" + ARIA_WALLET[2:].upper()):
        response = await api.get(f"/api/users/wallet/{wallet}")
        assert response.status == 200, await response.text()
        assert (await response.json())["id"] == ARIA
        assert response.headers["ETag"]
        assert "X-Cache" not in response.headers
    user = await api.get(f"/api/users/{ARIA}")
    assert (await user.json())["wallet_address"] == ARIA_WALLET
    tx = docs["transactions"][0]
    for value in (tx["tx_hash"], tx["tx_hash"].upper().replace("0X", "0x")):
        assert (await read(api, f"/api/blockchain/transactions/{value}"))["id"] == tx["id"]
    order = docs["trading_orders"][0]
    via_alias = await api.get(f"/api/trading/orders/{order['id']}")
    direct = await api.get(f"/api/trading_orders/{order['id']}")
    assert await via_alias.read() == await direct.read()
    assert via_alias.headers["ETag"] == direct.headers["ETag"]
    again = await api.get(
        f"/api/trading/orders/{order['id']}", headers={"If-None-Match": direct.headers["ETag"]}
    )
    assert again.status == 304
    job = docs["manufacturing_orders"][0]
    assert (await read(api, f"/api/manufacturing/orders/{job['id']}")) == job
    assert (await read(api, f"/api/assets/{HDA}"))["symbol"] == "HDA20"
    # A wallet changes hands: the old address finds nobody, the new one finds the user.
    moved = "0x" + "ab" * 20
    assert (await api.patch(f"/api/users/{ARIA}", json={"wallet_address": moved})).status == 200
    assert (await api.get(f"/api/users/wallet/{ARIA_WALLET}")).status == 404
    assert (await read(api, f"/api/users/wallet/{moved.upper().replace('0X', '0x')}"))["id"] == ARIA


async def test_search_active_proposals_and_price_history(world: tuple[Client, Redis]) -> None:
    api, _ = world
    docs = await everything(api)
    found = await read(api, "/api/assets/search", q="actuator")
    expected = await read(api, "/api/assets", q="actuator")
    assert found == expected and found["items"]
    typed = await read(api, "/api/assets/search", asset_type="sensor")
    assert [a["id"] for a in typed["items"]] == [
        a["id"] for a in docs["assets"] if a["asset_type"] == "sensor"
    ]
    active = await read(api, "/api/governance/proposals/active")
    want = sorted(
        (p for p in docs["proposals"] if p["status"] == "active"),
        key=lambda p: (p["voting_ends_at"], p["id"]),
    )
    assert [p["id"] for p in active["items"]] == [p["id"] for p in want]
    feeds = sorted(
        (f for f in docs["price_feeds"] if f["asset_symbol"] == "HDA20"),
        key=lambda f: f["timestamp"],
    )
    price = await read(api, "/api/blockchain/prices/HDA20")
    assert price["latest"] == feeds[-1] and price["price"] == feeds[-1]["price"]
    assert price["history"] is None
    low, high = feeds[0]["timestamp"], feeds[-2]["timestamp"]
    ranged = await read(api, "/api/blockchain/prices/HDA20", **{"from": low, "to": high})
    assert [f["id"] for f in ranged["history"]["items"]] == [f["id"] for f in reversed(feeds[:-1])]
    assert ranged["latest"] == feeds[-1]


async def test_bad_requests_are_4xx_in_the_error_format(world: tuple[Client, Redis]) -> None:
    api, _ = world
    missing = "c0ffffff-0000-4000-8000-000000000000"
    for path in (
        f"/api/users/{missing}/stats",
        f"/api/users/wallet/0x{'0' * 40}",
        "/api/users/wallet/nonsense",
        f"/api/trading/orders/{missing}",
        f"/api/trading/orderbook/{missing}",
        "/api/trading/orderbook/..%2F..",
        f"/api/manufacturing/orders/{missing}",
        f"/api/manufacturing/orders/{missing}/progress",
        f"/api/governance/proposals/{missing}",
        f"/api/blockchain/transactions/0x{'f' * 64}",
        "/api/blockchain/prices/NOPE",
        f"/api/users/wallet/{'x' * 5000}",
    ):
        response = await api.get(path)
        assert response.status == 404, (path, response.status, await response.text())
        assert (await response.json())["error"]["code"] == "not_found"
    for path, params in (
        ("/api/analytics/market", {"x": "1"}),
        (f"/api/trading/orderbook/{HDA}", {"depth": "5"}),
        (f"/api/users/wallet/{ARIA_WALLET}", {"x": "1"}),
        ("/api/assets/search", {"nope": "1"}),
        ("/api/assets/search", {"limit": "0"}),
        ("/api/governance/proposals/active", {"status": "draft"}),
        ("/api/blockchain/prices/HDA20", {"from": "yesterday"}),
        ("/api/blockchain/prices/HDA20", {"timestamp_min": "2026-01-01T00:00:00"}),
        ("/api/blockchain/prices/HDA20", {"asset_symbol": "X"}),
    ):
        response = await api.get(path, params=params)
        assert response.status == 400, (path, params, await response.text())
        assert (await response.json())["error"]["code"] == "invalid_parameter"
    anonymous = await api.get("/api/analytics/market", headers={"Authorization": ""})
    assert anonymous.status == 401


async def test_every_route_is_in_openapi(world: tuple[Client, Redis]) -> None:
    api, _ = world
    doc = await read(api, "/openapi.json")
    for path in (
        "/api/users/{id}", "/api/users/wallet/{wallet_address}", "/api/users/{user_id}/stats",
        "/api/assets/{id}", "/api/assets/search", "/api/trading/orders/{order_id}",
        "/api/trading/orderbook/{asset_id}", "/api/manufacturing/orders/{order_id}",
        "/api/manufacturing/orders/{order_id}/progress", "/api/governance/proposals/active",
        "/api/governance/proposals/{proposal_id}", "/api/blockchain/transactions/{tx_hash}",
        "/api/blockchain/prices/{asset_symbol}", "/api/analytics/market",
        "/api/analytics/manufacturing", "/api/admin/migrate", "/api/admin/seed",
        "/api/admin/migration-status",
    ):  # fmt: skip
        assert path in doc["paths"], path
    prices = doc["paths"]["/api/blockchain/prices/{asset_symbol}"]["get"]
    names = {p["name"] for p in prices["parameters"]}
    assert {"asset_symbol", "from", "to", "limit", "cursor"} <= names
    assert not {"timestamp_min", "asset_symbol_min"} & names
    ok = prices["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]["$ref"].endswith("/Price")
    assert "X-Cache" in ok["headers"]
    assert "OrderBook" in doc["components"]["schemas"]
    search = doc["paths"]["/api/assets/search"]["get"]
    assert {"q", "asset_type"} <= {p["name"] for p in search["parameters"]}


async def test_review_findings_stay_fixed(world: tuple[Client, Redis]) -> None:
    """Issue 16's hostile review: an overfilled order, invisible filter values, look-alike
    wallets and renamed parameters."""
    api, _ = world
    # 1. An order filled past its quantity would hide other users' quantity at its level.
    over = {"user_id": ARIA, "asset_id": HDA, "side": "sell", "price": "121",
            "quantity": "0.000001", "filled_quantity": "9999"}  # fmt: skip
    refused = await api.post("/api/trading_orders", json=over)
    assert refused.status == 422, await refused.text()
    assert "filled_quantity must not exceed quantity" in await refused.text()
    fine = await api.post("/api/trading_orders", json={**over, "filled_quantity": "0"})
    assert fine.status == 201
    overfill = await api.patch(
        f"/api/trading_orders/{(await fine.json())['id']}", json={"filled_quantity": "1"}
    )
    assert overfill.status == 422
    # 2. A caseless filter value that folds to nothing: 400, not a 500 from RediSearch.
    for path, params in (
        ("/api/assets/search", {"contract_address": "\u200b"}),
        ("/api/users", {"username": "\u200b\u00ad"}),
        ("/api/users/aggregate", {"wallet_address": "\u200b"}),
    ):
        response = await api.get(path, params=params)
        assert response.status == 400, (path, await response.text())
    # 5. Look-alikes of a wallet (fullwidth, an invisible character) name no document.
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in ARIA_WALLET)
    for value in (fullwidth, ARIA_WALLET[:8] + "\u200b" + ARIA_WALLET[8:]):
        assert (await api.get(f"/api/users/wallet/{value}")).status == 404, value
    # 6. Errors name the parameters the client sent.
    bad = await api.get("/api/blockchain/prices/HDA20", params={"from": "yesterday"})
    assert bad.status == 400
    body = await bad.json()
    assert body["error"]["details"][0]["field"] == "from", body
    assert "timestamp_min" not in body["error"]["message"]
