"""Benchmark data: N drivers written as the service's documents and, optionally, as the seed's
JSON strings, from one deterministic stream so both designs hold the same drivers.

Drivers are spread over N/10 users (``scripts.generate.World`` chip data, versions and
timestamps). One chosen user (``user_1``) owns about 2% of them (at most 200), a quarter of
those ``optimized``: its optimized drivers are the filtered list the listing section times.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from keyspace import DRIVER, USER, EntitySpec, Keyspace
from keyspace.documents import for_create
from scripts.generate import World, _commit, _reserve

SEED_PREFIX = "seed:driver:"  # the seed's `driver:<id>` strings, moved aside from the documents
CHOSEN = "user_1"
BATCH = 5000

# ``scripts.generate.World.time``: 2025, month 1..9, day 1..28, hour 0..23, minute 0..59, second
# 00, each drawn uniformly: 362,880 equally likely minutes (days 29..31 never occur).
MONTHS, DAYS, MINUTES_A_DAY = 9, 28, 24 * 60
TIME_SLOTS = MONTHS * DAYS * MINUTES_A_DAY
WINDOW_START = datetime(2025, 5, 10)  # mid-range, with DAYS - 10 + 1 whole days left in May


def time_window(share: float, start: datetime = WINDOW_START) -> tuple[str, str, float]:
    """An inclusive ``(low, high)`` window of ``timestamp`` strings holding ``share`` of the
    generated timestamps, and the exact share it holds; within one month's generated days."""
    minutes = max(1, round(share * TIME_SLOTS))
    last = start + timedelta(minutes=minutes - 1)
    if last.month != start.month or last.day > DAYS or start.day > DAYS:
        raise ValueError(f"a {share:.2%} window from {start:%Y-%m-%d} leaves the generated days")
    return start.isoformat(), last.isoformat(), minutes / TIME_SLOTS


@dataclass
class Loaded:
    """What one load wrote, and the answer the filtered list must give."""

    drivers: int
    users: int
    chosen: str
    expected: set[str] = field(default_factory=set)  # ids of the chosen user's optimized drivers
    seconds: float = 0.0


def users_for(drivers: int) -> int:
    return max(1, drivers // 10)


async def reset(ks: Keyspace) -> None:
    """An empty server with the service's indexes and singletons (FLUSHALL + setup)."""
    await ks.client.flushall()
    await ks.setup()


async def _commit_all(ks: Keyspace, docs: list[tuple[EntitySpec, str, dict[str, Any]]]) -> None:
    refused = await _commit(ks, docs)
    if refused:
        raise RuntimeError(f"{refused} benchmark documents were refused by their checks")


async def load(ks: Keyspace, drivers: int, *, seed_layout: bool, seed: int = 11) -> Loaded:
    """Write ``drivers`` drivers (and their users) through the generator's commit path;
    with ``seed_layout`` also each driver as ``SET seed:driver:<id> '<json>'``."""
    started = time.perf_counter()
    world, rng = World(seed), random.Random(seed + 1)
    n_users = users_for(drivers)
    for start in range(0, n_users, BATCH):
        size = min(BATCH, n_users - start)
        ids = list(await _reserve(ks, USER, size))
        batch = [(USER, i, for_create(USER, world.user(start + n), i)) for n, i in enumerate(ids)]
        await _commit_all(ks, batch)
    loaded = Loaded(drivers=drivers, users=n_users, chosen=CHOSEN)
    chosen_share = min(200, max(10, drivers // 50)) / drivers
    for start in range(0, drivers, BATCH):
        size = min(BATCH, drivers - start)
        docs: list[tuple[EntitySpec, str, dict[str, Any]]] = []
        for n, doc_id in enumerate(await _reserve(ks, DRIVER, size)):
            chosen = n_users == 1 or rng.random() < chosen_share
            owner = CHOSEN if chosen else f"user_{rng.randint(2, n_users)}"
            data = world.owned(DRIVER, owner, [], start + n)
            if chosen:
                data["status"] = "optimized" if rng.random() < 0.25 else "generated"
            doc = for_create(DRIVER, data, doc_id)
            if doc["user_id"] == CHOSEN and doc["status"] == "optimized":
                loaded.expected.add(doc_id)
            docs.append((DRIVER, doc_id, doc))
        await _commit_all(ks, docs)
        if seed_layout:
            async with ks.client.pipeline(transaction=False) as pipe:
                for _, doc_id, doc in docs:
                    pipe.set(SEED_PREFIX + doc_id, orjson.dumps(doc))
                await pipe.execute()
    loaded.seconds = time.perf_counter() - started
    return loaded


def repeats_for(first_ms: float, budget_ms: float, lo: int, hi: int) -> int:
    """How many timed runs fit ``budget_ms`` given one run took ``first_ms`` (within lo..hi)."""
    return max(lo, min(hi, int(budget_ms / max(first_ms, 1e-3))))
