"""The RediSearch path and the scan path answer every query identically."""

from __future__ import annotations

import random

import pytest
from redis.asyncio import Redis

from keyspace import COLLAB, DRIVER, QUEST, USER, Keyspace, parse
from keyspace.schema import EntitySpec
from tests import factories as f

pytestmark = pytest.mark.redis

WORDS = ["quantum", "neural", "crypto", "chip", "design", "core", "tune", "fab", "qubit", "x-ray"]


@pytest.fixture
async def both(real_client: Redis) -> tuple[Keyspace, Keyspace]:
    fast, slow = Keyspace(real_client), Keyspace(real_client, use_search=False)
    await fast.setup()
    await slow.setup()
    rng = random.Random(7)
    for i in range(12):
        await f.user(fast, f"user{i}", role=rng.choice(["admin", "designer", "engineer"]))
    for _ in range(60):
        owner = f"user_{rng.randint(1, 12)}"
        await f.driver(
            fast,
            owner,
            cores=rng.choice([16, 64, 128, 256]),
            status=rng.choice(["generated", "optimized"]),
            timestamp=f"2025-09-{rng.randint(10, 28)}T10:{rng.randint(10, 59)}:00",
        )
        await f.quest(
            fast, owner, " ".join(rng.sample(WORDS, 3)), description=" ".join(rng.sample(WORDS, 4))
        )
    for _ in range(15):
        members = rng.sample([f"user_{n}" for n in range(1, 13)], 3)
        await f.collab(fast, f"user_{rng.randint(1, 12)}", members)
    return fast, slow


QUERIES: list[tuple[EntitySpec, dict[str, list[str]]]] = [
    (DRIVER, {}),
    (DRIVER, {"status": ["optimized"], "sort": ["-cores"]}),
    (DRIVER, {"user_id": ["user_3"], "chip_type": ["quantum_processor"]}),
    (DRIVER, {"cores_min": ["64"], "cores_max": ["128"], "sort": ["timestamp"]}),
    (DRIVER, {"timestamp_min": ["2025-09-15"], "sort": ["-timestamp"], "limit": ["7"]}),
    (DRIVER, {"cores": ["16", "256"], "sort": ["cores"]}),
    (QUEST, {"q": ["quantum"]}),
    (QUEST, {"q": ["chip design"], "sort": ["-timestamp"]}),
    (QUEST, {"q": ["x-ray"]}),
    (USER, {"role": ["admin"]}),
    (USER, {"q": ["user3"]}),
    (COLLAB, {"collaborators": ["user_5"]}),
]


async def walk(ks: Keyspace, spec: EntitySpec, params: dict[str, list[str]]) -> list[object]:
    pages: list[object] = []
    cursor: str | None = None
    while True:
        extra = {"cursor": [cursor]} if cursor else {}
        page = await ks.list(spec, parse(spec, {"limit": ["9"], **params, **extra}))
        pages.append((page.items, page.total, page.next_cursor))
        cursor = page.next_cursor
        if cursor is None:
            return pages


@pytest.mark.parametrize(("spec", "params"), QUERIES)
async def test_search_and_scan_agree(
    both: tuple[Keyspace, Keyspace], spec: EntitySpec, params: dict[str, list[str]]
) -> None:
    fast, slow = both
    assert fast.capabilities.search and not slow.capabilities.search
    assert await walk(fast, spec, params) == await walk(slow, spec, params)
