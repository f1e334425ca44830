"""8. The Construct's cached read routes, on a world of 100,000 documents (quick: 10,000).

The world (bench/construct_world.py) is written through ``Keyspace.commit_batch``: 100
users, 10 assets, 2,000 votes, 200 manufacturing orders with their milestones and
inspections, 5,000 price feeds, 5,000 transactions and ~87,000 trading orders spread over
the assets at 400 price levels a side (open, partially filled, filled, cancelled).

Three of the seed's read routes are answered by ``keyspace.viewing.answer``, as the API
answers them: an asset's order book (``order_book``), a user's stats (``user_stats``) and
the market analytics (``market_analytics``), each as

* a hit: the answer already cached (stored once, before timing, with a TTL outlasting the
  section: the trading category's 60 s would expire in the middle of a full run);
* a miss: the same call with one more path value, the call's sequence number, that no read
  uses but the cache key includes, so every lookup misses, the answer is computed and
  stored (for 2 s, so memory stays flat). Deleting the entry or bumping a collection's
  version before each call would race at 32 callers: another caller's store lands between
  the delete and the lookup, and the "miss" hits;
* computed: the same route of ``systems.load("construct", cache_ttl=0)``, which never looks
  the cache up.

The three answers are checked byte-identical before timing. Each at 1 and 32 concurrent
callers, all variants interleaved round by round (as section 7); every figure is a median
over the runs (latency over all calls of all runs).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from keyspace import Keyspace, System, systems, viewing
from keyspace.views import View

from .common import Context, Report, Result
from .construct_world import ASSETS, build, counts
from .http_load import Budget, Call, Load, budget, closed_loop, interleaved, merged
from .references import fresh

SECTION = "8. The Construct's cached read routes"
CALLERS = (1, 32)
FULL_DOCUMENTS, QUICK_DOCUMENTS = 100_000, 10_000
PRIME_TTL_SECONDS = 3600
MISS_TTL_SECONDS = 2
MISS_PARAM = "bench_miss"  # a path value the view's parts never read: only the key sees it
ROUTES = (  # (label, view, path parameter or None)
    ("order book", "order_book", "asset_id"),
    ("user stats", "user_stats", "user_id"),
    ("market analytics", "market_analytics", None),
)
VARIANTS = ("hit", "miss (lookup + compute + store)", "computed without cache (cache_ttl=0)")


def _view(system: System, name: str) -> View:
    return next(v for v in system.views if v.name == name)


async def route_calls(
    ks: Keyspace, plain: Keyspace, label: str, name: str, path: dict[str, str]
) -> tuple[dict[str, Call], int]:
    """Hit, miss and computed calls of one route, and its answer's size; raises unless the
    three answer the same bytes."""
    cached, uncached = systems.load("construct"), systems.load("construct", cache_ttl=0)
    view, plain_view = _view(cached, name), _view(uncached, name)
    ttl, no_ttl = cached.view_ttl(view), uncached.view_ttl(plain_view)
    if ttl is None or no_ttl is not None:
        raise RuntimeError(f"{name}: cached by the served system {ttl}, by cache_ttl=0 {no_ttl}")

    def ask(at: Keyspace, keep: int, where: dict[str, str]) -> Awaitable[tuple[bytes, bool]]:
        return viewing.answer(at, view, cached.aggregates, keep, where, {})

    computed, _ = await viewing.answer(plain, plain_view, uncached.aggregates, None, path, {})
    missed, miss_hit = await ask(ks, MISS_TTL_SECONDS, {**path, MISS_PARAM: "0"})
    await ask(ks, PRIME_TTL_SECONDS, path)  # stored: the hits below read it
    hit, from_cache = await ask(ks, ttl, path)
    if miss_hit or not from_cache or not computed == missed == hit:
        raise RuntimeError(f"{label}: cached, missed and computed answers differ, or no hit/miss")

    async def lookup_hit(_: int) -> None:
        if not (await ask(ks, ttl, path))[1]:
            raise RuntimeError(f"{label}: a cache lookup missed")

    async def lookup_miss(n: int) -> None:
        if (await ask(ks, MISS_TTL_SECONDS, {**path, MISS_PARAM: str(n)}))[1]:
            raise RuntimeError(f"{label}: a unique cache key hit")

    async def compute(_: int) -> None:
        await viewing.answer(plain, plain_view, uncached.aggregates, None, path, {})

    calls: tuple[Call, ...] = (lookup_hit, lookup_miss, compute)
    return {f"{label}, {v}": fn for v, fn in zip(VARIANTS, calls, strict=True)}, len(hit)


def _runner(fn: Call, callers: int, plan: Budget) -> Callable[[], Awaitable[Load]]:
    return lambda: closed_loop(
        fn, concurrency=callers, requests=plan.requests, max_seconds=plan.seconds
    )


def _report(report: Report, loads: dict[str, list[Load]], callers: int) -> None:
    who = f"{callers} caller" + ("s" if callers > 1 else "")
    figures = {name: merged(runs) for name, runs in loads.items()}
    for name, (rate, median, p99, errors, first) in figures.items():
        note = f"median of {len(loads[name])} runs; errors {errors}" + (
            f" (first: {first})" if first else ""
        )
        report.results.append(Result(SECTION, f"{name}, {who}", median, "ms", p99, note))
        report.results.append(Result(SECTION, f"{name}, {who}", rate, "calls/s", detail=note))
    for label, _, _ in ROUTES:
        hit, miss, plain = (figures[f"{label}, {v}"] for v in VARIANTS)
        for what, num, den, unit in (
            ("hit / computed throughput", hit[0], plain[0], "calls/s"),
            ("computed / hit latency", plain[1], hit[1], "ms"),
            ("miss / computed latency", miss[1], plain[1], "ms"),
        ):
            detail = f"{num:,.2f} / {den:,.2f} {unit}"
            value = num / den if den else 0.0
            report.results.append(
                Result(SECTION, f"{label}: {what}, {who}", value, "x", None, detail)
            )


async def measure(ctx: Context, report: Report, total: int, plan: Budget) -> None:
    """Build a world of ``total`` documents on an emptied server and time its routes."""
    await fresh(ctx.client, ctx.keyspace)
    ks = Keyspace(ctx.client, systems.load("construct").schema)
    plain = Keyspace(ctx.client, systems.load("construct", cache_ttl=0).schema)
    await ks.setup()
    await plain.setup()
    users, assets, seconds = await build(ks, total)
    n = counts(total)
    made = (
        f"{n.orders:,} trading orders over {ASSETS} assets, {n.users} users, "
        f"{n.transactions:,} transactions, {n.price_feeds:,} price feeds, {n.votes:,} votes"
    )
    world = f"Construct world written ({total:,} documents, commit_batch)"
    report.results.append(Result(SECTION, world, total / seconds, "docs/s", None, made))
    calls: dict[str, Call] = {}
    for label, view, param in ROUTES:
        path = {} if param is None else {param: (assets if param == "asset_id" else users)[0]}
        route, size = await route_calls(ks, plain, label, view, path)
        calls |= route
        report.results.append(Result(SECTION, f"{label}: answer", size, "bytes", None, view))
    for callers in CALLERS:
        variants = {name: _runner(fn, callers, plan) for name, fn in calls.items()}
        _report(report, await interleaved(variants, plan.rounds), callers)


async def run(ctx: Context, report: Report) -> None:
    try:
        await measure(ctx, report, QUICK_DOCUMENTS if ctx.quick else FULL_DOCUMENTS, budget(ctx))
    finally:
        await fresh(ctx.client, ctx.keyspace)
