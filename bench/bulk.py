"""Section 5: documents per second of ``generate`` (scripts.generate.run), to the largest N,
and whether the generator's memory stays flat as N grows.

Each run starts from an empty server with the indexes in place, so every document is
validated, committed by ``commit.lua`` (uniques and references checked) and indexed.
The generator runs in this process: a thread samples its resident set (RSS) every
:data:`SAMPLE_S` during each run, and the peak growth over the RSS at the run's start is
compared between a run at N/10 (first) and the runs at N. Memory the allocator kept from
an earlier run can hide part of a later run's growth, never add to it: a generator that
holds what it wrote still grows about tenfold from N/10 to N.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from keyspace import MULTIFRAME, Keyspace, keys, search
from keyspace.connection import call
from scripts.generate import CHUNK
from scripts.generate import run as generate

from .common import Context, Report, Result
from .dataset import reset
from .targets import flat_memory_target, generate_target

SECTION = "5. Bulk load"
PER_USER = 1 + 4.0 + 2.0 + 2.0 + 1.0 + 1.0  # the generator's default means: 11 docs per user
MILLION = 1_000_000
LIMIT_S = 60.0  # issue 19
BATCH_USERS = 2000  # the generator's default --batch: a group of users it holds at once
# What the generator holds by design: a group of users, the batch it makes and the one in flight.
HELD_DOCS = BATCH_USERS + 2 * CHUNK
MEMORY_TOLERANCE = 1.5  # peak RSS growth at N at most this many times that at N/10 ...
MEMORY_SLACK_MB = 32.0  # ... plus this much (arenas, buffers and pools that do not scale)
SAMPLE_S = 0.02
MIB = 1024 * 1024
_STATM = Path("/proc/self/statm")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int | None:
    """This process's resident set now, or None where /proc is not there to tell."""
    try:
        pages = int(_STATM.read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * _PAGE


@dataclass
class Run:
    documents: int
    seconds: float
    peak_growth_mb: float | None  # None: RSS could not be read


class PeakRss:
    """Samples RSS on a thread between ``with`` and its end; ``growth_mb`` is the peak over
    the RSS at the start (the event loop is busy generating, so it cannot sample itself)."""

    def __init__(self, read: Callable[[], int | None] = rss_bytes) -> None:
        self._read = read
        self.start = read()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            now = self._read()
            if now is not None and self.peak is not None:
                self.peak = max(self.peak, now)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        now = self._read()
        if now is not None and self.peak is not None:
            self.peak = max(self.peak, now)

    @property
    def growth_mb(self) -> float | None:
        if self.start is None or self.peak is None:
            return None
        return (self.peak - self.start) / MIB


async def _documents(ks: Keyspace) -> int:
    """Documents in the keyspace, as the entities' indexes count them."""
    total = 0
    for spec in MULTIFRAME.entities:
        info = search.parse_info(await call(ks.client, "FT.INFO", keys.index_alias(spec.prefix)))
        total += int(info["num_docs"])
    return total


async def _once(ks: Keyspace, users: int) -> Run:
    await reset(ks)
    args = argparse.Namespace(
        users=users,
        drivers=4.0,
        processes=2.0,
        quests=2.0,
        collabs=1.0,
        nfts=1.0,
        seed=11,
        batch=BATCH_USERS,
    )
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet), PeakRss() as rss:
        started = time.perf_counter()
        code = await generate(args, ks)
        elapsed = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"generate exited with {code}: {quiet.getvalue().strip()}")
    return Run(await _documents(ks), elapsed, rss.growth_mb)


def _mb(run: Run) -> str:
    return "?" if run.peak_growth_mb is None else f"{run.peak_growth_mb:.1f} MiB"


async def run(ctx: Context, report: Report) -> None:
    target = max(ctx.sizes)
    users = max(1, round(target / PER_USER))
    runs = 5 if target <= 20_000 else 3 if target <= 100_000 else 1
    done: list[Run] = []
    try:
        small = await _once(ctx.keyspace, max(1, users // 10))
        print(f"  generate: {small.documents:,} documents, peak RSS growth {_mb(small)}")
        for _ in range(runs):
            done.append(await _once(ctx.keyspace, users))
            last = done[-1]
            print(
                f"  generate: {last.documents:,} documents in {last.seconds:.1f}s, "
                f"peak RSS growth {_mb(last)}",
                flush=True,
            )
    finally:
        await reset(ctx.keyspace)
    rates = [r.documents / r.seconds for r in done]
    docs = done[-1].documents
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
    report.targets.append(generate_target(projected, docs, measured_1m, LIMIT_S))
    _memory(report, small, done)


def _memory(report: Report, small: Run, done: list[Run]) -> None:
    """Peak RSS growth at N/10 and at N (the largest of the runs), and the flatness target."""
    growths = [r.peak_growth_mb for r in done if r.peak_growth_mb is not None]
    if small.peak_growth_mb is None or not growths:
        print("  memory not measured: this system has no /proc/self/statm")
        return
    every = f"sampled every {SAMPLE_S * 1000:.0f} ms"
    large = (done[0].documents, max(growths))
    for (docs, mb), how in (
        ((small.documents, small.peak_growth_mb), f"{every}; one run at N/10, first"),
        (large, f"{every}; the largest of {len(growths)} run(s) at N"),
    ):
        name = f"generate: peak RSS growth of this process, {docs:,} documents"
        report.results.append(Result(SECTION, name, mb, "MiB", None, how))
    report.targets.append(
        flat_memory_target(
            (small.documents, small.peak_growth_mb),
            large,
            MEMORY_TOLERANCE,
            MEMORY_SLACK_MB,
            HELD_DOCS,
        )
    )
