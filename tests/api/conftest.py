"""An API test client on every backend: fakeredis, and the embedded real server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import fakeredis
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from app import create_app
from app.config import Settings
from keyspace import connect
from keyspace.server import EmbeddedRedis

SMALL_BODY_LIMIT = 64 * 1024
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(
    params=[
        pytest.param("fake", id="fakeredis"),
        pytest.param("real", id="redis", marks=pytest.mark.redis),
    ]
)
async def api(
    request: pytest.FixtureRequest,
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """A running app; the Redis behind it is empty at the start of each test."""
    if request.param == "fake":
        redis: Redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), protocol=2)
    else:
        server: EmbeddedRedis = request.getfixturevalue("redis_server")
        redis = connect(server.url)
        await redis.flushall()
    app = create_app(Settings(max_body=SMALL_BODY_LIMIT, admin_token=ADMIN_TOKEN), client=redis)
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app), headers=AUTH)
    await client.start_server()
    yield client
    await client.close()
    await redis.aclose()
