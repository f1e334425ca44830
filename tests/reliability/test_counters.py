"""Scenario 2 of issue 7: counter integrity under concurrent creates from several processes.

Worker processes (spawned, each with its own event loop and connection pool, as separate API
processes would be) create documents of every entity type through the keyspace API while
deleting some of them, and some whole users with everything they own. Afterwards Redis is
read directly: every id was issued once, counters equal the highest id issued, the generated
numbers have no gaps (a refused create draws no number), and ids freed by deletes are never
issued again."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import pytest
from redis.asyncio import Redis

from keyspace import (
    AlreadyExists,
    Keyspace,
    MissingReference,
    NotFound,
    connect,
    keys,
)
from keyspace.server import EmbeddedRedis

from .conftest import Figures
from .helpers_races import OWNED, assert_consistent, counter, documents, owned_body

pytestmark = pytest.mark.redis

COUNTED = ("user", "driver", "collab", "process", "quest")  # ids drawn from <prefix>_counter
IN_FLIGHT = 32  # concurrent operations per worker process


@dataclass(frozen=True)
class Job:
    """What one worker does: ``creates`` creates in all, a tenth of them users; every
    ``delete_every``-th owned document is deleted right after its create, and every
    ``drop_every``-th user is deleted (with what it owns) while creates for it are in flight
    (0: no deletes); ``imports`` explicit ids are placed just ahead of the counters meanwhile."""

    url: str
    worker: int
    phase: int
    creates: int
    delete_every: int = 5
    drop_every: int = 10
    imports: int = 0


@dataclass
class Outcome:
    """What one worker saw; (prefix, id) pairs, plus the owner of each owned document."""

    created: list[tuple[str, str]] = field(default_factory=list)
    imported: list[tuple[str, str]] = field(default_factory=list)
    deleted: list[tuple[str, str]] = field(default_factory=list)
    owner: dict[str, str] = field(default_factory=dict)  # "<prefix>:<id>" -> user id
    refused: int = 0  # creates refused because their owner was deleted first
    import_conflicts: int = 0  # imports whose id a generated create had just taken
    seconds: float = 0.0


def run_worker(job: Job) -> Outcome:
    """Entry point in the spawned process."""
    return asyncio.run(_work(job))


async def _work(job: Job) -> Outcome:
    client = connect(job.url)
    ks = Keyspace(client)
    out = Outcome()
    limit = asyncio.Semaphore(IN_FLIGHT)
    started = time.perf_counter()
    users_wanted = max(1, job.creates // 10)
    tag = f"p{job.phase}w{job.worker}"

    async def make_user(n: int) -> str:
        async with limit:
            body = {"username": f"U{tag}n{n}", "email": f"u{tag}n{n}@c.example", "role": "designer"}
            doc = (await ks.create(ks.entity("user"), body)).doc
            out.created.append(("user", doc["user_id"]))
            return str(doc["user_id"])

    users = list(await asyncio.gather(*(make_user(n) for n in range(users_wanted))))

    async def make_owned(n: int) -> None:
        prefix, user_id = OWNED[n % len(OWNED)], users[n % len(users)]
        spec = ks.entity(prefix)
        async with limit:
            try:
                doc = (await ks.create(spec, owned_body(prefix, user_id, n))).doc
            except MissingReference:
                out.refused += 1
                return
            doc_id = str(doc[spec.id_field])
            out.created.append((prefix, doc_id))
            out.owner[f"{prefix}:{doc_id}"] = user_id
            if job.delete_every and n % job.delete_every == 0:
                try:
                    await ks.delete(spec, doc_id)
                    out.deleted.append((prefix, doc_id))
                except NotFound:  # the owner's cascade got there first
                    pass

    async def drop_user(user_id: str) -> None:
        async with limit:
            await ks.delete(ks.entity("user"), user_id)
            out.deleted.append(("user", user_id))

    async def place_imports() -> None:
        for n in range(job.imports):
            prefix = COUNTED[1 + n % (len(COUNTED) - 1)]
            spec = ks.entity(prefix)
            ahead = int(await client.get(keys.counter_key(prefix)) or 0) + 3
            doc_id = keys.generated_id(prefix, ahead)
            body = {**owned_body(prefix, users[0], n), spec.id_field: doc_id}
            try:
                await ks.create(spec, body)
                out.imported.append((prefix, doc_id))
                out.owner[f"{prefix}:{doc_id}"] = users[0]
            except AlreadyExists:
                out.import_conflicts += 1
            await asyncio.sleep(0.005)

    owned = job.creates - users_wanted
    # users[0] is never dropped: imports need an owner that stays.
    drops = [
        drop_user(u)
        for i, u in enumerate(users)
        if job.drop_every and i and i % job.drop_every == 0
    ]
    jobs = [make_owned(n) for n in range(owned)]
    step = max(1, len(jobs) // (len(drops) + 1))
    for i, drop in enumerate(drops):  # spread the user deletes through the creates
        jobs.insert((i + 1) * step + i, drop)
    await asyncio.gather(*jobs, place_imports())
    out.seconds = time.perf_counter() - started
    await client.aclose()
    return out


async def run_phase(
    url: str, phase: int, workers: int, creates: int, imports: int, deletes: bool = True
) -> Outcome:
    """Run ``workers`` spawned processes at once; returns their merged outcome."""
    every = {} if deletes else {"delete_every": 0, "drop_every": 0}
    context = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()
    per_worker = creates // workers
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        outcomes = await asyncio.gather(
            *(
                loop.run_in_executor(
                    pool, run_worker, Job(url, w, phase, per_worker, imports=imports, **every)
                )
                for w in range(workers)
            )
        )
    merged = Outcome()
    for o in outcomes:
        merged.created += o.created
        merged.imported += o.imported
        merged.deleted += o.deleted
        merged.owner.update(o.owner)
        merged.refused += o.refused
        merged.import_conflicts += o.import_conflicts
        merged.seconds = max(merged.seconds, o.seconds)
    return merged


def numbers(pairs: list[tuple[str, str]], prefix: str) -> list[int]:
    found = [keys.counter_value_of(p, i) for p, i in pairs if p == prefix]
    assert None not in found, found
    return sorted(n for n in found if n is not None)


def surviving(outcome: Outcome) -> dict[str, set[str]]:
    """prefix -> ids that must still exist: created, not deleted, owner not deleted."""
    gone = set(outcome.deleted)
    dropped = {i for p, i in gone if p == "user"}
    out: dict[str, set[str]] = defaultdict(set)
    for prefix, doc_id in outcome.created + outcome.imported:
        owner = outcome.owner.get(f"{prefix}:{doc_id}")
        if (prefix, doc_id) not in gone and owner not in dropped:
            out[prefix].add(doc_id)
    return out


async def assert_documents(redis: Redis, expected: dict[str, set[str]]) -> None:
    for prefix in ("user", *OWNED):
        assert set(await documents(redis, prefix)) == expected.get(prefix, set()), prefix


@pytest.mark.parametrize(
    ("workers", "creates"),
    [
        pytest.param(4, 10_000, id="10k"),
        pytest.param(8, 100_000, id="100k", marks=pytest.mark.soak),
    ],
)
async def test_counters_under_concurrent_creates_and_deletes(
    real_client: Redis, redis_server: EmbeddedRedis, figures: Figures, workers: int, creates: int
) -> None:
    await Keyspace(real_client).setup()  # the indexes, once, before the workers write
    started = time.perf_counter()
    first = await run_phase(redis_server.url, 1, workers, creates, imports=0)

    # Every create got its own id; numbers 1..counter were each issued exactly once (a create
    # refused for a missing owner draws none), so the counter is the highest id issued.
    ids = first.created
    assert len(ids) == len(set(ids))
    assert len(ids) + first.refused == creates // workers * workers
    top: dict[str, int] = {}
    for prefix in COUNTED:
        top[prefix] = await counter(real_client, prefix)
        assert numbers(ids, prefix) == list(range(1, top[prefix] + 1)), prefix
    nfts_minted = sum(p == "nft" for p, _ in ids)
    assert await counter(real_client, "nft") == nfts_minted
    assert first.deleted, "the deletes must interleave with the creates"
    await assert_documents(real_client, surviving(first))

    # More creates after the deletes, with imports racing just ahead of the counters: no
    # number is issued twice or reused, and each counter stays at the highest id issued.
    # No deletes in this phase: an import may re-create a generated id that was deleted
    # between its counter read and its commit (explicit ids are the client's choice), so
    # deletes here would make a freed-and-imported id indistinguishable from a reissue.
    more = max(workers * 100, creates // 10)
    second = await run_phase(redis_server.url, 2, workers, more, imports=20, deletes=False)
    issued = first.created + second.created + second.imported
    assert len(issued) == len(set(issued))
    for prefix in COUNTED:
        fresh = numbers(second.created, prefix)
        assert fresh and fresh[0] > top[prefix], prefix
        assert await counter(real_client, prefix) == max(numbers(issued, prefix)), prefix
    assert second.imported, "some imports must win against the generated creates"
    assert await counter(real_client, "nft") == sum(p == "nft" for p, _ in issued)

    merged = Outcome(
        created=first.created + second.created,
        imported=second.imported,
        deleted=first.deleted + second.deleted,
        owner={**first.owner, **second.owner},
    )
    await assert_documents(real_client, surviving(merged))
    await assert_consistent(real_client)
    elapsed = time.perf_counter() - started
    total = len(first.created) + len(second.created) + len(second.imported)
    figures.record(
        f"counter integrity ({workers} processes)",
        ops=total + len(merged.deleted),
        creates=total,
        deletes=len(merged.deleted),
        refused_missing_owner=first.refused + second.refused,
        imports=len(second.imported),
        conflicts=second.import_conflicts,
        reused_ids=0,
        losses=0,
        creates_per_s=round(total / (first.seconds + second.seconds)),
        seconds=round(elapsed, 2),
    )
