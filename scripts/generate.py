"""``generate``: deterministic, realistic data at scale, written in pipelined batches.

Every document goes through the same declarations and ``commit.lua`` plans as
the API (validation, unique claims, reference checks), so generated data is as
consistent as hand-made data. Ids are reserved a batch at a time with INCRBY;
the plans of a batch are sent in one pipeline of EVALSHA calls. Each plan is
atomic on its own, so Ctrl-C leaves whole documents only.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterator
from typing import Any

from keyspace import COLLAB, DRIVER, NFT, PROCESS, QUEST, USER, EntitySpec, Keyspace, keys
from keyspace.documents import for_create

from .args import non_negative, positive_int
from .exits import OK, PROBLEMS, Refused
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
    plans = [  # sealed when the keyspace is encrypted (docs/encryption.md)
        ks.documents.plan_stored(spec, doc_id, doc, explicit_id=not spec.counted)
        for spec, doc_id, doc in docs
    ]
    return sum(not result.ok for result in await ks.commit_batch(plans))


async def run(args: argparse.Namespace, ks: Keyspace) -> int:
    if USER.model not in {e.model for e in ks.schema.entities}:  # another system
        raise Refused(
            "generate makes MultiFrame data (the benchmarks' world); the other systems have "
            "their demo worlds: multiframe-admin --system NAME load-demo"
        )
    world = World(args.seed)
    per_user = 1 + args.drivers + args.processes + args.quests + args.collabs + args.nfts
    refused = 0
    made: list[str] = []
    with Progress("generate", total=int(args.users * per_user)) as progress:
        for start in range(0, args.users, args.batch):
            size = min(args.batch, args.users - start)
            users = [
                (USER, i, for_create(USER, world.user(start + n), i))
                for n, i in enumerate(await _reserve(ks, USER, size))
            ]
            refused += await _commit(ks, users)
            made += [i for _, i, _ in users]
            progress.advance(len(users))
            docs: list[tuple[EntitySpec, str, dict[str, Any]]] = []
            for spec, mean in (
                (DRIVER, args.drivers),
                (PROCESS, args.processes),
                (QUEST, args.quests),
                (COLLAB, args.collabs),
                (NFT, args.nfts),
            ):
                counts = [world.count(mean) for _ in users]
                ids = await _reserve(ks, spec, sum(counts)) if spec.counted else iter(())
                for (_, owner, _), count in zip(users, counts, strict=True):
                    for chip_no in range(count):
                        data = world.owned(spec, owner, made[-200:], chip_no)
                        doc_id = next(ids) if spec.counted else spec.derive_id(data)  # type: ignore[misc]
                        docs.append((spec, doc_id, for_create(spec, data, doc_id)))
            for chunk in range(0, len(docs), 5000):
                refused += await _commit(ks, docs[chunk : chunk + 5000])
            progress.advance(len(docs))
        print(progress.summary("documents"))
    if refused:
        print(f"generate: {refused} documents refused by their checks (see `check`)")
    return OK if not refused else PROBLEMS
