"""``generate`` streams: what it holds does not grow with the number of documents it writes
(issue 19: memory flat to 1M documents). Traced as every batch is sent, the same point of the
loop each time, so a structure kept per user or per document shows as growth."""

from __future__ import annotations

import argparse
import statistics
import tracemalloc
from typing import Any

import pytest
from redis.asyncio import Redis

from keyspace import EntitySpec, Keyspace
from scripts import generate
from scripts.exits import OK

pytestmark = pytest.mark.redis

BATCH = 100
CHUNK = 100  # documents per send: many sends, each traced
USERS = 1600


async def test_generate_holds_nothing_per_document(
    real_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    ks = Keyspace(real_client)
    await ks.setup()
    traced: list[int] = []
    send = generate._InFlight.send

    async def traced_send(
        flight: generate._InFlight, docs: list[tuple[EntitySpec, str, dict[str, Any]]]
    ) -> None:
        traced.append(tracemalloc.get_traced_memory()[0])
        await send(flight, docs)

    monkeypatch.setattr(generate, "CHUNK", CHUNK)
    monkeypatch.setattr(generate._InFlight, "send", traced_send)
    args = argparse.Namespace(
        users=USERS, drivers=2.0, processes=0.0, quests=0.0, collabs=1.0, nfts=0.0,
        seed=3, batch=BATCH,
    )  # fmt: skip
    tracemalloc.start()
    try:
        assert await generate.run(args, ks) == OK
    finally:
        tracemalloc.stop()
    assert len(traced) > 40
    # Traced as each batch is sent, with the same number of documents in hand each time:
    # once caches and buffers are warm it moves by ~25 kB either way; keeping as little as
    # one id per user (~65 bytes) would add ~2 kB a batch, ~70 kB between those compared.
    growth = statistics.mean(traced[-3:]) - statistics.mean(traced[2:5])
    assert growth < 35_000, traced
