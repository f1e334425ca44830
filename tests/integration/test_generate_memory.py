"""``generate`` streams: what it holds does not grow with the number of documents it writes
(issue 19: memory flat to 1M documents). Traced at the start of every batch, the same point
of the loop each time, so a structure kept per user or per document shows as growth."""

from __future__ import annotations

import argparse
import statistics
import tracemalloc
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis

from keyspace import USER, EntitySpec, Keyspace
from scripts import generate
from scripts.exits import OK

pytestmark = pytest.mark.redis

BATCH = 100
BATCHES = 16


async def test_generate_holds_nothing_per_document(
    real_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    ks = Keyspace(real_client)
    await ks.setup()
    traced: list[int] = []
    reserve = generate._reserve

    async def traced_reserve(ks: Keyspace, spec: EntitySpec, n: int) -> Iterator[str]:
        if spec is USER:
            traced.append(tracemalloc.get_traced_memory()[0])
        return await reserve(ks, spec, n)

    monkeypatch.setattr(generate, "_reserve", traced_reserve)
    args = argparse.Namespace(
        users=BATCH * BATCHES, drivers=2.0, processes=0.0, quests=0.0, collabs=1.0, nfts=0.0,
        seed=3, batch=BATCH,
    )  # fmt: skip
    tracemalloc.start()
    try:
        assert await generate.run(args, ks) == OK
    finally:
        tracemalloc.stop()
    assert len(traced) == BATCHES
    # From the third batch on, caches and buffers are warm and what is traced moves by
    # ~25 kB either way; keeping as little as one id per user (~65 bytes) would add 6.5 kB
    # a batch, 75 kB between the batches compared.
    growth = statistics.mean(traced[-3:]) - statistics.mean(traced[2:5])
    assert growth < 35_000, traced
