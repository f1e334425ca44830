"""NeuraForge's presence fades on the real server (a 2 s TTL through ``Settings.ttls``, as
``MULTIFRAME_TTL_SECONDS=presence=2`` gives): a heartbeat gives it its whole TTL again, and
once the beats stop the presence is gone from reads by id, from the list by project and
status (RediSearch, and the scan path over the same keys) and from its project's relation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from app import create_app
from app.config import Settings
from keyspace import Keyspace, connect, parse, systems
from keyspace.server import EmbeddedRedis
from tests.api.conftest import ADMIN_TOKEN, AUTH

pytestmark = pytest.mark.redis

Client = TestClient[web.Request, web.Application]
TTL = 2
SETTLE = 0.4  # past a TTL: Redis's active expiry (10 times a second) has deleted the keys


@pytest.fixture
async def nf(redis_server: EmbeddedRedis) -> AsyncIterator[tuple[Client, Redis]]:
    redis = connect(redis_server.url)
    await redis.flushall()
    settings = Settings(admin_token=ADMIN_TOKEN, system="neuraforge", ttls={"presence": TTL})
    client: Client = TestClient(TestServer(create_app(settings, client=redis)), headers=AUTH)
    await client.start_server()
    yield client, redis
    await client.close()
    await redis.aclose()


async def created(api: Client, path: str, body: dict[str, Any]) -> str:
    response = await api.post(path, json=body)
    assert response.status == 201, await response.text()
    made: str = (await response.json())["id"]
    return made


async def listed(api: Client, path: str, **params: str) -> list[str]:
    response = await api.get(path, params=params)
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["total"] == len(body["items"])
    return sorted(d["id"] for d in body["items"])


async def scanned(redis: Redis, project: str) -> list[str]:
    """The same list through the scan path (no index)."""
    served = systems.load("neuraforge", ttls={"presence": TTL})
    ks = Keyspace(redis, served.schema, use_search=False)
    await ks.setup()
    spec = ks.entity("presence")
    page = await ks.list(spec, parse(spec, {"current_project": [project], "status": ["online"]}))
    assert page.total == len(page.items)
    return sorted(d["id"] for d in page.items)


async def test_heartbeats_keep_a_presence_and_it_fades_when_they_stop(
    nf: tuple[Client, Redis],
) -> None:
    api, redis = nf
    one = await created(api, "/api/users", {"email": "one@lab.example", "name": "One"})
    two = await created(api, "/api/users", {"email": "two@lab.example", "name": "Two"})
    project = await created(api, "/api/projects", {"name": "P", "owner_id": one})
    beat = {"status": "online", "current_project": project}
    assert (await api.put(f"/api/presence/{one}", json=beat)).status == 201
    assert (await api.put(f"/api/presence/{two}", json=beat)).status == 201
    # Beats every 1.2 s keep `one` for 3.6 s, past twice the TTL; `two` stops after one beat.
    for _ in range(3):
        await asyncio.sleep(TTL * 0.6)
        assert (await api.put(f"/api/presence/{one}", json=beat)).status == 200
    await asyncio.sleep(SETTLE)
    assert (await api.get(f"/api/presence/{one}")).status == 200
    assert (await api.get(f"/api/presence/{two}")).status == 404
    assert await listed(api, "/api/presence", current_project=project, status="online") == [one]
    assert await scanned(redis, project) == [one]
    # Once its beats stop, `one` fades too: no read, list, count or relation shows it.
    await asyncio.sleep(TTL + SETTLE)
    assert (await api.get(f"/api/presence/{one}")).status == 404
    assert await listed(api, "/api/presence", current_project=project, status="online") == []
    assert await listed(api, "/api/presence") == []
    assert await listed(api, f"/api/projects/{project}/presence") == []
    assert await scanned(redis, project) == []
    # Nothing of it holds its project back: the delete answers 204, and a new beat creates.
    assert (await api.put(f"/api/presence/{one}", json={"status": "away"})).status == 201
    assert (await api.delete(f"/api/projects/{project}")).status == 204
