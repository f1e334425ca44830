"""Scenario 3 of issue 7: no lost updates.

Concurrent conditional writes on one document admit exactly one writer per revision (the rest
get 412); unconditional merge patches on disjoint fields are all kept; concurrent analytics
writes on different chips all survive; concurrent collaborator adds and removes on one collab
lose nothing and duplicate nothing. Every outcome is read back from Redis directly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from keyspace import codec
from keyspace.connection import call
from keyspace.server import EmbeddedRedis

from .conftest import Figures
from .helpers_races import (
    Reply,
    Session,
    assert_consistent,
    chip,
    gather_all,
    owned_body,
    raw_documents,
    ref_sets,
    sessions,
)

pytestmark = pytest.mark.redis


async def _serve_two(redis_server: EmbeddedRedis, live_app: Callable[..., Any]) -> list[str]:
    first, second = await live_app(redis_server.url), await live_app(redis_server.url)
    return [first.base_url, second.base_url]


async def _raw(redis: Redis, key: str) -> bytes | None:
    raw: bytes | None = await call(redis, "JSON.GET", key, ".")
    return raw


def _etag(raw: bytes) -> str:
    return f'"{codec.revision(raw)}"'


@pytest.mark.parametrize(
    ("contenders", "rounds"),
    [
        pytest.param(20, 15, id="20x15"),
        pytest.param(100, 100, id="100x100", marks=pytest.mark.soak),
    ],
)
async def test_if_match_admits_one_writer_per_revision(
    real_client: Redis,
    redis_server: EmbeddedRedis,
    live_app: Callable[..., Any],
    figures: Figures,
    contenders: int,
    rounds: int,
) -> None:
    urls = await _serve_two(redis_server, live_app)
    async with sessions(urls, contenders) as opened:
        owner = await opened[0].created(
            "user", {"username": "Owner", "email": "o@x.io", "role": "designer"}
        )
        driver = await opened[0].created("driver", owned_body("driver", owner["user_id"]))
        path, key = f"/api/drivers/{driver['driver_id']}", f"driver:{driver['driver_id']}"
        barrier = asyncio.Barrier(contenders)
        conflicts = 0

        def body(r: int, c: int) -> dict[str, Any]:
            version = f"r{r}c{c}"
            if c % 2:  # half replace the whole document, half merge-patch it
                return {**{k: v for k, v in driver.items() if k != "driver_id"}, "version": version}
            return {"version": version}

        async def contend(c: int, session: Session, r: int, etag: str) -> Reply:
            await barrier.wait()
            method = "PUT" if c % 2 else "PATCH"
            return await session.call(method, path, json=body(r, c), headers={"If-Match": etag})

        for r in range(rounds):
            before = await _raw(real_client, key)
            assert before is not None
            replies = await gather_all(
                contend(c, s, r, _etag(before)) for c, s in enumerate(opened)
            )
            won = [c for c, reply in enumerate(replies) if reply.status == 200]
            assert len(won) == 1, [(rep.status, rep.code) for rep in replies]
            for reply in replies:
                if reply.status != 200:
                    assert (reply.status, reply.code) == (412, "stale_revision"), reply
            conflicts += len(replies) - 1
            after = await _raw(real_client, key)
            assert after is not None
            assert codec.loads(after)["version"] == f"r{r}c{won[0]}"
            assert replies[won[0]].body == codec.loads(after)
            assert replies[won[0]].etag == _etag(after)

        # A conditional delete racing conditional patches of the same revision: one wins.
        current = await _raw(real_client, key)
        assert current is not None

        async def last(c: int, session: Session) -> Reply:
            await barrier.wait()
            headers = {"If-Match": _etag(current)}
            if c == 0:
                return await session.call("DELETE", path, headers=headers)
            return await session.call("PATCH", path, json={"version": "late"}, headers=headers)

        final = await gather_all(last(c, s) for c, s in enumerate(opened))
    won = [r.status for r in final if r.status in (200, 204)]
    assert len(won) == 1, [(r.status, r.code) for r in final]
    # After the delete won, a loser may not see the document at all: 404 is then the answer
    # (RFC 9110 13.2.1: preconditions are ignored when the response would be 404 without them).
    refused = {412, 404} if won == [204] else {412}
    assert all(r.status in refused for r in final if r.status not in (200, 204)), final
    stored = await _raw(real_client, key)
    assert (stored is None) == (final[0].status == 204)
    await assert_consistent(real_client)
    figures.record(
        f"lost updates, If-Match ({contenders} writers x {rounds} revisions, 2 apps)",
        ops=contenders * (rounds + 1),
        winners=rounds + 1,
        conflicts=conflicts + contenders - 1,
        losses=0,
    )


# Each patcher owns one field of a driver and writes it ``WRITES`` times in a row.
FIELDS: dict[str, Callable[[int, int], dict[str, Any]]] = {
    "version": lambda p, n: {"version": f"v{p}.{n}"},
    "chip_id": lambda p, n: {"chip_id": f"chip_{p}_{n}"},
    "cores": lambda p, n: {"chip_data": {"cores": 1000 * p + n + 1}},
    "frequency": lambda p, n: {"chip_data": {"frequency": f"{p}.{n}GHz"}},
    "architecture": lambda p, n: {"chip_data": {"architecture": f"A{p}x{n}"}},
    "status": lambda p, n: {"status": "optimized"},
}


def _expected(doc: dict[str, Any], p: int, writes: int) -> dict[str, Any]:
    out = {**doc, "chip_data": dict(doc["chip_data"])}
    for make in FIELDS.values():
        change = make(p, writes - 1)
        for name, value in change.items():
            if isinstance(value, dict):
                out[name].update(value)
            else:
                out[name] = value
    return out


@pytest.mark.parametrize(
    ("drivers", "writes"),
    [pytest.param(10, 8, id="10-docs"), pytest.param(50, 10, id="50-docs", marks=pytest.mark.soak)],
)
async def test_merges_on_disjoint_fields_are_all_kept(
    real_client: Redis,
    redis_server: EmbeddedRedis,
    live_app: Callable[..., Any],
    figures: Figures,
    drivers: int,
    writes: int,
) -> None:
    """No If-Match: the service re-reads and re-applies the patch on a concurrent write. Each
    patcher conflicts with at most the other patchers' writes (fewer than the 64 retries), so
    every patch must succeed and the last value of every field must be what is stored."""
    urls = await _serve_two(redis_server, live_app)
    patchers = len(FIELDS)
    async with sessions(urls, drivers * patchers) as opened:
        owner = await opened[0].created(
            "user", {"username": "M", "email": "m@x.io", "role": "engineer"}
        )
        made = await gather_all(
            opened[0].created("driver", owned_body("driver", owner["user_id"], n))
            for n in range(drivers)
        )

        async def patcher(index: int, session: Session) -> list[Reply]:
            p, make = index // patchers, list(FIELDS.values())[index % patchers]
            path = f"/api/drivers/{made[p]['driver_id']}"
            return [await session.call("PATCH", path, json=make(p, n)) for n in range(writes)]

        started = time.perf_counter()
        replies = await gather_all(patcher(i, s) for i, s in enumerate(opened))
        elapsed = time.perf_counter() - started

    assert all(r.status == 200 for rs in replies for r in rs), [
        (r.status, r.body) for rs in replies for r in rs if r.status != 200
    ]
    stored = await raw_documents(real_client, "driver")
    for p, doc in enumerate(made):
        now = codec.loads(stored[doc["driver_id"]])
        assert {**now, "timestamp": None} == {**_expected(doc, p, writes), "timestamp": None}
    await assert_consistent(real_client)
    figures.record(
        f"lost updates, merges without If-Match ({drivers} docs x {patchers} fields, 2 apps)",
        ops=drivers * patchers * writes,
        conflicts=0,
        losses=0,
        seconds=round(elapsed, 2),
    )


async def test_chip_metrics_on_different_chips_are_all_kept(
    real_client: Redis,
    redis_server: EmbeddedRedis,
    live_app: Callable[..., Any],
    figures: Figures,
) -> None:
    """Writers on different chips never overwrite each other; writers on one chip leave one
    writer's whole entry (last writer wins per chip, never a mix of two writes)."""
    urls = await _serve_two(redis_server, live_app)
    chips, writes, shared = 100, 3, 20
    default = codec.loads(await _raw(real_client, "analytics:metrics") or b"{}")["chip_metrics"]

    def metrics(c: int, n: int) -> dict[str, float]:
        return {"performance": c % 100 + 0.5, "efficiency": n * 4.75, "temperature": c + n / 4}

    async with sessions(urls, chips + shared) as opened:

        async def writer(c: int, session: Session) -> list[Reply]:
            if c >= chips:  # all race on the same chip, each with its own consistent triple
                body = metrics(c, c - chips)
                return [await session.call("PUT", "/api/analytics/metrics/chip_shared", json=body)]
            path = f"/api/analytics/metrics/chip_r{c}"
            return [await session.call("PUT", path, json=metrics(c, n)) for n in range(writes)]

        replies = await gather_all(writer(c, s) for c, s in enumerate(opened))

    assert all(r.status == 200 for rs in replies for r in rs), {
        (r.status, str(r.body)) for rs in replies for r in rs if r.status != 200
    }
    stored = codec.loads(await _raw(real_client, "analytics:metrics") or b"{}")["chip_metrics"]
    assert set(stored) == set(default) | {f"chip_r{c}" for c in range(chips)} | {"chip_shared"}
    for name, entry in default.items():
        assert stored[name] == entry
    for c in range(chips):
        entry = stored[f"chip_r{c}"]
        assert {k: entry[k] for k in metrics(c, 0)} == metrics(c, writes - 1), c
        assert entry == replies[c][-1].body
    shared_entry = stored["chip_shared"]
    candidates = [replies[c][0].body for c in range(chips, chips + shared)]
    assert shared_entry in candidates
    figures.record(
        f"lost updates, chip metrics ({chips} chips + {shared} writers on one, 2 apps)",
        ops=chips * writes + shared,
        chips_kept=len(stored),
        conflicts=0,
        losses=0,
    )


async def test_collaborator_adds_lose_nothing_and_duplicate_nothing(
    real_client: Redis,
    redis_server: EmbeddedRedis,
    live_app: Callable[..., Any],
    figures: Figures,
) -> None:
    """Every new member is added twice at once (from both apps), staying members are re-added,
    and other members are removed meanwhile. Fewer than 64 of these change the document, so
    none may be refused for contention."""
    urls = await _serve_two(redis_server, live_app)
    initial, new, removed = 10, 30, 5
    async with sessions(urls, 2 * new + initial + removed) as opened:
        admin = opened[0]
        users = await gather_all(
            admin.created("user", {"username": f"C{i}", "email": f"c{i}@x.io", "role": "engineer"})
            for i in range(1 + initial + new)
        )
        owner, members = users[0]["user_id"], [u["user_id"] for u in users[1:]]
        present, joining = members[:initial], members[initial:]
        collab = await admin.created(
            "collab",
            {"user_id": owner, "chip_id": "chip_c", "chip_data": chip(), "collaborators": present},
        )
        path = f"/api/collabs/{collab['collab_id']}/collaborators"
        staying = present[removed:]
        ops: list[tuple[str, str]] = [("add", m) for m in joining + joining + staying]
        ops += [("remove", m) for m in present[:removed]]
        barrier = asyncio.Barrier(len(ops))

        async def op(i: int, session: Session) -> Reply:
            kind, member = ops[i]
            await barrier.wait()
            if kind == "add":
                return await session.call("POST", path, json={"user_id": member})
            return await session.call("DELETE", f"{path}/{member}")

        replies = await gather_all(op(i, s) for i, s in enumerate(opened[: len(ops)]))

    for (kind, member), reply in zip(ops, replies, strict=True):
        assert reply.status == 200, (kind, member, reply)
    stored = codec.loads(await _raw(real_client, f"collab:{collab['collab_id']}") or b"{}")
    got = stored["collaborators"]
    assert len(got) == len(set(got)), "duplicate collaborator"
    assert set(got) == set(staying) | set(joining)
    sets = await ref_sets(real_client)
    for member in members:
        key = f"mf:ref:user:{member}:collab.collaborators"
        assert (collab["collab_id"] in sets.get(key, set())) == (member in got), member
    await assert_consistent(real_client)
    figures.record(
        "lost updates, collaborator adds (2 apps)",
        ops=len(ops),
        members=len(got),
        duplicates=len(got) - len(set(got)),
        conflicts=0,
        losses=0,
    )
