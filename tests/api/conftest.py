"""An API test client on every backend: fakeredis, and the embedded real server, started by
the testing kit's ``serving`` (keyspace.testing) as a consumer's ``api`` fixture is."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from app.config import Settings
from keyspace import connect
from keyspace.server import EmbeddedRedis
from keyspace.testing import fake_redis_client, serving

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
        redis: Redis = fake_redis_client()
    else:
        server: EmbeddedRedis = request.getfixturevalue("redis_server")
        redis = connect(server.url)
        await redis.flushall()
    settings = Settings(max_body=SMALL_BODY_LIMIT, admin_token=ADMIN_TOKEN)
    async with serving(redis, settings) as client:
        yield client
    await redis.aclose()
