"""NeuraForge's per-endpoint limits on the real server, through two API instances sharing it
(issue 15 "Rate limits"): the counts are Redis's, so both instances draw on one window per
user and endpoint; concurrent requests never overrun it; the 429 and the `RateLimit-*`
headers are the tighter limit's; a refused create writes nothing; admins are not limited;
MULTIFRAME_ENDPOINT_LIMITS naming an endpoint that is not served is refused."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import fakeredis
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from app import create_app
from app.config import Settings
from keyspace import connect
from keyspace.server import EmbeddedRedis
from tests.api.conftest import ADMIN_TOKEN, AUTH

pytestmark = pytest.mark.redis

Client = TestClient[web.Request, web.Application]
Serve = Callable[..., Awaitable[tuple[Client, Client]]]
NS = "neuraforge:"
LIST = "GET:/api/projects"


@pytest.fixture
async def serve(redis_server: EmbeddedRedis) -> AsyncIterator[Serve]:
    """Two NeuraForge API instances on the session server, each with its own connections."""
    clients: list[Client] = []
    pools: list[Redis] = []
    flush = connect(redis_server.url)
    await flush.flushall()
    await flush.aclose()

    async def start(**settings: Any) -> tuple[Client, Client]:
        pair = []
        for _ in range(2):
            pools.append(connect(redis_server.url))
            app = create_app(
                Settings(admin_token=ADMIN_TOKEN, system="neuraforge", **settings),
                client=pools[-1],
            )
            client: Client = TestClient(TestServer(app), headers=AUTH)
            await client.start_server()
            clients.append(client)
            pair.append(client)
        return pair[0], pair[1]

    yield start
    for client in clients:
        await client.close()
    for pool in pools:
        await pool.aclose()


async def member(api: Client, name: str) -> tuple[str, dict[str, str]]:
    made = await api.post("/api/users", json={"email": f"{name}@lab.example", "name": name})
    assert made.status == 201, await made.text()
    user_id = (await made.json())["id"]
    minted = await api.post(f"/api/users/{user_id}/tokens", json={})
    assert minted.status == 201, await minted.text()
    return user_id, {"Authorization": f"Bearer {(await minted.json())['token']}"}


async def test_two_instances_share_one_window_per_user_and_endpoint(serve: Serve) -> None:
    one, two = await serve(endpoint_limits={LIST: 3})
    alice, token = await member(one, "alice")
    _, other = await member(one, "bob")
    answers = [await (one, two)[i % 2].get("/api/projects", headers=token) for i in range(4)]
    assert [r.status for r in answers] == [200, 200, 200, 429]
    assert [r.headers["RateLimit-Limit"] for r in answers] == ["3"] * 4
    assert [r.headers["RateLimit-Remaining"] for r in answers] == ["2", "1", "0", "0"]
    assert 3500 < int(answers[3].headers["Retry-After"]) <= 3600
    assert 3500 < int(answers[3].headers["RateLimit-Reset"]) <= 3600
    assert (await answers[3].json())["error"]["code"] == "rate_limited"
    assert (await one.get("/api/projects", headers=token)).status == 429
    # Another user, another endpoint (the declared 100 an hour), and admins are not limited.
    assert (await two.get("/api/projects", headers=other)).status == 200
    by_id = await two.get(f"/api/users/{alice}", headers=token)
    assert (by_id.status, by_id.headers["RateLimit-Limit"]) == (200, "100")
    assert by_id.headers["RateLimit-Remaining"] == "99"
    for _ in range(5):
        assert (await one.get("/api/projects")).status == 200


async def test_the_seeds_keys_hold_the_window(serve: Serve, redis_server: EmbeddedRedis) -> None:
    one, two = await serve(endpoint_limits={LIST: 5})
    alice, token = await member(one, "alice")
    for api in (one, two):
        assert (await api.get("/api/projects", headers=token)).status == 200
    redis = connect(redis_server.url)
    try:
        count = f"{NS}rate_limit:{alice}:{LIST}"
        window = f"{NS}rate_limit:window:{alice}:{LIST}"
        assert await redis.get(count) == b"2"
        raw = await redis.get(window)
        assert raw is not None
        state = json.loads(raw)
        assert (state["requests"], state["limit"]) == (2, 5)
        assert 3_500_000 < await redis.pttl(count) <= 3_600_000
        assert 3_500_000 < await redis.pttl(window) <= 3_600_000
    finally:
        await redis.aclose()


async def test_concurrent_requests_through_both_instances_never_overrun(serve: Serve) -> None:
    one, two = await serve(endpoint_limits={LIST: 5})
    _, token = await member(one, "alice")
    answers = await asyncio.gather(
        *((one, two)[i % 2].get("/api/projects", headers=token) for i in range(24))
    )
    statuses = sorted(r.status for r in answers)
    assert statuses == [200] * 5 + [429] * 19


async def test_the_tighter_limit_answers(serve: Serve) -> None:
    # GCRA's 2 reads a minute are tighter than the endpoint's 100 an hour: its headers, its 429.
    one, two = await serve(read_per_minute=2)
    _, token = await member(one, "alice")
    answers = [await api.get("/api/projects", headers=token) for api in (one, two, one)]
    assert [r.status for r in answers] == [200, 200, 429]
    assert [r.headers["RateLimit-Limit"] for r in answers] == ["2", "2", "2"]
    assert int(answers[2].headers["Retry-After"]) <= 60


async def test_a_refused_create_writes_nothing(serve: Serve) -> None:
    one, two = await serve(endpoint_limits={"write": 2})
    alice, token = await member(one, "alice")
    made = [
        await api.post("/api/projects", json={"name": f"p{i}", "owner_id": alice}, headers=token)
        for i, api in enumerate((one, two, one))
    ]
    assert [r.status for r in made] == [201, 201, 429], await made[2].text()
    assert made[2].headers["RateLimit-Limit"] == "2"
    listed = await two.get("/api/projects")
    assert sorted(d["name"] for d in (await listed.json())["items"]) == ["p0", "p1"]


async def test_an_override_of_an_endpoint_not_served_is_refused() -> None:
    # No server needed: create_app refuses before it connects.
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), protocol=2)
    typo = Settings(system="neuraforge", endpoint_limits={"GET:/api/project": 1})
    with pytest.raises(ValueError, match="serves no GET:/api/project"):
        create_app(typo, client=redis)
    elsewhere = Settings(system="normaldance", endpoint_limits={"read": 1})
    with pytest.raises(ValueError, match="normaldance has no per-endpoint limits"):
        create_app(elsewhere, client=redis)
    await redis.aclose()
