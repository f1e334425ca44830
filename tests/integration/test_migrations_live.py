"""The issue's migration while the API serves reads and writes (tests/migration_load.py): 5k
books in ``make test``, the issue's 100k in ``make soak``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from app import create_app
from app.config import Settings
from keyspace import Keyspace, connect
from keyspace.server import EmbeddedRedis
from tests.api.conftest import ADMIN_TOKEN, AUTH
from tests.migration_load import Client, migrate_under_load
from tests.migration_world import register, world

pytestmark = pytest.mark.redis


@pytest.fixture
async def served(
    redis_server: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Client, Redis]]:
    redis = connect(redis_server.url)
    await redis.flushall()
    await Keyspace(redis, world(1).schema).setup()  # release 1's index
    register(monkeypatch, world(2))
    yield_client: Client | None = None
    try:
        app = create_app(Settings(admin_token=ADMIN_TOKEN, system="shelf"), client=redis)
        yield_client = TestClient(TestServer(app), headers=AUTH)
        yield yield_client, redis
    finally:
        if yield_client is not None:
            await yield_client.close()
        await redis.aclose()


async def test_a_migration_under_api_reads_and_writes(served: tuple[Client, Redis]) -> None:
    api, redis = served
    await api.start_server()
    await migrate_under_load(api, redis, 5_000)


@pytest.mark.soak
async def test_a_migration_of_100k_documents_under_api_reads_and_writes(
    served: tuple[Client, Redis],
) -> None:
    api, redis = served
    await api.start_server()
    await migrate_under_load(api, redis, 100_000)
