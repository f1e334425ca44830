"""An API test client on every backend: fakeredis, and the embedded real server, started by
the testing kit's ``serving`` (keyspace.testing) as a consumer's ``api`` fixture is; and
``serve``, which starts apps of any system or settings on one such Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from app import create_app
from app.config import Settings
from keyspace.testing import serving
from tests.conftest import client_for

SMALL_BODY_LIMIT = 64 * 1024
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

Client = TestClient[web.Request, web.Application]
Serve = Callable[..., Awaitable[Client]]
BACKENDS = [
    pytest.param("fake", id="fakeredis"),
    pytest.param("real", id="redis", marks=pytest.mark.redis),
]


async def backend(request: pytest.FixtureRequest) -> Redis:
    """A client of an empty Redis for a fixture parametrised over :data:`BACKENDS`:
    fakeredis, or the session's embedded server flushed (tests.conftest.client_for)."""
    return await client_for(request, request.param)


@pytest.fixture(params=BACKENDS)
async def api(
    request: pytest.FixtureRequest,
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """A running app; the Redis behind it is empty at the start of each test."""
    redis = await backend(request)
    settings = Settings(max_body=SMALL_BODY_LIMIT, admin_token=ADMIN_TOKEN)
    async with serving(redis, settings) as client:
        yield client
    await redis.aclose()


@pytest.fixture(params=BACKENDS)
async def serve(request: pytest.FixtureRequest) -> AsyncIterator[Serve]:
    """``await serve(system="multiframe", **settings)``: the app of ``system`` with the test
    admin token and ``settings`` (e.g. ``cors_origins``), on one Redis shared by every app
    the test starts, empty at its start."""
    redis = await backend(request)
    clients: list[Client] = []

    async def start(system: str = "multiframe", **settings: Any) -> Client:
        app = create_app(Settings(admin_token=ADMIN_TOKEN, system=system, **settings), client=redis)
        client: Client = TestClient(TestServer(app), headers=AUTH)
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()
    await redis.aclose()
