"""Sentinels that hang (SIGSTOP: a stopped process, a stalled host) rather than die, with
``MULTIFRAME_REDIS_TIMEOUT_SECONDS=2``: a request that asks the sentinels (the first after an
idle moment longer than *T*, docs/scaling.md) stays within the README's bound for a stalled
Redis, three times the timeout. One hung sentinel of three: answered (200) by asking the next
one, and the next request does not wait for the hung one again. All three hung: 503
``redis_unavailable`` within the bound, and the next one too; answered again once they resume.

Before keyspace/discovery.py, redis-py's default retries of each sentinel held such a request
for about 50 s (one hung) and over 80 s (all three)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from keyspace import ha

from .conftest import Reply, api, request, user_body

pytestmark = pytest.mark.redis

TIMEOUT_S = 2
BOUND_S = 3 * TIMEOUT_S  # README: a stalled Redis turns into 503 after up to three times it
IDLE_S = 1.0  # longer than T (0.5 s with ha up's down-after): the next reply asks a sentinel


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ha.Cluster]:
    """A cluster of its own: its sentinels are stopped here."""
    started = ha.up(tmp_path / "ha", ha.Ports.free())
    try:
        yield started
    finally:
        for name in ha.SENTINELS:  # a stopped process ignores SIGTERM until it resumes
            os.kill(started.pids[name], signal.SIGCONT)
        ha.down(tmp_path / "ha")


async def _after_idle(http: aiohttp.ClientSession, port: int) -> tuple[Reply, float]:
    await asyncio.sleep(IDLE_S)
    started = time.monotonic()
    reply = await request(http, port, "GET", "/api/users?limit=1")
    return reply, time.monotonic() - started


async def test_hung_sentinels_hold_a_request_no_longer_than_the_bound(
    cluster: ha.Cluster, tmp_path: Path
) -> None:
    first, *others = (cluster.pids[name] for name in ha.SENTINELS)  # in the URL's order
    timeout = aiohttp.ClientTimeout(total=60)
    async with (
        api(cluster.url(), tmp_path, MULTIFRAME_REDIS_TIMEOUT_SECONDS=str(TIMEOUT_S)) as served,
        aiohttp.ClientSession(timeout=timeout) as http,
    ):
        made = await request(http, served.port, "POST", "/api/users", user_body("Stalled"))
        assert made.status == 201, made
        reply, took = await _after_idle(http, served.port)
        assert reply.status == 200 and took < 1.0, (reply, took)  # every sentinel answers

        os.kill(first, signal.SIGSTOP)
        reply, took = await _after_idle(http, served.port)
        print(f"\none sentinel hung: {reply.status} in {took:.2f}s")
        assert reply.status == 200, reply
        assert took < BOUND_S
        reply, again = await _after_idle(http, served.port)
        print(f"one sentinel hung, the next request: {reply.status} in {again:.2f}s")
        assert reply.status == 200, reply
        assert again < TIMEOUT_S / 2, "the hung sentinel was asked first again"

        for pid in others:
            os.kill(pid, signal.SIGSTOP)
        reply, took = await _after_idle(http, served.port)
        print(f"all sentinels hung: {reply.status} in {took:.2f}s")
        assert reply.status == 503 and reply.code == "redis_unavailable", reply
        assert reply.retry_after
        assert took < BOUND_S
        reply, again = await _after_idle(http, served.port)
        print(f"all sentinels hung, the next request: {reply.status} in {again:.2f}s")
        assert reply.status == 503 and again < BOUND_S, (reply, again)

        for name in ha.SENTINELS:
            os.kill(cluster.pids[name], signal.SIGCONT)
        resumed = time.monotonic()
        while (reply := (await _after_idle(http, served.port))[0]).status != 200:
            assert reply.status == 503, reply
            assert time.monotonic() - resumed < 5 * TIMEOUT_S, "not answered after resuming"
        print(f"answered again {time.monotonic() - resumed:.2f}s after the sentinels resumed")
