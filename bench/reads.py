"""3. Reads: documents per second through the keyspace and the API, against raw Redis.

* Keyspace ``get`` against the raw floor: ``JSON.GET`` plus ``orjson.loads`` (what
  a hand-rolled layer needs to hand out a dict), sequential and concurrent.
* ``GET /api/drivers/{id}`` on the authenticated, rate-limited path (a designer's
  API key; limits so high that the limiter runs on every request but never
  refuses) against the trivial handler and the one-``JSON.GET`` handler.
* Redis round trips per HTTP read, counted by the client and by the server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import orjson

from keyspace import DRIVER
from keyspace.connection import call

from .common import Context, Report, Result
from .http_load import (
    Budget,
    Load,
    budget,
    closed_loop,
    http_call,
    interleaved,
    result,
    session,
)
from .references import (
    Running,
    count_trips,
    fresh,
    mint_designer,
    our_settings,
    seed,
    serve_one_call,
    serve_ours,
    serve_trivial,
)
from .targets import ratio_target

SECTION = "3. Reads"
CONCURRENCY = 32
USERS, DRIVERS = 8, 1000
UNLIMITED = 10**9  # per minute: the limiter runs on every request and never refuses
HTTP_READ = (
    f"HTTP read: GET /api/drivers/{{id}} (ours, designer, limited), {CONCURRENCY} concurrent"
)
ONE_GET_READ = f"one-JSON.GET handler: GET /docs/{{id}}, {CONCURRENCY} concurrent"
TRIVIAL_READ = f"trivial handler: GET /docs/{{id}}, {CONCURRENCY} concurrent"
VS_ONE_GET = 1.0  # issue 19: at least the one-JSON.GET handler's rate
VS_TRIVIAL = 0.55  # issue 19: and at least this share of the trivial handler's


@dataclass
class ReadTarget:
    """Our app serving ``drivers`` with a designer's token that the limiter counts."""

    server: Running
    token: str
    drivers: list[str]

    def url(self, n: int) -> str:
        return f"{self.server.url}/api/drivers/{self.drivers[n % len(self.drivers)]}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def start_read_target(ctx: Context, client: aiohttp.ClientSession) -> ReadTarget:
    """Empty the server, seed users and drivers, serve our app and mint a designer key.

    The caller stops ``server``; checks once that the rate limiter answered."""
    await fresh(ctx.client, ctx.keyspace)
    _, drivers = await seed(ctx.keyspace, USERS, DRIVERS)
    settings = our_settings(read_per_minute=UNLIMITED, write_per_minute=UNLIMITED)
    server = await serve_ours(ctx.url, settings)
    target = ReadTarget(server, await mint_designer(client, server.url), drivers)
    async with client.get(target.url(0), headers=target.headers) as probe:
        await probe.read()
        if probe.status != 200 or "RateLimit-Limit" not in probe.headers:
            await server.stop()
            raise RuntimeError(f"the read path is not rate-limited as expected: {probe.status}")
    return target


def _ratio(name: str, num: Result, den: Result) -> Result:
    detail = f"{num.value:,.0f} / {den.value:,.0f} {num.unit}"
    return Result(SECTION, name, num.value / den.value if den.value else 0.0, "x", detail=detail)


async def _keyspace_reads(ctx: Context, report: Report, plan: Budget, ids: list[str]) -> None:
    ks, client = ctx.keyspace, ctx.client

    async def get(n: int) -> None:
        await ks.get(DRIVER, ids[n % len(ids)])

    async def raw_get(n: int) -> None:
        orjson.loads(await call(client, "JSON.GET", f"driver:{ids[n % len(ids)]}"))

    def run(fn: Callable[[int], Awaitable[None]], tasks: int) -> Callable[[], Awaitable[Load]]:
        return lambda: closed_loop(
            fn, concurrency=tasks, requests=plan.requests, max_seconds=plan.seconds
        )

    variants = {
        "keyspace get driver, sequential": run(get, 1),
        "raw JSON.GET + orjson.loads, sequential": run(raw_get, 1),
        f"keyspace get driver, {CONCURRENCY} concurrent": run(get, CONCURRENCY),
        f"raw JSON.GET + orjson.loads, {CONCURRENCY} concurrent": run(raw_get, CONCURRENCY),
    }
    loads = await interleaved(variants, plan.rounds)
    found = [result(SECTION, name, loads[name], unit="docs/s") for name in variants]
    report.results.extend(found)
    report.results.append(_ratio("keyspace get / raw JSON.GET, sequential", found[0], found[1]))
    report.results.append(
        _ratio(f"keyspace get / raw JSON.GET, {CONCURRENCY} concurrent", found[2], found[3])
    )


async def _http_reads(
    ctx: Context, report: Report, plan: Budget, client: aiohttp.ClientSession, ours: ReadTarget
) -> None:
    drivers = ours.drivers
    one, trivial = await serve_one_call(ctx.url), await serve_trivial()
    try:

        def get(url: Callable[[int], str]) -> Callable[[], Awaitable[Load]]:
            request = http_call(client, "GET", url, expect=200, headers=ours.headers)
            return lambda: closed_loop(
                request, concurrency=CONCURRENCY, requests=plan.requests, max_seconds=plan.seconds
            )

        variants = {
            HTTP_READ: get(ours.url),
            ONE_GET_READ: get(lambda n: f"{one.url}/docs/{drivers[n % len(drivers)]}"),
            TRIVIAL_READ: get(lambda n: f"{trivial.url}/docs/{drivers[n % len(drivers)]}"),
        }
        loads = await interleaved(variants, plan.rounds)

        async def priced(name: str) -> int:
            return (await variants[name]()).ok

        trips = await count_trips(ctx.client, lambda: priced(HTTP_READ))
        floor_trips = await count_trips(ctx.client, lambda: priced(ONE_GET_READ))
    finally:
        await one.stop()
        await trivial.stop()
    found = {name: result(SECTION, name, loads[name], unit="req/s") for name in variants}
    report.results.extend(found.values())
    report.results.append(
        Result(
            SECTION,
            "Redis round trips per HTTP read (ours)",
            trips.per_request,
            "trips/request",
            detail=trips.describe(),
        )
    )
    report.results.append(
        Result(
            SECTION,
            "Redis round trips per read (one-JSON.GET handler)",
            floor_trips.per_request,
            "trips/request",
            detail=floor_trips.describe(),
        )
    )
    vs_one = _ratio("HTTP read / one-JSON.GET handler", found[HTTP_READ], found[ONE_GET_READ])
    vs_trivial = _ratio("HTTP read / trivial handler", found[HTTP_READ], found[TRIVIAL_READ])
    floor = _ratio(
        "one-JSON.GET handler / trivial handler", found[ONE_GET_READ], found[TRIVIAL_READ]
    )
    report.results.extend([vs_one, vs_trivial, floor])
    errors = sum(load.errors for load in loads[HTTP_READ])
    context = f"{trips.per_request:.1f} round trips per read"
    report.targets.append(
        ratio_target(
            "HTTP read (authenticated, rate-limited, 32 concurrent) / one-JSON.GET handler",
            vs_one.value,
            VS_ONE_GET,
            f"{vs_one.detail}; {context}",
            errors,
        )
    )
    report.targets.append(
        ratio_target(
            "HTTP read (authenticated, rate-limited, 32 concurrent) / trivial handler",
            vs_trivial.value,
            VS_TRIVIAL,
            f"{vs_trivial.detail}; the one-JSON.GET handler makes {floor.value:.2f}x",
            errors,
        )
    )


async def run(ctx: Context, report: Report) -> None:
    plan = budget(ctx)
    try:
        async with session(CONCURRENCY) as client:
            ours = await start_read_target(ctx, client)
            try:
                await _keyspace_reads(ctx, report, plan, ours.drivers)
                await _http_reads(ctx, report, plan, client, ours)
            finally:
                await ours.server.stop()
    finally:
        await fresh(ctx.client, ctx.keyspace)
