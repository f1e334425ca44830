"""``MULTIFRAME_READ_FROM=replica`` through Sentinel with the only replica gone: ``/ready`` tells
the truth (docs/scaling.md, "Replica reads"). redis-py's replica pool reads from the primary in
silence when no replica is up, so ``/ready`` kept answering ``"replica": "ok"`` with no
fallback counted; here the reads go to the primary as counted fallbacks, every list still
answered.

- The replica hung (SIGSTOP), then killed: ``"unreachable"``, and each list a fallback.
  Restarted: ``"ok"`` again.
- The primary killed and the replica promoted: no replica is left, so never ``"ok"`` again
  (``"unreachable"``: Sentinel closes the promoted node's connections, and a new reader
  connection finds no replica; a connection that stayed open would say ``"primary"``, tested
  in tests/unit/test_replica_fallback.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from keyspace import ha

from .conftest import api, request, user_body

pytestmark = pytest.mark.redis

SETTLE_S = 20.0  # the sentinels mark a node down after 1 s (ha up) and promote in ~2 s
LISTS = 5


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[ha.Cluster]:
    """A cluster of its own: its nodes are stopped and killed here."""
    started = await asyncio.to_thread(ha.up, tmp_path / "ha", ha.Ports.free())
    try:
        yield started
    finally:
        for pid in started.pids.values():  # a stopped process ignores SIGTERM until it resumes
            with contextlib.suppress(ProcessLookupError):  # killed here
                os.kill(pid, signal.SIGCONT)
        await asyncio.to_thread(ha.down, tmp_path / "ha")


async def _ready(http: aiohttp.ClientSession, port: int) -> dict[str, Any]:
    reply = await request(http, port, "GET", "/ready")
    assert reply.status == 200, reply  # a replica that cannot answer leaves the service ready
    body: dict[str, Any] = reply.body
    return body


async def _lists(http: aiohttp.ClientSession, port: int, expected: int) -> None:
    for _ in range(LISTS):
        reply = await request(http, port, "GET", "/api/users?limit=1")
        assert reply.status == 200, reply
        assert reply.body["total"] == expected


async def _until_state(http: aiohttp.ClientSession, port: int, expected: int, state: str) -> None:
    """Lists answered meanwhile, until /ready names the replica ``state``."""
    deadline = time.monotonic() + SETTLE_S
    while (found := (await _ready(http, port))["replica"]) != state:
        assert time.monotonic() < deadline, f"/ready still says {found!r}, not {state!r}"
        await _lists(http, port, expected)
        await asyncio.sleep(0.2)


async def _fallbacks_counted(http: aiohttp.ClientSession, port: int, expected: int) -> None:
    before = (await _ready(http, port))["replica_fallbacks"]
    await _lists(http, port, expected)
    after = await _ready(http, port)
    assert after["replica"] != "ok", after
    assert after["replica_fallbacks"] >= before + LISTS, (before, after)


async def test_a_dead_replica_is_reported_and_its_reads_counted(
    cluster: ha.Cluster, tmp_path: Path
) -> None:
    env = {"MULTIFRAME_READ_FROM": "replica", "MULTIFRAME_REDIS_TIMEOUT_SECONDS": "2"}
    async with api(cluster.url(), tmp_path, **env) as served, aiohttp.ClientSession() as http:
        for n in range(3):
            made = await request(http, served.port, "POST", "/api/users", user_body(f"Rd{n}"))
            assert made.status == 201, made
        await _until_state(http, served.port, 3, "ok")  # the replica caught up and answers
        await _lists(http, served.port, 3)
        assert (await _ready(http, served.port))["replica_fallbacks"] == 0

        os.kill(cluster.pids["redis-2"], signal.SIGSTOP)
        await _until_state(http, served.port, 3, "unreachable")
        await _fallbacks_counted(http, served.port, 3)

        await asyncio.to_thread(ha.kill, cluster, "redis-2")
        await asyncio.sleep(1.5)  # past down-after-milliseconds: the sentinels list none up
        assert (await _ready(http, served.port))["replica"] == "unreachable"
        await _fallbacks_counted(http, served.port, 3)

        await asyncio.to_thread(ha.restart, cluster, "redis-2")
        await _until_state(http, served.port, 3, "ok")


async def test_after_a_failover_with_no_replica_left_ready_never_says_ok(
    cluster: ha.Cluster, tmp_path: Path
) -> None:
    env = {"MULTIFRAME_READ_FROM": "replica", "MULTIFRAME_REDIS_TIMEOUT_SECONDS": "2"}
    async with api(cluster.url(), tmp_path, **env) as served, aiohttp.ClientSession() as http:
        made = await request(http, served.port, "POST", "/api/users", user_body("Promoted"))
        assert made.status == 201, made
        await _until_state(http, served.port, 1, "ok")

        await asyncio.to_thread(ha.kill, cluster, "redis-1")
        deadline = time.monotonic() + SETTLE_S
        while True:  # 503 while the sentinels promote redis-2; then its first state
            reply = await request(http, served.port, "GET", "/ready")
            if reply.status == 200 and reply.body["replica"] != "ok":
                state = reply.body["replica"]
                break
            assert reply.status in (200, 503), reply
            assert time.monotonic() < deadline, f"/ready still answers {reply}"
            await asyncio.sleep(0.2)
        assert (await asyncio.to_thread(ha.status, cluster))["redis-2"] == "master"
        states = set()
        states.add(state)
        assert state in ("unreachable", "primary"), state
        # No replica is left: every probe from now on says so, and the lists are counted.
        for _ in range(3):
            states.add((await _ready(http, served.port))["replica"])
        assert "ok" not in states, states
        await _fallbacks_counted(http, served.port, 1)
        print(f"\nno replica after the failover: /ready said {sorted(states)}")
