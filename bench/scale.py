"""Section 4: indexed-query latency and memory per document as N grows.

For each N the server is emptied, N drivers (and N/10 users) are written through the
generator's commit path, and representative filtered queries are timed through the
keyspace API: two selective ones, the broad sorted list (~2% match, top 50 by cores), the
time-range list (a ~1% timestamp window, newest first) and the per-page cost of a cursor
walk (pages 1, 10 and 100 of every driver by cores; :mod:`bench.lists`). Memory: the
``INFO memory`` ``used_memory`` delta over the load divided by the documents written (so it
includes the RediSearch indexes and reference sets), and the mean ``MEMORY USAGE`` of 100
sampled driver documents (the JSON value alone).
"""

from __future__ import annotations

import time
from typing import Any

from keyspace import DRIVER, Keyspace, keys

from . import lists, plots
from .common import Context, Report, Result
from .dataset import CHOSEN, load, reset, time_window
from .lists import BROAD, TIME_RANGE, WALK_NAME, WALK_PARAMS, Timing
from .targets import latency_target, page_cost_target

SECTION = "4. Scale"
SAMPLE = 100
BROAD_LIMIT_MS = 15.0
TIME_RANGE_LIMIT_MS = 10.0
PAGE_TOLERANCE = 1.5  # page 100 may cost this many times page 1 (noise of a shared host)

QUERIES: dict[str, dict[str, list[str]]] = {
    "one user's optimized drivers": {
        "user_id": [CHOSEN],
        "status": ["optimized"],
        "limit": ["1000"],
    },
    "one user's drivers, newest first": {"user_id": ["user_2"], "sort": ["-timestamp"]},
    BROAD: {
        "chip_type": ["quantum_processor"],
        "architecture": ["QubitCore"],
        "cores_min": ["256"],
        "sort": ["-cores"],
    },
    TIME_RANGE: lists.time_range_params(),
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


async def _queries(
    ctx: Context, report: Report, n: int, medians: dict[str, dict[int, Timing]]
) -> None:
    most = max(50, ctx.repeats * 20)
    budget_ms = 3_000.0 if ctx.quick else 20_000.0
    for name, params in QUERIES.items():
        total = await lists.matches(ctx.keyspace, params)
        timing = await lists.time_list(ctx.keyspace, params, most, budget_ms)
        timing.matches = total
        medians[name][n] = timing
        detail = f"{total:,} matches ({total / n:.2%} of N); {timing.runs} runs"
        if name == TIME_RANGE:
            low, high, share = time_window(lists.TIME_SHARE)
            detail += f"; window {low} .. {high} ({share:.2%} of generated times)"
        report.results.append(
            Result(
                SECTION, f"keyspace list: {name}, N={n}", timing.median, "ms", timing.p99, detail
            )
        )


# The walk is the broad sorted list's; below this N it has fewer than 100 pages
# (~1.8% of N match, 50 a page), so smaller runs walk every driver by cores instead.
BROAD_WALK_FROM = 300_000
WALKED = f"{WALK_NAME}; from N={BROAD_WALK_FROM:,}: the broad sorted list, {lists.PAGE_SIZE} a page"


def walk_params(n: int) -> dict[str, list[str]]:
    """What the cursor walk at ``n`` documents pages through (see :data:`BROAD_WALK_FROM`).

    Walking all of 1M by cores is not a list a client pages: each page filters every
    match after the cursor (RediSearch's time limit stops it at 1M on this machine)."""
    if n >= BROAD_WALK_FROM:
        return {**QUERIES[BROAD], "limit": [str(lists.PAGE_SIZE)]}
    return WALK_PARAMS


async def _walk(ctx: Context, report: Report, n: int, walks: dict[int, lists.Walk]) -> None:
    most = max(20, ctx.repeats * 4)
    budget_ms = 3_000.0 if ctx.quick else 30_000.0
    params = walk_params(n)
    found = await lists.walk(ctx.keyspace, params)
    await lists.time_pages(ctx.keyspace, params, found, most, budget_ms)
    walks[n] = found
    per_page = found.walk_ms / found.pages_walked
    for number, timing in found.timings.items():
        report.results.append(
            Result(
                SECTION,
                f"cursor walk ({WALKED}): page {number}, N={n}",
                timing.median,
                "ms",
                timing.p99,
                f"the page fetched with its cursor; {timing.runs} runs, interleaved; "
                f"the walk to page {found.pages_walked} averaged {per_page:.2f} ms a page",
            )
        )


def _targets(
    ctx: Context,
    report: Report,
    medians: dict[str, dict[int, Timing]],
    walks: dict[int, lists.Walk],
) -> None:
    largest = max(ctx.sizes)
    for name, title, limit in (
        (BROAD, "Broad sorted list at 1M (~2% match, top 50 by cores):", BROAD_LIMIT_MS),
        (
            TIME_RANGE,
            "Time-range list at 1M (~1% window, top 50 by timestamp):",
            TIME_RANGE_LIMIT_MS,
        ),
    ):
        timing = medians[name][largest]
        matched = f"{timing.matches:,} matches ({timing.matches / largest:.2%} of N)"
        report.targets.append(
            latency_target(title, largest, timing.median, timing.p99, limit, matched)
        )
    found = walks[largest]
    report.targets.append(
        page_cost_target(largest, {p: t.median for p, t in found.timings.items()}, PAGE_TOLERANCE)
    )


async def run(ctx: Context, report: Report) -> None:
    ks = ctx.keyspace
    medians: dict[str, dict[int, Timing]] = {name: {} for name in QUERIES}
    walks: dict[int, lists.Walk] = {}
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
            started = time.perf_counter()
            await _queries(ctx, report, n, medians)
            timed_at = time.perf_counter()
            await _walk(ctx, report, n, walks)
            print(
                f"  N={n:,}: loaded in {loaded.seconds:.1f}s, lists timed in "
                f"{timed_at - started:.1f}s, cursor walk in {time.perf_counter() - timed_at:.1f}s",
                flush=True,
            )
    finally:
        await reset(ks)
    _targets(ctx, report, medians, walks)
    limits = {BROAD: BROAD_LIMIT_MS, TIME_RANGE: TIME_RANGE_LIMIT_MS}
    plots.lists_vs_n(ctx, report, {name: medians[name] for name in limits}, limits)
    plots.page_cost(ctx, report, walks, WALKED, PAGE_TOLERANCE)
    if len(ctx.sizes) > 1:
        low, high = min(ctx.sizes), max(ctx.sizes)
        for name, by_n in medians.items():
            report.results.append(
                Result(
                    SECTION,
                    f"growth {low:,} -> {high:,} (median ratio): {name}",
                    by_n[high].median / by_n[low].median,
                    "x",
                    None,
                    f"N grew {high / low:.0f}x; ~1x means flat",
                )
            )
