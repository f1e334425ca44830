"""A small load generator: closed loop (fixed concurrency) and open loop (fixed rate).

The same engine drives any awaitable (a keyspace call, a raw Redis command) and
HTTP requests over one keep-alive ``aiohttp.ClientSession`` to 127.0.0.1.

The generator runs in the same process and event loop as the servers it
measures, so client and server share the machine's cores: absolute req/s are
lower than with a separate client machine, but ratios measured in the same run
remain comparable (every variant pays the same client cost).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import aiohttp

from .common import Context, Result, median_p99

SHARED_CORES_NOTE = (
    "The HTTP load generator runs in the benchmark's own process, so client and server "
    "share the machine's cores: absolute req/s are pessimistic, ratios measured in the "
    "same run remain comparable."
)

Call = Callable[[int], Awaitable[object]]
"""One operation; gets a sequence number unique within the process (for unique data)."""

_sequence = iter(range(1, 1 << 62))


@dataclass
class Load:
    """What one run did: successes, errors, wall time and per-operation latencies (ms)."""

    ok: int
    errors: int
    seconds: float
    latencies_ms: list[float] = field(repr=False)
    first_error: str = ""

    @property
    def rate(self) -> float:
        """Successful operations per second."""
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    @property
    def median_ms(self) -> float:
        return median_p99(self.latencies_ms)[0] if self.latencies_ms else float("nan")

    @property
    def p99_ms(self) -> float:
        return median_p99(self.latencies_ms)[1] if self.latencies_ms else float("nan")


class _Tally:
    def __init__(self) -> None:
        self.ok = 0
        self.errors = 0
        self.first_error = ""
        self.latencies: list[float] = []

    async def run(self, call: Call, started: float) -> None:
        try:
            await call(next(_sequence))
            self.ok += 1
        except Exception as exc:
            self.errors += 1
            self.first_error = self.first_error or f"{type(exc).__name__}: {exc}"
        self.latencies.append((time.perf_counter() - started) * 1000)

    def load(self, seconds: float) -> Load:
        return Load(self.ok, self.errors, seconds, self.latencies, self.first_error)


async def closed_loop(call: Call, *, concurrency: int, requests: int, max_seconds: float) -> Load:
    """``concurrency`` workers call back to back until ``requests`` were sent or
    ``max_seconds`` passed, whichever comes first."""
    tally = _Tally()
    sent = 0
    started = time.perf_counter()
    deadline = started + max_seconds

    async def worker() -> None:
        nonlocal sent
        while sent < requests and time.perf_counter() < deadline:
            sent += 1
            await tally.run(call, time.perf_counter())

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tally.load(time.perf_counter() - started)


async def open_loop(call: Call, *, rate: float, seconds: float) -> Load:
    """Start one call every ``1/rate`` s for ``seconds``, whether or not earlier ones
    finished. Latency counts from the scheduled start, so a stalled server or
    generator shows up in the figures instead of lowering the offered rate."""
    tally = _Tally()
    total = max(1, int(rate * seconds))
    started = time.perf_counter()
    tasks: list[asyncio.Task[None]] = []
    for i in range(total):
        due = started + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(tally.run(call, due)))
    await asyncio.gather(*tasks)
    return tally.load(time.perf_counter() - started)


async def interleaved(
    variants: Mapping[str, Callable[[], Awaitable[Load]]], rounds: int
) -> dict[str, list[Load]]:
    """Run every variant once per round, in turn, so slow drift (other processes,
    a growing dataset) affects all of them alike. One untimed warm-up run each first."""
    for run in variants.values():
        await run()
    out: dict[str, list[Load]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            out[name].append(await run())
    return out


def merged(loads: list[Load]) -> tuple[float, float, float, int, str]:
    """Median rate over runs, median and p99 latency over all samples, errors, first error."""
    rates = sorted(load.rate for load in loads)
    samples = [ms for load in loads for ms in load.latencies_ms]
    median, p99 = median_p99(samples) if samples else (float("nan"), float("nan"))
    errors = sum(load.errors for load in loads)
    first = next((load.first_error for load in loads if load.first_error), "")
    return median_p99(rates)[0], median, p99, errors, first


class HttpError(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:200]!r}")
        self.status = status


def session(connections: int = 64) -> aiohttp.ClientSession:
    """A keep-alive session for loopback load, at most ``connections`` sockets."""
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30), raise_for_status=False
    )


def http_call(
    client: aiohttp.ClientSession,
    method: str,
    url: Callable[[int], str],
    *,
    expect: int,
    body: Callable[[int], bytes] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Call:
    """A :data:`Call` that sends one request and fails unless the status is ``expect``."""
    sent = dict(headers or {})
    if body is not None:
        sent.setdefault("Content-Type", "application/json")

    async def one(n: int) -> None:
        data = body(n) if body is not None else None
        async with client.request(method, url(n), data=data, headers=sent) as response:
            payload = await response.read()
            if response.status != expect:
                raise HttpError(response.status, payload)

    return one


@dataclass(frozen=True)
class Budget:
    """How long each measurement runs: ``rounds`` runs of at most ``seconds`` / ``requests``."""

    rounds: int
    seconds: float
    requests: int


def budget(ctx: Context) -> Budget:
    """``ctx.repeats`` interleaved runs of 0.6 s each; quick: at most 5 runs of 0.25 s."""
    if ctx.quick:
        return Budget(min(ctx.repeats, 5), 0.25, 20_000)
    return Budget(ctx.repeats, 0.6, 100_000)


def result(section: str, name: str, loads: list[Load], *, unit: str, scale: float = 1) -> Result:
    """A throughput result: the median rate over runs (times ``scale``, e.g. documents per
    pipeline), with the latency of one call over all runs in the detail."""
    rate, median, p99, errors, first = merged(loads)
    detail = (
        f"per call: median {median:.2f} ms, p99 {p99:.2f} ms; median of {len(loads)} runs; "
        f"errors {errors}" + (f" (first: {first})" if first else "")
    )
    return Result(section, name, rate * scale, unit, detail=detail)
