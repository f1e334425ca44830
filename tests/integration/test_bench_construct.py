"""Benchmark section 8 (bench/construct.py) at a tiny size on the real server: the world it
writes holds what its counts say, and every hit, miss and computed call of every route at 1
and 32 callers answered without an error (a hit that missed, or a miss that hit, is one).
No timing is asserted."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import construct
from bench.common import Context, Report
from bench.construct_world import counts
from bench.http_load import Budget
from keyspace import Keyspace, connect, parse, systems
from keyspace.server import EmbeddedRedis

TINY = 600


def test_counts_add_up_and_orders_fill_the_rest() -> None:
    world = counts(100_000)
    assert world.total == 100_000
    assert world.users == 100
    assert world.orders > 80_000
    assert counts(TINY).total == TINY
    with pytest.raises(ValueError, match="too few"):
        counts(50)


@pytest.mark.redis
async def test_section_runs_at_a_tiny_size(redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    client = connect(redis_server.url, max_connections=64)
    try:
        await client.flushall()
        ks = Keyspace(client)
        await ks.setup()
        ctx = Context(redis_server.url, client, ks, [TINY], 1, tmp_path, True)
        report = Report()
        await construct.measure(ctx, report, TINY, Budget(rounds=1, seconds=0.01, requests=4))
        served = Keyspace(client, systems.load("construct").schema)
        expected = counts(TINY)
        for collection, wanted in (
            ("users", expected.users),
            ("trading_orders", expected.orders),
            ("transactions", expected.transactions),
            ("votes", expected.votes),
        ):
            spec = served.schema.collection(collection)
            assert (await served.list(spec, parse(spec, {}))).total == wanted, collection
    finally:
        await client.aclose()
    timed = {r.name: r for r in report.results if r.unit in ("ms", "calls/s")}
    for label, _, _ in construct.ROUTES:
        for variant in construct.VARIANTS:
            for who in ("1 caller", "32 callers"):
                result = timed[f"{label}, {variant}, {who}"]
                assert result.detail.endswith("errors 0"), result.detail
    sizes = {r.name: r.value for r in report.results if r.unit == "bytes"}
    assert sizes.keys() == {f"{label}: answer" for label, _, _ in construct.ROUTES}
    assert min(sizes.values()) > 100
