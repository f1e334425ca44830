"""Shared pieces of the benchmark suite: the run context, statistics, results and targets.

Every figure is measured side by side in the same run on the same server;
timings are repeated and reported as median and p99, never a single run.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from keyspace import Keyspace


@dataclass
class Context:
    """What every benchmark module gets: a server, clients, sizes and where to write."""

    url: str  # redis:// URL of the benchmark server (embedded, started by bench/__main__.py)
    client: Redis  # keyspace.connect(url): RESP2, bytes
    keyspace: Keyspace  # set up (indexes built)
    sizes: list[int]  # document counts, e.g. [10_000] quick, [10k, 100k, 1M] full
    repeats: int  # timed repetitions per measurement (median/p99 over these)
    out_dir: Path  # docs/ (benchmarks.md and bench/*.png are written here)
    quick: bool


@dataclass
class Result:
    """One measured figure. ``value`` in ``unit``; latency results carry median and p99."""

    section: str  # e.g. "1. Listing vs the seed design"
    name: str  # e.g. "keyspace API, filtered list, N=100000"
    value: float
    unit: str  # "ms", "req/s", "docs/s", "bytes/doc", "x" (a ratio)
    p99: float | None = None
    detail: str = ""


@dataclass
class Target:
    """A target of the issue, judged on results of this run: PASS or FAIL with the figures."""

    name: str
    passed: bool
    measured: str
    judged: bool = True  # False: the run did not include what the target needs ("not run")

    @property
    def verdict(self) -> str:
        if not self.judged:
            return "NOT RUN"
        return "PASS" if self.passed else "FAIL"


@dataclass
class Report:
    results: list[Result] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)


def median_p99(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


async def timed(
    fn: Callable[[], Awaitable[Any]], repeats: int, warmup: int = 1
) -> tuple[float, float]:
    """Median and p99 latency in milliseconds of ``repeats`` sequential calls."""
    for _ in range(warmup):
        await fn()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - started) * 1000)
    return median_p99(samples)


def machine() -> dict[str, str]:
    """Machine and versions printed beside every figure."""
    import aiohttp
    import redis

    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": platform.processor() or platform.machine(),
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "redis-py": redis.__version__,
        "aiohttp": aiohttp.__version__,
    }
