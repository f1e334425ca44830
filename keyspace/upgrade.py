"""Bring one entity's index to the current definition: the long part of start-up.

A new index version (a changed definition, or none yet) needs its projections written
(:mod:`keyspace.reproject`), then a full build beside the old version before the alias moves.
On a large keyspace that takes minutes, so start-up only finds which entities need it
(:func:`needs_upgrade`) and the work runs apart from it; lists of those entities are refused
(503 ``not_ready``) until it is done.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from . import search
from .connection import call
from .errors import NotReady
from .keys import Names
from .projection import projected
from .reproject import reproject
from .schema import EntitySpec
from .scripts import Scripts

POLL_S = 0.05
Progress = Callable[[str], None]
# While a service builds index versions it keeps ``mf:lock:indexing`` alive (set every
# INDEXING_BEAT_S, expiring after INDEXING_TTL_MS): ``check`` tells an index not built yet
# from a missing one by it, and a service that died stops renewing it.
INDEXING = "indexing"
INDEXING_BEAT_S, INDEXING_TTL_MS = 2.0, 10_000


@dataclass(frozen=True)
class Indexing:
    """What a service's index work says of itself (:func:`mark_indexing`)."""

    pending: list[str]
    failure: str | None  # why its last attempt failed, while no attempt has made progress


async def mark_indexing(
    client: Redis, names: Names, pending: list[str], failure: str | None = None
) -> None:
    """Say, for INDEXING_TTL_MS, that this process is building the indexes of ``pending``
    (collections) and, with ``failure``, that its attempts keep failing."""
    value = orjson.dumps({"pending": pending, "failure": failure})
    await client.set(names.lock_key(INDEXING), value, px=INDEXING_TTL_MS)


async def indexing(client: Redis, names: Names) -> Indexing | None:
    """The index work a service is doing now (:func:`mark_indexing`), None for none. A key
    without an expiry, or not a string, is nobody's heartbeat (written by hand): None. A
    plain list of collections is the heartbeat of the version before (no failure)."""
    key = names.lock_key(INDEXING)
    try:
        raw, ttl = await client.get(key), await client.pttl(key)
    except ResponseError:  # another type
        return None
    if raw is None or ttl <= 0:
        return None
    try:
        said = orjson.loads(raw)
        return Indexing([str(p) for p in said["pending"]], said["failure"])
    except (ValueError, KeyError, TypeError):
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        return Indexing([p for p in text.split(", ") if p], None)


async def needs_upgrade(client: Redis, spec: EntitySpec) -> bool:
    """True unless the entity's alias points at the current definition (one round trip)."""
    return not await search.is_current(client, spec)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _every(seconds: float, progress: Progress | None) -> Progress:
    """``progress``, called at most once per ``seconds`` (the first call always passes)."""
    last = -seconds

    def report(line: str) -> None:
        nonlocal last
        if progress is not None and time.monotonic() - last >= seconds:
            last = time.monotonic()
            progress(line)

    return report


async def _wait_built(
    client: Redis, name: str, timeout: float | None, report: Progress, what: str
) -> None:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        info = search.parse_info(await call(client, "FT.INFO", name))
        if not search.is_building(info):
            return
        if deadline is not None and time.monotonic() > deadline:
            raise NotReady(f"index {name} is still being built")
        percent = float(_text(info.get("percent_indexed", 0))) * 100
        report(f"{what}: index {name} {percent:.0f}% built")
        await asyncio.sleep(POLL_S)


async def upgrade(
    client: Redis,
    scripts: Scripts,
    spec: EntitySpec,
    *,
    timeout: float | None = None,
    progress: Progress | None = None,
    every: float = 5.0,
) -> str:
    """Reproject (for a projected entity), build the current version and move the alias
    to it once complete; return its name. ``timeout`` bounds the wait for the build
    (None: as long as it takes); ``progress`` gets a line at most every ``every`` seconds."""
    report = _every(every, progress)
    target = await search.alias_target(client, spec)
    if target is not None and target.split(".")[0] == search.current_name(spec):
        return target
    if projected(spec):
        found = await reproject(
            client, scripts, spec, lambda n: report(f"{spec.collection}: {n} projections checked")
        )
        if found.changed:
            report(f"{spec.collection}: {found.changed} projections written or removed")
    name = await search.build(client, spec)
    await _wait_built(client, name, timeout, report, spec.collection)
    await search.switch(client, spec, name)
    return name
