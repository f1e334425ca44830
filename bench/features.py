"""7. Locks, operation logs, cached lists and profiles, on NeuraForge's own declarations.

* A document lock acquired and released (``ks.locks``, two scripts, the fencing counter
  drawn on every acquire), against the seed's plain lock: ``SET NX PX`` + ``DEL``.
* Operation-log appends of one operation and of a batch of ten, and a read of 100
  operations (``ks.oplogs``), against a bare ``RPUSH`` of the same entry and ``LRANGE``
  of 100 entries parsed with orjson (no cap, expiry, sequence numbers or lock check).
* A cached list (``GET /api/projects?status=active&sort=-created_at``, NeuraForge's
  ``idx_projects_active``) answered through ``keyspace.AnswerCache``: a hit (one lookup
  script), a miss (lookup, the list computed, the answer stored) and the list computed
  without any cache, the three answers checked equal.
* A cached profile (``GET /api/users/{id}/profile``, the seed's ``user:profile:{user_id}``,
  ``ks.profiles``) of a user with a ``user_profiles`` companion: a hit (one lookup script), a
  miss (the entry deleted first, then the lookup, three reads and the store) and the profile
  computed without any cache, the three answers checked equal.

Each at 1 and 32 concurrent callers, all variants interleaved round by round; every figure
is a median over the runs (latency over all calls of all runs).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import orjson

from keyspace import AnswerCache, Keyspace, params_hash, systems
from keyspace.connection import call
from keyspace.oplog import oplogged
from keyspace.query import parse
from keyspace.schema import EntitySpec

from .common import Context, Report, Result
from .http_load import Budget, Call, Load, budget, closed_loop, interleaved, merged
from .references import fresh

SECTION = "7. Locks, operation logs, cached lists and profiles"
CALLERS = (1, 32)
USERS, PROJECTS = 20, 500
LOCK_DOCS = 64  # more than the callers: each call locks a document nobody else holds
APPEND_DOCS = 64
READ_DOCS, READ_OPS = 8, 100
BATCH = 10
CACHE_PARAMS = {"status": ["active"], "sort": ["-created_at"], "limit": ["20"]}
MISS_TTL_SECONDS = 2  # misses store a new entry each: short-lived, so memory stays flat
OPERATION = {"operation": "insert", "position": 42, "content": "the quick brown fox"}


@dataclass
class World:
    """NeuraForge's keyspace on the benchmark server and the documents the calls use."""

    ks: Keyspace
    user: str
    lock_docs: asyncio.Queue[str]
    append_docs: list[str]
    read_docs: list[str]

    def spec(self, name: str) -> EntitySpec:
        return self.ks.schema.entity(name)


async def _seed(ctx: Context) -> World:
    """Empty the server, set NeuraForge up beside MultiFrame and create users, projects
    (every third active), documents and the 100-operation logs the reads use."""
    await fresh(ctx.client, ctx.keyspace)
    ks = Keyspace(ctx.client, systems.load("neuraforge").schema)
    await ks.setup()
    users, projects, documents = (ks.schema.entity(n) for n in ("users", "projects", "documents"))
    gate = asyncio.Semaphore(32)

    async def create(spec: EntitySpec, body: dict[str, object]) -> str:
        async with gate:
            return str((await ks.create(spec, body)).doc["id"])

    user_ids = await asyncio.gather(
        *(create(users, {"email": f"u{n}@bench.test", "name": f"User {n}"}) for n in range(USERS))
    )
    statuses = itertools.cycle(("active", "completed", "archived"))
    project_ids = await asyncio.gather(
        *(
            create(
                projects,
                {"name": f"Project {n}", "status": next(statuses), "owner_id": user_ids[n % USERS]},
            )
            for n in range(PROJECTS)
        )
    )
    doc_ids = await asyncio.gather(
        *(
            create(
                documents,
                {"project_id": project_ids[0], "title": f"Draft {n}", "created_by": user_ids[0]},
            )
            for n in range(LOCK_DOCS + APPEND_DOCS + READ_DOCS)
        )
    )
    companion = {"user_id": user_ids[0], "research_interests": ["AI"], "embedding": [1.0] * 384}
    await ks.create(ks.schema.entity("user_profiles"), companion)
    free: asyncio.Queue[str] = asyncio.Queue()
    for doc_id in doc_ids[:LOCK_DOCS]:
        free.put_nowait(doc_id)
    read_docs = doc_ids[LOCK_DOCS + APPEND_DOCS :]
    for doc_id in read_docs:
        for _ in range(READ_OPS // BATCH):
            await ks.oplogs.append(documents, doc_id, user_ids[0], [OPERATION] * BATCH)
    return World(ks, user_ids[0], free, doc_ids[LOCK_DOCS : LOCK_DOCS + APPEND_DOCS], read_docs)


def _lock_calls(ctx: Context, world: World) -> dict[str, Call]:
    docs = world.spec("documents")
    locks = world.ks.locks
    value = orjson.dumps({"user_id": world.user, "locked_at": "now", "operation": "editing"})

    async def ours(_: int) -> None:
        doc_id = await world.lock_docs.get()
        try:
            lock = await locks.acquire(docs, doc_id, world.user)
            await locks.release(docs, doc_id, world.user, fencing_token=lock.fencing_token)
        finally:
            world.lock_docs.put_nowait(doc_id)

    async def plain(_: int) -> None:
        doc_id = await world.lock_docs.get()
        key = f"seed:doc:lock:{doc_id}"  # the seed's lock, apart from the namespace's
        try:
            if await call(ctx.client, "SET", key, value, "NX", "PX", 30_000) is None:
                raise RuntimeError(f"{key} was held")
            await call(ctx.client, "DEL", key)
        finally:
            world.lock_docs.put_nowait(doc_id)

    return {"lock acquire + release (ks.locks)": ours, "plain lock SET NX PX + DEL": plain}


def _oplog_calls(ctx: Context, world: World) -> dict[str, Call]:
    docs, logs, user = world.spec("documents"), world.ks.oplogs, world.user
    appends, reads = world.append_docs, world.read_docs
    entry = orjson.dumps({**OPERATION, "user_id": user, "timestamp": "now"})

    async def append_one(n: int) -> None:
        await logs.append(docs, appends[n % len(appends)], user, OPERATION)

    async def append_batch(n: int) -> None:
        await logs.append(docs, appends[n % len(appends)], user, [OPERATION] * BATCH)

    async def read(n: int) -> None:
        found = await logs.read(docs, reads[n % len(reads)], since=0, limit=READ_OPS)
        if len(found.items) != READ_OPS:
            raise RuntimeError(f"read {len(found.items)} operations, not {READ_OPS}")

    async def rpush(n: int) -> None:
        await call(ctx.client, "RPUSH", f"seed:doc:ops:{appends[n % len(appends)]}", entry)

    read_keys = [docs.names.oplog_key(oplogged(docs).key, doc_id) for doc_id in reads]

    async def lrange(n: int) -> None:
        raw = await call(ctx.client, "LRANGE", read_keys[n % len(read_keys)], 0, READ_OPS - 1)
        if len([orjson.loads(item) for item in raw]) != READ_OPS:
            raise RuntimeError("the raw read found fewer operations")

    return {
        "op append, 1 operation (ks.oplogs)": append_one,
        f"op append, batch of {BATCH} (ks.oplogs)": append_batch,
        f"op read, {READ_OPS} operations (ks.oplogs)": read,
        "raw RPUSH of one entry": rpush,
        f"raw LRANGE of {READ_OPS} entries + orjson.loads": lrange,
    }


async def _cache_calls(world: World) -> dict[str, Call]:
    """Hit, miss and uncached list calls; raises unless the three answer the same bytes."""
    projects = world.spec("projects")
    names = world.ks.schema.names
    query = parse(projects, CACHE_PARAMS)

    async def compute() -> bytes:
        page = await world.ks.list(projects, query)
        return orjson.dumps(
            {"items": page.items, "total": page.total, "next_cursor": page.next_cursor}
        )

    scripts = world.ks.scripts
    hits = AnswerCache(scripts, names, projects.collection, (projects,))
    misses = AnswerCache(scripts, names, projects.collection, (projects,), MISS_TTL_SECONDS)
    key = params_hash(CACHE_PARAMS)

    def unique(n: int) -> str:  # a key no earlier call stored: every lookup misses
        return params_hash({**CACHE_PARAMS, "bench_miss": [str(n)]})

    uncached = await compute()
    missed, was_hit = await misses.answer(unique(0), compute)
    await hits.answer(key, compute)
    hit, from_cache = await hits.answer(key, compute)
    if not from_cache or was_hit or not uncached == missed == hit:
        raise RuntimeError("cached, missed and computed answers differ, or no hit/miss")

    async def lookup_hit(_: int) -> None:
        if not (await hits.answer(key, compute))[1]:
            raise RuntimeError("a cache lookup missed")

    async def lookup_miss(n: int) -> None:
        if (await misses.answer(unique(n), compute))[1]:
            raise RuntimeError("a unique cache lookup hit")

    async def plain(_: int) -> None:
        await compute()

    return {
        "cached list, hit (AnswerCache)": lookup_hit,
        "cached list, miss (lookup + list + store)": lookup_miss,
        "list without cache (ks.list + orjson)": plain,
    }


async def _profile_calls(world: World) -> dict[str, Call]:
    """Hit, miss and uncached profile reads; raises unless the three answer the same bytes."""
    users = world.spec("users")
    profile = users.profile
    assert profile is not None
    uncached_spec = replace(users, profile=replace(profile, cached=False))
    entry = world.ks.schema.names.profile_key(profile.key, world.user)
    profiles = world.ks.profiles
    uncached = await profiles.read(uncached_spec, world.user)
    await world.ks.client.delete(entry)
    missed = await profiles.read(users, world.user)
    if not await world.ks.client.exists(entry) or not uncached == missed:
        raise RuntimeError("the profile was not stored, or differs from the computed one")
    hit = await profiles.read(users, world.user)
    if hit != uncached:
        raise RuntimeError("the cached profile differs from the computed one")

    async def lookup_hit(_: int) -> None:
        await profiles.read(users, world.user)

    async def lookup_miss(_: int) -> None:
        await world.ks.client.delete(entry)
        await profiles.read(users, world.user)

    async def plain(_: int) -> None:
        await profiles.read(uncached_spec, world.user)

    return {
        "profile, hit (ks.profiles)": lookup_hit,
        "profile, miss (DEL, lookup + 3 reads + store)": lookup_miss,
        "profile without cache (3 reads)": plain,
    }


def _runner(fn: Call, callers: int, plan: Budget) -> Callable[[], Awaitable[Load]]:
    return lambda: closed_loop(
        fn, concurrency=callers, requests=plan.requests, max_seconds=plan.seconds
    )


@dataclass(frozen=True)
class Figure:
    rate: float
    median: float
    p99: float
    note: str


def _figure(loads: list[Load]) -> Figure:
    rate, median, p99, errors, first = merged(loads)
    note = f"median of {len(loads)} runs; errors {errors}" + (f" (first: {first})" if first else "")
    return Figure(rate, median, p99, note)


def _ratio(name: str, num: float, den: float, unit: str, what: str) -> Result:
    detail = f"{num:,.2f} / {den:,.2f} {unit}, {what}"
    return Result(SECTION, name, num / den if den else 0.0, "x", detail=detail)


RATIOS = (  # (name, numerator, denominator): ops/s of the engine's call over its floor
    (
        "lock: ks.locks / plain SET NX + DEL",
        "lock acquire + release (ks.locks)",
        "plain lock SET NX PX + DEL",
    ),
    (
        "op append 1: ks.oplogs / raw RPUSH",
        "op append, 1 operation (ks.oplogs)",
        "raw RPUSH of one entry",
    ),
    (
        f"op read {READ_OPS}: ks.oplogs / raw LRANGE",
        f"op read, {READ_OPS} operations (ks.oplogs)",
        f"raw LRANGE of {READ_OPS} entries + orjson.loads",
    ),
)


def _report(report: Report, figures: dict[str, Figure], callers: int) -> None:
    who = f"{callers} caller" + ("s" if callers > 1 else "")
    floors = {den for _, _, den in RATIOS}
    for name, fig in figures.items():
        if name not in floors:
            report.results.append(
                Result(SECTION, f"{name}, {who}", fig.median, "ms", fig.p99, fig.note)
            )
        per = f"; {fig.rate * BATCH:,.0f} operations/s" if "batch" in name else ""
        report.results.append(
            Result(SECTION, f"{name}, {who}", fig.rate, "calls/s", detail=fig.note + per)
        )
    for label, num, den in RATIOS:
        report.results.append(
            _ratio(
                f"{label}, {who}",
                figures[num].rate,
                figures[den].rate,
                "calls/s",
                "higher is better",
            )
        )
    hit, miss = (
        figures["cached list, hit (AnswerCache)"],
        figures["cached list, miss (lookup + list + store)"],
    )
    plain = figures["list without cache (ks.list + orjson)"]
    report.results.append(
        _ratio(f"cache miss / hit latency, {who}", miss.median, hit.median, "ms", "medians")
    )
    report.results.append(
        _ratio(
            f"list without cache / cache hit latency, {who}",
            plain.median,
            hit.median,
            "ms",
            "medians",
        )
    )
    report.results.append(
        _ratio(
            f"cache miss / list without cache latency, {who}",
            miss.median,
            plain.median,
            "ms",
            "medians",
        )
    )
    hit, miss = figures["profile, hit (ks.profiles)"], figures["profile without cache (3 reads)"]
    report.results.append(
        _ratio(
            f"profile without cache / hit latency, {who}", miss.median, hit.median, "ms", "medians"
        )
    )


async def run(ctx: Context, report: Report) -> None:
    plan = budget(ctx)
    try:
        world = await _seed(ctx)
        calls = {
            **_lock_calls(ctx, world),
            **_oplog_calls(ctx, world),
            **await _cache_calls(world),
            **await _profile_calls(world),
        }
        for callers in CALLERS:
            variants = {name: _runner(fn, callers, plan) for name, fn in calls.items()}
            loads = await interleaved(variants, plan.rounds)
            _report(report, {name: _figure(loads[name]) for name in calls}, callers)
    finally:
        await fresh(ctx.client, ctx.keyspace)
