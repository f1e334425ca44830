"""6. redis-om as a peer: the same creates and filtered list through ``JsonModel``.

Runs only when redis-om is installed (``pip install -e '.[peers]'``; ``make bench`` does);
otherwise the suite prints that it skipped this section. Both sides store the same
``N`` drivers (the smallest size of the run, at most :data:`LIMIT`), loaded in turns of
``N / rounds`` documents at :data:`CONCURRENCY` tasks each, so every chunk is a timed
run and both end with identical data. Then one user's optimized drivers are listed
through ``ks.list`` and through redis-om ``find().all()``, and the result sets are
asserted equal (same documents, ids aside: redis-om assigns ULIDs).

redis-om uses its own client (``get_redis_connection``, decoded replies), as its users do.
"""

# No `from __future__ import annotations`: pydantic resolves the models' field types at
# class creation, and these classes are local to a function.
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from aredis_om import EmbeddedJsonModel, Field, JsonModel, Migrator, get_redis_connection

from keyspace import DRIVER, Keyspace, parse
from keyspace.codec import now_iso

from .common import Context, Report, Result, timed
from .references import driver_body, fresh, seed

SECTION = "6. redis-om peer"
CONCURRENCY = 32
LIMIT = 10_000
OWNERS = 8

Signature = tuple[Any, ...]


def _models(client: Any) -> type[Any]:
    """The driver as a redis-om model (defined per run: redis-om binds the client at
    class creation)."""

    class PeerChip(EmbeddedJsonModel):  # type: ignore[misc]
        type: str = Field(index=True)
        cores: int = Field(index=True)
        frequency: str
        architecture: str

        class Meta:
            database = client

    class PeerDriver(JsonModel, index=True):  # type: ignore[misc,call-arg]
        user_id: str = Field(index=True)
        chip_id: str = Field(index=True)
        status: str = Field(index=True)
        version: str
        chip_data: PeerChip
        timestamp: str

        class Meta:
            database = client
            global_key_prefix = "peer"
            model_key_prefix = "driver"

    return PeerDriver


def signature(doc: Mapping[str, Any]) -> Signature:
    """What a listed driver says, ids and timestamps aside."""
    chip = doc["chip_data"]
    return (
        doc["user_id"],
        doc["chip_id"],
        doc["status"],
        doc["version"],
        chip["type"],
        chip["cores"],
    )


async def _in_parallel(
    bodies: list[dict[str, Any]], create: Callable[[dict[str, Any]], Awaitable[object]]
) -> float:
    """Create every body, CONCURRENCY at a time; documents per second."""
    queue = iter(bodies)

    async def worker() -> None:
        for body in queue:
            await create(body)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return len(bodies) / (time.perf_counter() - started)


def _chunks(items: list[dict[str, Any]], parts: int) -> Iterable[list[dict[str, Any]]]:
    size = max(1, len(items) // parts)
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def _ours_listed(ks: Keyspace, owner: str) -> list[Signature]:
    found: list[Signature] = []
    params = {"user_id": [owner], "status": ["optimized"], "limit": ["1000"]}
    while True:
        page = await ks.list(DRIVER, parse(DRIVER, params))
        found += [signature(doc) for doc in page.items]
        if not page.next_cursor:
            return found
        params = {**params, "cursor": [page.next_cursor]}


async def run(ctx: Context, report: Report) -> None:
    await fresh(ctx.client, ctx.keyspace)
    peer_client = get_redis_connection(url=ctx.url, decode_responses=True)
    try:
        driver_model = _models(peer_client)
        await Migrator(conn=peer_client).run()
        owners, _ = await seed(ctx.keyspace, OWNERS, 0)
        n = min(ctx.sizes[0], LIMIT)
        bodies = [driver_body(i, owners[i % len(owners)]) for i in range(n)]
        rounds = min(ctx.repeats, 5) if ctx.quick else ctx.repeats

        async def ours(body: dict[str, Any]) -> object:
            return await ctx.keyspace.create(DRIVER, body)

        async def theirs(body: dict[str, Any]) -> object:
            return await driver_model(**body, timestamp=now_iso()).save()

        rates: dict[str, list[float]] = {"ours": [], "theirs": []}
        for chunk in _chunks(bodies, rounds):
            rates["ours"].append(await _in_parallel(chunk, ours))
            rates["theirs"].append(await _in_parallel(chunk, theirs))
        mine, peer = (statistics.median(rates[k]) for k in ("ours", "theirs"))
        detail = f"{n:,} drivers loaded in {len(rates['ours'])} timed turns; median of turns"
        report.results += [
            Result(
                SECTION,
                f"keyspace create drivers, {CONCURRENCY} concurrent",
                mine,
                "docs/s",
                detail=detail,
            ),
            Result(
                SECTION,
                f"redis-om JsonModel.save() drivers, {CONCURRENCY} concurrent",
                peer,
                "docs/s",
                detail=detail,
            ),
            Result(
                SECTION,
                "keyspace create / redis-om save",
                mine / peer,
                "x",
                detail=f"{mine:,.0f} / {peer:,.0f} docs/s",
            ),
        ]
        owner = owners[0]
        query = driver_model.find(
            (driver_model.user_id == owner) & (driver_model.status == "optimized")
        )
        expected = sorted(await _ours_listed(ctx.keyspace, owner))
        got = sorted(signature(d.model_dump()) for d in await query.all())
        if got != expected:
            raise AssertionError(
                f"redis-om listed {len(got)} drivers, the keyspace {len(expected)}"
            )
        ours_ms = await timed(lambda: _ours_listed(ctx.keyspace, owner), ctx.repeats * 4)
        theirs_ms = await timed(query.all, ctx.repeats * 4)
        listed = f"{len(expected)} matching drivers of {n:,}; result sets equal"
        report.results += [
            Result(
                SECTION,
                "keyspace API filtered list (one user's optimized drivers)",
                ours_ms[0],
                "ms",
                ours_ms[1],
                listed,
            ),
            Result(
                SECTION,
                "redis-om find().all(), same filter",
                theirs_ms[0],
                "ms",
                theirs_ms[1],
                listed,
            ),
            Result(
                SECTION,
                "speedup redis-om / keyspace API, filtered list",
                theirs_ms[0] / ours_ms[0],
                "x",
                detail="medians",
            ),
        ]
    finally:
        await peer_client.aclose()
        await fresh(ctx.client, ctx.keyspace)
