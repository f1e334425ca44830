"""Section 5: documents per second of ``generate`` (scripts.generate.run), to the largest N.

Each run starts from an empty server with the indexes in place, so every document is
validated, committed by ``commit.lua`` (uniques and references checked) and indexed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import time

from keyspace import MULTIFRAME, Keyspace, keys, search
from keyspace.connection import call
from scripts.generate import run as generate

from .common import Context, Report, Result, Target
from .dataset import reset

SECTION = "5. Bulk load"
PER_USER = 1 + 4.0 + 2.0 + 2.0 + 1.0 + 1.0  # the generator's default means: 11 docs per user
MILLION = 1_000_000
LIMIT_S = 120.0


async def _documents(ks: Keyspace) -> int:
    """Documents in the keyspace, as the entities' indexes count them."""
    total = 0
    for spec in MULTIFRAME.entities:
        info = search.parse_info(await call(ks.client, "FT.INFO", keys.index_alias(spec.prefix)))
        total += int(info["num_docs"])
    return total


async def _once(ks: Keyspace, users: int) -> tuple[int, float]:
    await reset(ks)
    args = argparse.Namespace(
        users=users,
        drivers=4.0,
        processes=2.0,
        quests=2.0,
        collabs=1.0,
        nfts=1.0,
        seed=11,
        batch=2000,
    )
    quiet = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        code = await generate(args, ks)
    elapsed = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"generate exited with {code}: {quiet.getvalue().strip()}")
    return await _documents(ks), elapsed


async def run(ctx: Context, report: Report) -> None:
    target = max(ctx.sizes)
    users = max(1, round(target / PER_USER))
    runs = 5 if target <= 20_000 else 3 if target <= 100_000 else 1
    rates: list[float] = []
    docs = 0
    try:
        for _ in range(runs):
            docs, seconds = await _once(ctx.keyspace, users)
            rates.append(docs / seconds)
            print(f"  generate: {docs:,} documents in {seconds:.1f}s", flush=True)
    finally:
        await reset(ctx.keyspace)
    rate = statistics.median(rates)
    spread = ", ".join(f"{r:,.0f}" for r in rates)
    report.results.append(
        Result(
            SECTION,
            f"generate throughput, {docs:,} documents ({users:,} users)",
            rate,
            "docs/s",
            None,
            f"median of {runs} run(s): {spread} docs/s",
        )
    )
    projected = MILLION / rate
    measured_1m = docs >= MILLION * 0.95
    how = "measured" if measured_1m else "projected"
    report.results.append(
        Result(
            SECTION,
            f"time for 1M documents ({how})",
            projected,
            "s",
            None,
            "" if measured_1m else f"linear projection from the {docs:,}-document runs",
        )
    )
    measured = f"{projected:.0f} s {how} at {rate:,.0f} docs/s"
    if not measured_1m:
        measured += f" (from {docs:,} documents; index growth may slow a real 1M run)"
    report.targets.append(
        Target("Bulk generate: 1M documents in under 2 minutes", projected < LIMIT_S, measured)
    )
