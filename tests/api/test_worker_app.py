"""The app of one of ``--workers`` processes (``create_app(worker=True)``): start-up's work on
Redis is its parent's, so a worker never makes the first admin nor builds an index (N of them
would race: two admins, two printed keys, concurrent builds dropping each other's versions);
it serves an index's lists once another process has built it."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer

from app import create_app
from app.config import Settings
from app.main import ATTACH_WAIT_SECONDS
from app.startup import SETUP_CHECK_SECONDS
from app.state import ATTACHED
from keyspace import Keyspace, connect
from keyspace.connection import call
from keyspace.server import EmbeddedRedis, free_port

from .conftest import ADMIN_TOKEN, AUTH

pytestmark = pytest.mark.redis


@pytest.mark.parametrize("worker", [True, False], ids=["worker", "one-process"])
async def test_a_worker_neither_bootstraps_nor_builds(
    redis_server: EmbeddedRedis, capsys: pytest.CaptureFixture[str], worker: bool
) -> None:
    redis = connect(redis_server.url)
    await redis.flushall()
    try:
        app = create_app(Settings(), client=redis, worker=worker)  # no admin token
        async with TestClient(TestServer(app)):
            await asyncio.sleep(SETUP_CHECK_SECONDS * 1.5)  # the watchdog had its turn
            users = await redis.keys("user:*")
            indexes = await call(redis, "FT._LIST")
            printed = "First start: created the admin user" in capsys.readouterr().err
        if worker:
            assert (users, indexes, printed) == ([], [], False)
        else:  # the one process of --workers 1 (and the parent of N) does it all
            assert users == [b"user:admin"] and printed
            assert len(indexes) == len(Keyspace(redis).schema.entities)
    finally:
        await redis.aclose()


async def test_a_worker_serves_lists_once_the_parent_built_their_index(
    redis_server: EmbeddedRedis,
) -> None:
    redis = connect(redis_server.url)
    await redis.flushall()
    try:
        app = create_app(Settings(admin_token=ADMIN_TOKEN), client=redis, worker=True)
        async with TestClient(TestServer(app), headers=AUTH) as client:
            listed = await client.get("/api/users")
            assert listed.status == 503
            assert (await listed.json())["error"]["code"] == "not_ready"

            await Keyspace(redis).setup()  # what the parent does
            deadline = time.monotonic() + 5
            while (listed := await client.get("/api/users")).status != 200:
                assert time.monotonic() < deadline, await listed.text()
                await asyncio.sleep(0.1)
            assert (await client.get("/ready")).status == 200
    finally:
        await redis.aclose()


async def test_forget_built_drops_only_what_is_built(redis_server: EmbeddedRedis) -> None:
    redis = connect(redis_server.url)
    await redis.flushall()
    try:
        parent, worker = Keyspace(redis), Keyspace(redis)
        await parent.setup_basics()
        await worker.setup_basics()
        pending = worker.pending_indexes
        assert pending and pending == parent.pending_indexes
        await worker.forget_built()
        assert worker.pending_indexes == pending  # nothing built yet
        await parent.upgrade_indexes()
        await worker.forget_built()
        assert worker.pending_indexes == []
    finally:
        await redis.aclose()


async def test_a_worker_serves_at_once_and_answers_503_until_it_reaches_redis() -> None:
    # Nobody listens there: a worker started while its Redis is down or hung. It must answer
    # its share of the connections the kernel queues on its socket, not hold them.
    redis = connect(f"redis://127.0.0.1:{free_port()}/0", timeout=1.0)
    try:
        app = create_app(Settings(admin_token=ADMIN_TOKEN), client=redis, worker=True)
        started = time.monotonic()
        async with TestClient(TestServer(app), headers=AUTH) as client:
            assert time.monotonic() - started < 2  # start-up does not wait for Redis
            for path in ("/health", "/ready", "/api/users"):
                answer = await client.get(path)
                assert answer.status == 503, path
                assert (await answer.json())["error"]["code"] == "redis_unavailable", path
                assert answer.headers["Retry-After"] == "2"
            assert not app[ATTACHED].is_set()
        assert time.monotonic() - started < 2 + 3 * (ATTACH_WAIT_SECONDS + 0.5)
    finally:
        await redis.aclose()
