"""Section 4: indexed-query latency and memory per document as N grows.

For each N the server is emptied, N drivers (and N/10 users) are written through the
generator's commit path, and three representative filtered queries are timed through the
keyspace API. Memory: the ``INFO memory`` ``used_memory`` delta over the load divided by
the documents written (so it includes the RediSearch indexes and reference sets), and the
mean ``MEMORY USAGE`` of 100 sampled driver documents (the JSON value alone).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from keyspace import DRIVER, Keyspace, keys, parse

from .common import Context, Report, Result, timed
from .dataset import CHOSEN, load, reset

SECTION = "4. Scale"
SAMPLE = 100

QUERIES: dict[str, dict[str, list[str]]] = {
    "one user's optimized drivers": {
        "user_id": [CHOSEN],
        "status": ["optimized"],
        "limit": ["1000"],
    },
    "one user's drivers, newest first": {"user_id": ["user_2"], "sort": ["-timestamp"]},
    "quantum QubitCore drivers with >= 256 cores, top 50 by cores (~2% of N match)": {
        "chip_type": ["quantum_processor"],
        "architecture": ["QubitCore"],
        "cores_min": ["256"],
        "sort": ["-cores"],
    },
}


async def _used_memory(ks: Keyspace) -> int:
    info: dict[str, Any] = await ks.client.info("memory")
    return int(info["used_memory"])


async def _sample_usage(ks: Keyspace, drivers: int) -> float:
    step = max(1, drivers // SAMPLE)
    names = [keys.doc_key(DRIVER.prefix, f"driver_{i}") for i in range(1, drivers + 1, step)]
    sizes = [await ks.client.memory_usage(name, samples=0) for name in names[:SAMPLE]]
    found = [size for size in sizes if size is not None]
    return sum(found) / len(found) if found else 0.0


async def _list(ks: Keyspace, params: dict[str, list[str]]) -> int:
    page = await ks.list(DRIVER, parse(DRIVER, params))
    return page.total


async def run(ctx: Context, report: Report) -> None:
    ks = ctx.keyspace
    samples = max(50, ctx.repeats * 20)
    medians: dict[str, dict[int, float]] = {name: {} for name in QUERIES}
    try:
        for n in ctx.sizes:
            await reset(ks)
            before = await _used_memory(ks)
            loaded = await load(ks, n, seed_layout=False)
            docs = loaded.drivers + loaded.users
            per_doc = (await _used_memory(ks) - before) / docs
            report.results.append(
                Result(
                    SECTION,
                    f"memory per document (used_memory delta / documents), N={n}",
                    per_doc,
                    "bytes/doc",
                    None,
                    f"{loaded.drivers:,} drivers + {loaded.users:,} users; incl. indexes, refs",
                )
            )
            report.results.append(
                Result(
                    SECTION,
                    f"MEMORY USAGE of a driver document (mean of {SAMPLE}), N={n}",
                    await _sample_usage(ks, n),
                    "bytes/doc",
                    None,
                    "the RedisJSON value alone",
                )
            )
            for name, params in QUERIES.items():
                total = await _list(ks, params)
                median, p99 = await timed(partial(_list, ks, params), samples)
                medians[name][n] = median
                report.results.append(
                    Result(
                        SECTION,
                        f"keyspace list: {name}, N={n}",
                        median,
                        "ms",
                        p99,
                        f"{total:,} matches",
                    )
                )
    finally:
        await reset(ks)
    if len(ctx.sizes) > 1:
        low, high = min(ctx.sizes), max(ctx.sizes)
        for name, by_n in medians.items():
            report.results.append(
                Result(
                    SECTION,
                    f"growth {low:,} -> {high:,} (median ratio): {name}",
                    by_n[high] / by_n[low],
                    "x",
                    None,
                    f"N grew {high / low:.0f}x; ~1x means flat",
                )
            )
