"""2. Writes: creates per second through the keyspace and the API, against raw Redis.

* Keyspace ``create`` of users (two unique claims) and drivers (a checked owner
  reference), sequential and :data:`CONCURRENCY` tasks, against the raw floor:
  ``JSON.SET`` of the same stored documents (same key prefixes, so RediSearch
  indexes them alike), unpipelined and pipelined, at the same concurrency.
* Keyspace ``create_many`` (a batch create, all or none in one script) of
  :data:`PIPELINE` documents per call, next to the pipelined ``JSON.SET`` of as many.
* ``POST /api/drivers`` as the admin (no rate limit) against the trivial aiohttp
  handler and the one-``JSON.SET`` handler (:mod:`bench.references`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from keyspace import DRIVER, USER, EntitySpec
from keyspace.codec import now_iso
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
    TOKEN,
    count_trips,
    driver_body,
    fresh,
    seed,
    serve_one_call,
    serve_ours,
    serve_trivial,
    user_body,
)
from .targets import ratio_target

SECTION = "2. Writes"
CONCURRENCY = 32
PIPELINE = 50
HTTP_CREATE = f"HTTP create: POST /api/drivers (ours, admin), {CONCURRENCY} concurrent"
ONE_SET_CREATE = f"one-JSON.SET handler: POST /docs, {CONCURRENCY} concurrent"
TRIVIAL_CREATE = f"trivial handler: POST /docs, {CONCURRENCY} concurrent"
BATCH_FIRST = 10**9
"""Batch creates number their documents from here: no other variant's uniques come near."""
KEYSPACE_TARGET = 0.9  # issue 19, for users (two uniques) and drivers (one reference) alike
HTTP_TARGET = 0.9  # issue 19


def _stored(spec: EntitySpec, n: int, owners: list[str]) -> tuple[str, bytes]:
    """Key and bytes of the document the keyspace would store for input ``n``."""
    doc_id = f"raw_{n}"
    if spec is USER:
        doc: dict[str, Any] = {"user_id": doc_id, **user_body(n), "created_at": now_iso()}
    else:
        body = driver_body(n, owners[n % len(owners)])
        doc = {"driver_id": doc_id, **body, "timestamp": now_iso()}
    return f"{spec.prefix}:{doc_id}", orjson.dumps(doc)


def _variants(
    ctx: Context, spec: EntitySpec, owners: list[str], plan: Budget
) -> dict[str, tuple[Callable[[], Awaitable[Load]], float]]:
    """name -> (one timed run, documents per call)."""
    ks, client = ctx.keyspace, ctx.client

    async def create(n: int) -> None:
        body = user_body(n) if spec is USER else driver_body(n, owners[n % len(owners)])
        await ks.create(spec, body)

    async def raw_set(n: int) -> None:
        key, raw = _stored(spec, n, owners)
        await call(client, "JSON.SET", key, "$", raw)

    async def raw_pipelined(n: int) -> None:
        async with client.pipeline(transaction=False) as pipe:
            for i in range(PIPELINE):
                key, raw = _stored(spec, n * PIPELINE + i, owners)
                pipe.execute_command("JSON.SET", key, "$", raw)
            await pipe.execute()

    async def batch_create(n: int) -> None:
        first = BATCH_FIRST + n * PIPELINE
        await ks.create_many(spec, batch_bodies(spec, range(first, first + PIPELINE), owners))

    def run(fn: Callable[[int], Awaitable[None]], tasks: int) -> Callable[[], Awaitable[Load]]:
        return lambda: closed_loop(
            fn, concurrency=tasks, requests=plan.requests, max_seconds=plan.seconds
        )

    what = "users (2 uniques)" if spec is USER else "drivers (1 reference)"
    return {
        f"keyspace create {what}, sequential": (run(create, 1), 1),
        f"raw JSON.SET {what}, sequential": (run(raw_set, 1), 1),
        f"keyspace create {what}, {CONCURRENCY} concurrent": (run(create, CONCURRENCY), 1),
        f"raw JSON.SET {what}, {CONCURRENCY} concurrent, unpipelined": (
            run(raw_set, CONCURRENCY),
            1,
        ),
        f"raw JSON.SET {what}, {CONCURRENCY} concurrent, pipelined x{PIPELINE}": (
            run(raw_pipelined, CONCURRENCY),
            PIPELINE,
        ),
        f"keyspace batch create {what}, {CONCURRENCY} concurrent, x{PIPELINE} per call": (
            run(batch_create, CONCURRENCY),
            PIPELINE,
        ),
    }


def batch_bodies(spec: EntitySpec, numbers: range, owners: list[str]) -> list[dict[str, Any]]:
    """The bodies of one batch create: users or drivers numbered ``numbers``."""
    if spec is USER:
        return [user_body(n) for n in numbers]
    return [driver_body(n, owners[n % len(owners)]) for n in numbers]


def _ratio(section: str, name: str, num: Result, den: Result) -> Result:
    detail = f"{num.value:,.0f} / {den.value:,.0f} {num.unit}"
    return Result(section, name, num.value / den.value if den.value else 0.0, "x", detail=detail)


def _errors(loads: list[Load]) -> int:
    return sum(load.errors for load in loads)


async def _keyspace_creates(ctx: Context, report: Report, plan: Budget) -> None:
    owners, _ = await seed(ctx.keyspace, 8, 0)
    for spec in (USER, DRIVER):
        variants = _variants(ctx, spec, owners, plan)
        loads = await interleaved({name: v[0] for name, v in variants.items()}, plan.rounds)
        found = {
            name: result(SECTION, name, loads[name], unit="docs/s", scale=variants[name][1])
            for name in variants
        }
        report.results.extend(found.values())
        names = list(variants)
        ratios = [
            _ratio(
                SECTION,
                f"keyspace create / raw JSON.SET, {spec.collection}, {label}",
                found[ks_name],
                found[raw_name],
            )
            for ks_name, raw_name, label in (
                (names[0], names[1], "sequential"),
                (names[2], names[3], f"{CONCURRENCY} concurrent"),
                (names[5], names[4], f"batch vs pipelined, x{PIPELINE}"),
            )
        ]
        report.results.extend(ratios)
        what = "users (2 uniques)" if spec is USER else "drivers (1 reference)"
        report.targets.append(
            ratio_target(
                f"Keyspace create {what} / unpipelined raw JSON.SET, {CONCURRENCY} concurrent",
                ratios[1].value,
                KEYSPACE_TARGET,
                ratios[1].detail,
                _errors(loads[names[2]]),
            )
        )


async def _http_creates(ctx: Context, report: Report, plan: Budget) -> None:
    owners, _ = await seed(ctx.keyspace, 8, 0)
    bodies = [orjson.dumps(driver_body(n, owners[n % len(owners)])) for n in range(64)]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    ours, one, trivial = (
        await serve_ours(ctx.url),
        await serve_one_call(ctx.url),
        await serve_trivial(),
    )
    try:
        async with session(CONCURRENCY) as client:

            def post(url: str) -> Callable[[], Awaitable[Load]]:
                request = http_call(
                    client,
                    "POST",
                    lambda n: url,
                    expect=201,
                    body=lambda n: bodies[n % len(bodies)],
                    headers=headers,
                )
                return lambda: closed_loop(
                    request,
                    concurrency=CONCURRENCY,
                    requests=plan.requests,
                    max_seconds=plan.seconds,
                )

            variants = {
                HTTP_CREATE: post(f"{ours.url}/api/drivers"),
                ONE_SET_CREATE: post(f"{one.url}/docs"),
                TRIVIAL_CREATE: post(f"{trivial.url}/docs"),
            }
            loads = await interleaved(variants, plan.rounds)
            found = {name: result(SECTION, name, loads[name], unit="req/s") for name in variants}
            report.results.extend(found.values())

            async def priced() -> int:
                return (await variants[HTTP_CREATE]()).ok

            trips = await count_trips(ctx.client, priced)
    finally:
        for server in (ours, one, trivial):
            await server.stop()
    report.results.append(
        Result(
            SECTION,
            "Redis round trips per HTTP create (ours)",
            trips.per_request,
            "trips/request",
            detail=trips.describe(),
        )
    )
    vs_one = _ratio(
        SECTION, "HTTP create / one-JSON.SET handler", found[HTTP_CREATE], found[ONE_SET_CREATE]
    )
    vs_trivial = _ratio(
        SECTION, "HTTP create / trivial handler", found[HTTP_CREATE], found[TRIVIAL_CREATE]
    )
    floor = _ratio(
        SECTION,
        "one-JSON.SET handler / trivial handler",
        found[ONE_SET_CREATE],
        found[TRIVIAL_CREATE],
    )
    report.results.extend([vs_one, vs_trivial, floor])
    report.targets.append(
        ratio_target(
            f"HTTP create (admin, {CONCURRENCY} concurrent) / one-JSON.SET handler",
            vs_one.value,
            HTTP_TARGET,
            f"{vs_one.detail}; {vs_trivial.value:.2f}x of the trivial handler; "
            f"{trips.per_request:.1f} round trips per create",
            _errors(loads[HTTP_CREATE]),
        )
    )


async def run(ctx: Context, report: Report) -> None:
    plan = budget(ctx)
    await fresh(ctx.client, ctx.keyspace)
    try:
        await _keyspace_creates(ctx, report, plan)
        await fresh(ctx.client, ctx.keyspace)
        await _http_creates(ctx, report, plan)
    finally:
        await fresh(ctx.client, ctx.keyspace)
