"""Issue 7, scenario 5: SIGKILL the Redis server in the middle of an HTTP write load.

Writers go through the live API (create user, create driver, patch it, sometimes delete the
user with its driver) and remember, per key, every state a response acknowledged. After the
restart the state of every key is read from Redis directly and placed in that history:

* ``appendfsync always``: every key holds its last acknowledged state (or the outcome of the
  one write that was in flight when the server died), nothing else exists, and
  ``scripts/inspection.py inspect`` finds nothing wrong.
* ``appendfsync everysec``: a key may fall back to an earlier acknowledged state, but only by
  writes acknowledged within the loss window Redis allows; the window is reported.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from keyspace import Keyspace, codec, connect
from keyspace.connection import call
from keyspace.server import EmbeddedRedis
from scripts.inspection import inspect

from .conftest import AUTH, Figures, LiveApp, ServerFactory

pytestmark = pytest.mark.redis

# Redis may postpone the AOF write for up to 2 s while a background fsync is slow, and still
# answer clients: the only way a crash of Redis alone loses acknowledged writes under everysec.
# The slack covers the scheduling of this test's own clock readings.
EVERYSEC_BOUND_S = 2.5
RECOVERY_LIMIT_S = 20.0
MIN_ACKS_BEFORE_KILL = 100

Doc = dict[str, Any] | None
Check = Callable[[Doc], bool]


def user_body(name: str) -> dict[str, Any]:
    return {"username": name, "email": f"{name.lower()}@example.com", "role": "designer"}


def driver_body(user_id: str) -> dict[str, Any]:
    chip = {"type": "quantum_processor", "cores": 64, "frequency": "4.5GHz", "architecture": "X"}
    return {"user_id": user_id, "chip_id": "chip_quantum_1", "chip_data": chip, "version": "1.0.0"}


@dataclass
class History:
    """Every acknowledged state of one key, oldest first: a revision, or None for absent."""

    states: list[tuple[str | None, float]] = field(default_factory=lambda: [(None, -math.inf)])
    in_flight: Check | None = None  # the unacknowledged write on this key when Redis died


@dataclass
class Load:
    """What the writers sent and what the API acknowledged."""

    histories: dict[str, History] = field(default_factory=dict)
    # writer -> the create it had in flight; its id was not known yet, so it matches by content
    creates_in_flight: dict[int, Callable[[str, dict[str, Any]], bool]] = field(
        default_factory=dict
    )
    attempted: int = 0
    acknowledged: int = 0
    refusals: list[tuple[int, str, str | None]] = field(default_factory=list)

    def history(self, key: str) -> History:
        return self.histories.setdefault(key, History())

    def ack(self, key: str, revision: str | None) -> None:
        history = self.history(key)
        history.states.append((revision, time.monotonic()))
        history.in_flight = None


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    revision: str | None
    retry_after: str | None


async def send(http: aiohttp.ClientSession, method: str, path: str, **kwargs: Any) -> Reply:
    async with http.request(method, path, **kwargs) as resp:
        body = await resp.json() if resp.content_type == "application/json" else None
        etag = resp.headers.get("ETag")
        return Reply(
            resp.status, body, etag.strip('"') if etag else None, resp.headers.get("Retry-After")
        )


def created(prefix: str, name: str, value: str) -> Callable[[str, dict[str, Any]], bool]:
    """Recognizes the document an unacknowledged create would have made."""
    return lambda key, doc: key.startswith(prefix) and doc.get(name) == value


class Writer:
    """One client doing user -> driver -> patch (-> cascade delete) until the API refuses."""

    def __init__(self, http: aiohttp.ClientSession, load: Load, number: int, tag: str) -> None:
        self.http, self.load, self.number, self.tag = http, load, number, tag

    async def call(self, method: str, path: str, expected: int, **kwargs: Any) -> Reply | None:
        self.load.attempted += 1
        reply = await send(self.http, method, path, **kwargs)
        if reply.status != expected:
            code = reply.body["error"]["code"] if isinstance(reply.body, dict) else ""
            self.load.refusals.append((reply.status, str(code), reply.retry_after))
            return None
        self.load.acknowledged += 1
        return reply

    async def run(self) -> None:
        load, n = self.load, 0
        while True:
            name = f"Crash{self.tag}w{self.number}n{n}"
            load.creates_in_flight[self.number] = created("user:", "username", name)
            made = await self.call("POST", "/api/users", 201, json=user_body(name))
            if made is None:
                return
            user_id, user_key = made.body["user_id"], f"user:{made.body['user_id']}"
            load.ack(user_key, made.revision)
            load.creates_in_flight[self.number] = created("driver:", "user_id", user_id)
            made = await self.call("POST", "/api/drivers", 201, json=driver_body(user_id))
            if made is None:
                return
            del load.creates_in_flight[self.number]
            driver_id = made.body["driver_id"]
            driver_key = f"driver:{driver_id}"
            load.ack(driver_key, made.revision)
            acked = made.body
            load.history(driver_key).in_flight = lambda doc, acked=acked: (
                doc is not None
                and doc["status"] == "optimized"
                and {**doc, "status": "", "timestamp": ""}
                == {**acked, "status": "", "timestamp": ""}
            )
            headers = {"If-Match": f'"{made.revision}"'}
            patched = await self.call(
                "PATCH",
                f"/api/drivers/{driver_id}",
                200,
                json={"status": "optimized"},
                headers=headers,
            )
            if patched is None:
                return
            load.ack(driver_key, patched.revision)
            if n % 3 == 2:
                for key in (user_key, driver_key):  # one commit: both go, or neither
                    load.history(key).in_flight = lambda doc: doc is None
                if await self.call("DELETE", f"/api/users/{user_id}", 204) is None:
                    return
                load.ack(user_key, None)
                load.ack(driver_key, None)
            n += 1


async def documents(url: str) -> dict[str, bytes]:
    """Every user and driver document, read from Redis directly (SCAN and JSON.MGET)."""
    client = connect(url)
    try:
        found: dict[str, bytes] = {}
        for prefix in ("user", "driver"):
            names = list(
                dict.fromkeys([k.decode() async for k in client.scan_iter(match=f"{prefix}:*")])
            )
            for start in range(0, len(names), 500):
                batch = names[start : start + 500]
                raws = await call(client, "JSON.MGET", *batch, ".")
                found.update({k: r for k, r in zip(batch, raws, strict=True) if r is not None})
        return found
    finally:
        await client.aclose()


@dataclass(frozen=True)
class Verdict:
    lost: int  # acknowledged writes whose effect is gone
    window_s: float  # from the oldest lost acknowledgement to the kill; 0 when nothing was lost


def judge(load: Load, stored: dict[str, bytes], killed_at: float) -> Verdict:
    """Place every key's stored state in its history; fail on any state no write explains."""
    left = dict(stored)
    lost, oldest = 0, killed_at
    for key, history in load.histories.items():
        raw = left.pop(key, None)
        doc: Doc = codec.loads(raw) if raw is not None else None
        if history.in_flight is not None and history.in_flight(doc):
            continue  # the write in flight at the crash went through
        revision = codec.revision(raw) if raw is not None else None
        matches = [i for i, (state, _) in enumerate(history.states) if state == revision]
        assert matches, f"{key} holds {raw!r}, a state no write produced"
        newer = history.states[max(matches) + 1 :]
        if newer:
            lost += len(newer)
            oldest = min(oldest, newer[0][1])
    # Documents nobody acknowledged: each must be the one create some writer had in flight.
    explained: set[int] = set()
    for key, raw in left.items():
        doc = codec.loads(raw)
        owners = [n for n, match in load.creates_in_flight.items() if match(key, doc)]
        assert len(owners) == 1 and owners[0] not in explained, f"unexplained {key}: {doc}"
        explained.add(owners[0])
    return Verdict(lost, killed_at - oldest if lost else 0.0)


async def crash_under_load(
    server: EmbeddedRedis, live: LiveApp, load: Load, *, writers: int, seconds: float, tag: str
) -> float:
    """Run the writers, SIGKILL Redis mid-load, return the monotonic time of the kill."""
    async with aiohttp.ClientSession(live.base_url, headers=AUTH) as http:
        tasks = [asyncio.create_task(Writer(http, load, n, tag).run()) for n in range(writers)]
        started = time.monotonic()
        while time.monotonic() - started < seconds or load.acknowledged < MIN_ACKS_BEFORE_KILL:
            assert not all(t.done() for t in tasks), f"writers stopped early: {load.refusals}"
            await asyncio.sleep(0.05)
        killed_at = time.monotonic()
        await asyncio.to_thread(server.kill)
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    # The app itself stays up: a dead Redis is 503 with Retry-After, never a 500.
    assert load.refusals, "every writer ends on a refused write"
    for status, code, retry_after in load.refusals:
        assert (status, code) == (503, "redis_unavailable"), load.refusals
        assert retry_after is not None and int(retry_after) >= 1
    return killed_at


async def restart_and_recover(server: EmbeddedRedis, live: LiveApp, load: Load, tag: str) -> float:
    """Start Redis again on its data dir; seconds until the same app acknowledges a write and
    reports ready (indexes rebuilt)."""
    began = time.monotonic()
    await asyncio.to_thread(server.start)
    async with aiohttp.ClientSession(live.base_url, headers=AUTH) as http:
        name, written, ready = f"After{tag}", False, False
        while not (written and ready):
            assert time.monotonic() - began < RECOVERY_LIMIT_S, "the app did not recover"
            if not written:
                reply = await send(http, "POST", "/api/users", json=user_body(name))
                assert reply.status in (201, 503), reply
                if reply.status == 201:
                    load.ack(f"user:{reply.body['user_id']}", reply.revision)
                    written = True
            reply = await send(http, "GET", "/ready")
            assert reply.status in (200, 503), reply
            ready = reply.status == 200
            await asyncio.sleep(0.02)
    return time.monotonic() - began


async def assert_consistent(url: str) -> None:
    client = connect(url)
    try:
        ks = Keyspace(client)
        await ks.setup()
        report = await inspect(ks)
        assert report.clean, report.problems
        assert report.documents > 0
    finally:
        await client.aclose()


async def run_crashes(
    private_server: ServerFactory,
    live_app: Callable[..., Any],
    *,
    appendfsync: str,
    writers: int,
    seconds: float,
    cycles: int,
) -> tuple[Load, list[Verdict], list[float]]:
    server = private_server(name=f"crash-{appendfsync}", appendfsync=appendfsync)
    live: LiveApp = await live_app(server.url)
    load, verdicts, recoveries = Load(), [], []
    for cycle in range(cycles):
        tag = f"{appendfsync[0]}{cycle}"
        killed_at = await crash_under_load(
            server, live, load, writers=writers, seconds=seconds, tag=tag
        )
        recoveries.append(await restart_and_recover(server, live, load, tag))
        verdicts.append(judge(load, await documents(server.url), killed_at))
        await assert_consistent(server.url)
        # The next cycle starts from what survived, with nothing in flight any more.
        stored = await documents(server.url)
        for key, history in load.histories.items():
            raw = stored.get(key)
            history.states = [(codec.revision(raw) if raw is not None else None, -math.inf)]
            history.in_flight = None
        load.creates_in_flight.clear()
        for key, raw in stored.items():
            load.histories.setdefault(key, History([(codec.revision(raw), -math.inf)]))
        load.refusals.clear()
    return load, verdicts, recoveries


async def test_sigkill_with_fsync_always_keeps_every_acknowledged_write(
    private_server: ServerFactory, live_app: Callable[..., Any], figures: Figures
) -> None:
    load, verdicts, recoveries = await run_crashes(
        private_server, live_app, appendfsync="always", writers=8, seconds=1.0, cycles=1
    )
    assert [v.lost for v in verdicts] == [0]
    figures.record(
        "crash appendfsync=always",
        ops=load.attempted,
        acknowledged=load.acknowledged,
        lost=0,
        recovery_s=f"{recoveries[0]:.2f}",
    )


async def test_sigkill_with_fsync_everysec_loses_at_most_the_window(
    private_server: ServerFactory, live_app: Callable[..., Any], figures: Figures
) -> None:
    load, verdicts, recoveries = await run_crashes(
        private_server, live_app, appendfsync="everysec", writers=8, seconds=1.5, cycles=1
    )
    verdict = verdicts[0]
    assert verdict.window_s <= EVERYSEC_BOUND_S, verdict
    figures.record(
        "crash appendfsync=everysec",
        ops=load.attempted,
        acknowledged=load.acknowledged,
        lost=verdict.lost,
        loss_window_s=f"{verdict.window_s:.2f}",
        recovery_s=f"{recoveries[0]:.2f}",
    )


@pytest.mark.soak
@pytest.mark.parametrize("appendfsync", ["always", "everysec"])
async def test_repeated_crashes_under_heavier_load(
    private_server: ServerFactory,
    live_app: Callable[..., Any],
    figures: Figures,
    appendfsync: str,
) -> None:
    load, verdicts, recoveries = await run_crashes(
        private_server, live_app, appendfsync=appendfsync, writers=24, seconds=4.0, cycles=4
    )
    if appendfsync == "always":
        assert [v.lost for v in verdicts] == [0] * len(verdicts)
    assert max(v.window_s for v in verdicts) <= EVERYSEC_BOUND_S, verdicts
    figures.record(
        f"soak crash appendfsync={appendfsync} x{len(verdicts)}",
        ops=load.attempted,
        acknowledged=load.acknowledged,
        lost=sum(v.lost for v in verdicts),
        loss_window_s=f"{max(v.window_s for v in verdicts):.2f}",
        recovery_s=f"{max(recoveries):.2f}",
    )
