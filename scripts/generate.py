"""``generate``: deterministic, realistic data at scale, written in pipelined batches.

Every document goes through the same declarations and ``commit.lua`` plans as
the API (validation, unique claims, reference checks), so generated data is as
consistent as hand-made data. Ids are reserved a group at a time with INCRBY; the
documents, in commit order, are cut into batches of ``CHUNK`` plans, each packed while the
one before is applied (``Scripts.pack_batch``) and written up to ``DEPTH`` ahead of its
results on one connection of generate's own (``Scripts.bulk_line``: bulk_commit.lua, many
plans a call, run in the order written). Each plan is atomic on its own, so Ctrl-C leaves
whole documents only. Memory stays flat: a few batches at a time, and only the latest users
kept as collaborators (docs/profiling.md, "Round 2: generate", "Round 3" and "Round 5").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from typing import Any

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from keyspace import COLLAB, DRIVER, NFT, PROCESS, QUEST, USER, EntitySpec, Keyspace, keys
from keyspace.bulk import PackedBatch
from keyspace.documents import for_create
from keyspace.errors import Paused
from keyspace.plan import Plan
from keyspace.scripts import CommitResult

from .args import non_negative, positive_int
from .exits import OK, PROBLEMS, Refused, Stopped
from .progress import Progress

CHIP_TYPES = ("quantum_processor", "neural_processor", "crypto_processor")
ARCHITECTURES = ("QubitCore", "SynapseX", "HashForge", "TensorMesh", "PhotonLattice")
FREQUENCIES = ("2.4GHz", "2.8GHz", "3.2GHz", "4.5GHz", "5.1GHz")
WORDS = (
    "quantum",
    "neural",
    "crypto",
    "design",
    "tune",
    "harden",
    "yield",
    "etch",
    "mask",
    "lattice",
    "qubit",
    "cache",
    "pipeline",
    "thermal",
    "fab",
    "latency",
    "throughput",
)
COLLABORATORS = 200  # a collab's members are drawn from the latest users made
CHUNK = 2000  # plans per pipeline
# Documents drawn or planned between two turns of the event loop: each turn lets the batch in
# flight move on from the process's buffer to the socket, so the server never runs dry while
# the next batch is made (~1 ms of drawing; a turn costs a few microseconds).
TURN_EVERY = 50
DEPTH = 2  # batches written ahead of their results: the server never waits for the next

ROLES = ("admin", "designer", "designer", "engineer", "engineer", "engineer")


def add_args(parser: argparse.ArgumentParser) -> None:
    users_help = "number of users to create"
    parser.add_argument("--users", type=positive_int, required=True, help=users_help)
    for name, mean, help_text in (
        ("drivers", 4.0, "drivers per user (mean)"),
        ("processes", 2.0, "processes per user (mean)"),
        ("quests", 2.0, "quests per user (mean)"),
        ("collabs", 1.0, "collabs per user (mean)"),
        ("nfts", 1.0, "NFTs per user (mean, one per chip)"),
    ):
        parser.add_argument(f"--{name}", type=non_negative, default=mean, help=help_text)
    parser.add_argument("--seed", type=int, default=11, help="random seed (same seed, same data)")
    parser.add_argument(
        "--batch", type=positive_int, default=2000, help="users per pipelined batch"
    )


class World:
    """Deterministic document factory; ``rng`` decides everything but the counter ids."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def count(self, mean: float) -> int:
        whole = int(mean)
        return whole + (1 if self.rng.random() < mean - whole else 0)

    def chip(self) -> dict[str, Any]:
        r = self.rng
        return {
            "type": r.choice(CHIP_TYPES),
            "cores": r.choice((8, 16, 32, 64, 128, 256, 512)),
            "frequency": r.choice(FREQUENCIES),
            "architecture": r.choice(ARCHITECTURES),
        }

    def time(self) -> str:
        r = self.rng
        day = f"2025-{r.randint(1, 9):02d}-{r.randint(1, 28):02d}"
        return f"{day}T{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:00"

    def user(self, n: int) -> dict[str, Any]:
        name = f"{self.rng.choice(WORDS).title()}{self.rng.choice(WORDS).title()}{n}"
        return {
            "username": name,
            "email": f"{name.lower()}@example.com",
            "role": self.rng.choice(ROLES),
            "created_at": self.time(),
        }

    def owned(
        self, spec: EntitySpec, owner: str, others: list[str], chip_no: int
    ) -> dict[str, Any]:
        r = self.rng
        chip_id = f"chip_{r.choice(('quantum', 'neural', 'crypto'))}_{chip_no}"
        if spec is DRIVER:
            return {
                "user_id": owner,
                "chip_id": chip_id,
                "chip_data": self.chip(),
                "status": r.choice(("generated", "optimized")),
                "version": f"{r.randint(0, 3)}.{r.randint(0, 9)}.0",
                "timestamp": self.time(),
            }
        if spec is PROCESS:
            return {
                "user_id": owner,
                "chip_data": self.chip(),
                "status": r.choice(("running", "completed")),
                "timestamp": self.time(),
            }
        if spec is QUEST:
            return {
                "user_id": owner,
                "title": " ".join(r.sample(WORDS, 3)).title(),
                "description": " ".join(r.sample(WORDS, 8)),
                "status": r.choice(("active", "completed")),
                "reward": f"nft_{r.choice(WORDS)}",
                "timestamp": self.time(),
            }
        if spec is COLLAB:
            members = r.sample(others, min(len(others), r.randint(0, 3)))
            return {
                "user_id": owner,
                "chip_id": chip_id,
                "chip_data": self.chip(),
                "collaborators": [m for m in members if m != owner],
                "status": r.choice(("active", "completed")),
                "timestamp": self.time(),
            }
        return {
            "user_id": owner,
            "chip_id": f"chip_{chip_no}",
            "owner": "0x" + f"{r.getrandbits(160):040x}",
        }


async def _reserve(ks: Keyspace, spec: EntitySpec, n: int) -> Iterator[str]:
    last = int(await ks.client.incrby(ks.schema.names.counter_key(spec.prefix), n))
    return (keys.generated_id(spec.prefix, i) for i in range(last - n + 1, last + 1))


async def _commit(ks: Keyspace, docs: list[tuple[EntitySpec, str, dict[str, Any]]]) -> int:
    """Send one pipeline of commit plans; returns how many were refused."""
    return sum(not result.ok for result in await ks.commit_batch(await _plans(ks, docs)))


async def _plans(ks: Keyspace, docs: list[tuple[EntitySpec, str, dict[str, Any]]]) -> list[Plan]:
    plans = []
    for n, (spec, doc_id, doc) in enumerate(docs, 1):
        # Sealed when the keyspace is encrypted (docs/encryption.md).
        plans.append(ks.documents.plan_stored(spec, doc_id, doc, explicit_id=not spec.counted))
        if n % TURN_EVERY == 0:
            await asyncio.sleep(0)
    return plans


class _InFlight:
    """Up to ``DEPTH`` batches written ahead of their results, on one connection (the
    line). Redis runs a connection's commands in the order written, so every document a
    plan refers to (its owner, its collaborators, drawn in earlier batches) is committed
    before it; and the server finds the next batch waiting whenever it finishes one, while
    the generator draws, plans and packs the one after (with one batch in flight each
    waited for the other between batches: docs/profiling.md, Rounds 2, 3 and 5).

    Each batch is written by a task of its own, after the one before it: writing waits for
    the server to read it, which it does as it applies it. Drawing and planning turn the
    event loop every ``TURN_EVERY`` documents, so the task keeps the socket full meanwhile.
    Results are read in the order written."""

    def __init__(self, ks: Keyspace, line: AbstractConnection) -> None:
        self.ks = ks
        self.line = line
        self.refused = 0
        self.settled = 0  # documents of the batches whose results were read
        self._unread: deque[asyncio.Future[Awaitable[Sequence[CommitResult]]]] = deque()

    async def send(self, docs: list[tuple[EntitySpec, str, dict[str, Any]]]) -> None:
        batch = await self.ks.scripts.pack_batch(await _plans(self.ks, docs))
        while len(self._unread) >= DEPTH:
            await self._settle_one()
        before = self._unread[-1] if self._unread else None
        self._unread.append(asyncio.ensure_future(self._write(batch, before)))
        await asyncio.sleep(0)  # the task starts writing before the caller draws on

    async def _write(
        self, batch: PackedBatch, before: asyncio.Future[Any] | None
    ) -> Awaitable[Sequence[CommitResult]]:
        if before is not None:
            await before  # in order; a write that failed ends the run
        return await self.ks.scripts.send_packed(batch, self.line)

    async def _settle_one(self) -> None:
        # Left in the deque until its reader is in hand: a cancel that comes meanwhile finds
        # it there, and closes the reader that was never awaited.
        reader = await self._unread[0]
        self._unread.popleft()
        results = await reader
        self.settled += len(results)
        self.refused += sum(not result.ok for result in results)

    @property
    def acknowledged(self) -> int:
        """Documents the server applied, of the batches whose results were read."""
        return self.settled - self.refused

    async def settle(self) -> None:
        """Wait for every batch written and count their refusals (Paused raises here)."""
        while self._unread:
            await self._settle_one()

    async def cancel(self) -> None:
        # Ctrl-C or an error: each plan is atomic, so a batch cut short leaves whole
        # documents only; the line is disconnected after (Scripts.bulk_line), so no reply
        # left unread is read as another command's.
        pending, self._unread = list(self._unread), deque()
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                reader = await task
                if inspect.iscoroutine(reader):
                    reader.close()  # never to be awaited


async def run(args: argparse.Namespace, ks: Keyspace) -> int:
    if USER.model not in {e.model for e in ks.schema.entities}:  # another system
        raise Refused(
            "generate makes MultiFrame data (the benchmarks' world); the other systems have "
            "their demo worlds: multiframe-admin --system NAME load-demo"
        )
    world = World(args.seed)
    per_user = 1 + args.drivers + args.processes + args.quests + args.collabs + args.nfts
    async with ks.scripts.bulk_line() as line:
        return await _generate(args, ks, world, per_user, line)


async def _generate(
    args: argparse.Namespace,
    ks: Keyspace,
    world: World,
    per_user: float,
    line: AbstractConnection,
) -> int:
    flight = _InFlight(ks, line)
    try:
        with Progress("generate", total=int(args.users * per_user)) as progress:
            # Batches of one size whatever kind they hold: a small batch (a group's users)
            # in flight while a large one is made would leave the server idle, and the
            # other way round the generator. Every document follows what it refers to.
            chunk: list[tuple[EntitySpec, str, dict[str, Any]]] = []
            async for doc in _documents(ks, world, args):
                chunk.append(doc)
                if len(chunk) == CHUNK:
                    await flight.send(chunk)
                    progress.advance(len(chunk))
                    chunk = []
            if chunk:
                await flight.send(chunk)
                progress.advance(len(chunk))
            await flight.settle()
            print(progress.summary("documents sent"))
    except Paused:
        # Earlier batches were written: Paused's own text says nothing was.
        raise Paused(
            f"the keyspace was paused (restore, reset) while generate ran: the server had "
            f"acknowledged the {flight.acknowledged:,} documents of the batches read before the "
            "pause, perhaps also part of the batch that met it, each whole, and nothing after it "
            "(what the pausing command keeps of them is its own); once it is done, run "
            "`check`, then generate again with another --seed"
        ) from None
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise Stopped(
            f"the connection generate wrote on was lost ({exc}): a restart, a failover or a "
            f"CLIENT KILL. The server had acknowledged the {flight.acknowledged:,} documents of "
            "the batches read before, perhaps also part of those in flight, each whole (after a "
            "restart without persistence or a failover, fewer may be stored); run `check`, "
            "then generate again with another --seed"
        ) from None
    finally:
        await flight.cancel()
    if flight.refused:
        written = progress.done - flight.refused
        print(
            f"generate: {written:,} documents written, {flight.refused:,} refused by their "
            "checks (a unique value taken: run it on an empty keyspace or with another --seed; "
            "see `check`)"
        )
    return OK if not flight.refused else PROBLEMS


async def _documents(
    ks: Keyspace, world: World, args: argparse.Namespace
) -> AsyncIterator[tuple[EntitySpec, str, dict[str, Any]]]:
    """Every document in commit order: ``--batch`` users (their ids reserved at once), then
    the documents they own, kind by kind as World draws them, then the next users."""
    # Only the latest users are collaborators: memory stays flat whatever the size.
    recent: list[str] = []
    for start in range(0, args.users, args.batch):
        size = min(args.batch, args.users - start)
        users = [
            (USER, i, for_create(USER, world.user(start + n), i))
            for n, i in enumerate(await _reserve(ks, USER, size))
        ]
        for user in users:
            yield user
        recent = (recent + [i for _, i, _ in users])[-COLLABORATORS:]
        async for doc in _owned(ks, world, args, [i for _, i, _ in users], recent):
            yield doc


async def _owned(
    ks: Keyspace, world: World, args: argparse.Namespace, owners: list[str], others: list[str]
) -> AsyncIterator[tuple[EntitySpec, str, dict[str, Any]]]:
    """The documents ``owners`` own, kind by kind as World draws them."""
    drawn = 0
    for spec, mean in (
        (DRIVER, args.drivers),
        (PROCESS, args.processes),
        (QUEST, args.quests),
        (COLLAB, args.collabs),
        (NFT, args.nfts),
    ):
        counts = [world.count(mean) for _ in owners]
        ids = await _reserve(ks, spec, sum(counts)) if spec.counted else iter(())
        for owner, count in zip(owners, counts, strict=True):
            for chip_no in range(count):
                data = world.owned(spec, owner, others, chip_no)
                doc_id = next(ids) if spec.counted else spec.derive_id(data)  # type: ignore[misc]
                yield spec, doc_id, for_create(spec, data, doc_id)
                drawn += 1
                if drawn % TURN_EVERY == 0:
                    await asyncio.sleep(0)  # the batch in flight moves on (see _InFlight)
