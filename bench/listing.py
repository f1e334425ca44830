"""Section 1: the same filtered list (one user's optimized drivers) through the seed design
(``KEYS seed:driver:*`` + GET per key + client-side JSON parse and filter), the keyspace
query API and ``GET /api/drivers`` over HTTP, on the same server and the same drivers.

The seed path is given every advantage: its GETs are pipelined in one round trip (the
unpipelined GET-per-key loop is reported too, at 10k drivers) and it parses with orjson.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from app.config import Settings
from app.main import create_app
from keyspace import DRIVER, Keyspace, parse

from .common import Context, Report, Result, Target, timed
from .dataset import SEED_PREFIX, load, repeats_for, reset
from .plots import log_axes, pyplot, save

SECTION = "1. Listing vs the seed design"
UNPIPELINED_MAX_N = 10_000
PLOT = Path("bench") / "list_latency.png"


async def seed_list(client: Redis, user_id: str, *, pipelined: bool = True) -> list[str]:
    """The seed design's list: every key by KEYS, every value by GET, filtered in Python."""
    names = await client.keys(SEED_PREFIX + "*")
    if pipelined:
        async with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.get(name)
            raws = await pipe.execute()
    else:
        raws = [await client.get(name) for name in names]
    out: list[str] = []
    for raw in raws:
        if raw is None:
            continue
        doc = orjson.loads(raw)
        if doc.get("user_id") == user_id and doc.get("status") == "optimized":
            out.append(doc["driver_id"])
    return out


def _params(user_id: str) -> dict[str, list[str]]:
    return {"user_id": [user_id], "status": ["optimized"], "limit": ["1000"]}


async def keyspace_list(ks: Keyspace, user_id: str) -> list[str]:
    page = await ks.list(DRIVER, parse(DRIVER, _params(user_id)))
    assert page.next_cursor is None, "the filtered list must fit one page"
    return [str(doc["driver_id"]) for doc in page.items]


async def http_list(
    session: ClientSession, url: str, user_id: str, fields: str | None = None
) -> list[str]:
    params = _params(user_id) if fields is None else {**_params(user_id), "fields": [fields]}
    async with session.get(url, params=params) as response:
        response.raise_for_status()
        body: dict[str, Any] = await response.json(loads=orjson.loads)
    assert body["next_cursor"] is None, "the filtered list must fit one page"
    return [str(doc["driver_id"]) for doc in body["items"]]


async def page_bytes(session: ClientSession, url: str, user_id: str, fields: str | None) -> int:
    """The size of the list's answer body, whole or sparse (``fields=``)."""
    params = _params(user_id) if fields is None else {**_params(user_id), "fields": [fields]}
    async with session.get(url, params=params) as response:
        response.raise_for_status()
        return len(await response.read())


@dataclass
class Row:
    """Median and p99 (ms) of one path at one N."""

    median: float
    p99: float


async def _measure(
    fn: Callable[[], Awaitable[list[str]]], fast: int, slow: tuple[float, int, int] | None = None
) -> tuple[Row, list[str]]:
    """The ids of a first (warm-up) call, then the timing of ``fast`` runs; ``slow`` =
    (budget ms, min, max runs) sizes the repeats of a slow path from the first call."""
    started = time.perf_counter()
    ids = await fn()
    runs = fast
    if slow is not None:
        budget, lo, hi = slow
        runs = repeats_for((time.perf_counter() - started) * 1000, budget, lo, hi)
    median, p99 = await timed(fn, runs, warmup=0)
    return Row(median, p99), ids


async def run(ctx: Context, report: Report) -> None:
    ks, client = ctx.keyspace, ctx.client
    fast = max(50, ctx.repeats * 20)
    slow_budget = 3000.0 if ctx.quick else 20000.0
    rows: dict[str, dict[int, Row]] = {path: {} for path in _LABELS}
    try:
        for n in ctx.sizes:
            await reset(ks)
            loaded = await load(ks, n, seed_layout=True)
            user, expected = loaded.chosen, loaded.expected
            print(f"  N={n:,}: loaded {n:,} drivers both ways in {loaded.seconds:.1f}s", flush=True)

            found: dict[str, list[str]] = {}
            slow = (slow_budget, 3, ctx.repeats * 4)
            rows["seed"][n], found["seed"] = await _measure(
                partial(seed_list, client, user), fast, slow
            )
            if n <= UNPIPELINED_MAX_N:
                unpipelined = partial(seed_list, client, user, pipelined=False)
                rows["seed-unpipelined"][n], found["seed-unpipelined"] = await _measure(
                    unpipelined, fast, (slow_budget, 3, ctx.repeats * 2)
                )
            rows["keyspace"][n], found["keyspace"] = await _measure(
                partial(keyspace_list, ks, user), fast
            )

            token = secrets.token_urlsafe(32)
            app = create_app(Settings(admin_token=token), client=client)
            async with TestServer(app) as server:
                url = str(server.make_url("/api/drivers"))
                headers = {"Authorization": f"Bearer {token}"}
                async with ClientSession(headers=headers) as session:
                    rows["http"][n], found["http"] = await _measure(
                        partial(http_list, session, url, user), fast
                    )
                    rows["http-sparse"][n], found["http-sparse"] = await _measure(
                        partial(http_list, session, url, user, SPARSE), fast
                    )
                    sizes = [await page_bytes(session, url, user, f) for f in (None, SPARSE)]

            for path, ids in found.items():
                if set(ids) != expected or len(ids) != len(expected):
                    raise AssertionError(
                        f"N={n}: the {path} path listed {len(ids)} drivers, expected "
                        f"{len(expected)} (the result sets differ)"
                    )
            _results(report, n, rows, len(expected))
            report.results.append(_saved(n, sizes[0], sizes[1]))
    finally:
        await reset(ks)  # drop the seed strings and documents for the next sections
    _targets(ctx, report, rows)
    _plot(ctx, report, rows)


_LABELS = {
    "seed": "seed path (KEYS + pipelined GET + parse/filter)",
    "seed-unpipelined": "seed path, unpipelined GET per key",
    "keyspace": "keyspace API (ks.list, indexed)",
    "http": "HTTP GET /api/drivers?user_id=..&status=optimized",
    "http-sparse": "HTTP, the same list with fields=driver_id,status,chip_data.cores",
}
SPARSE = "driver_id,status,chip_data.cores"  # the index reads only these paths


def _saved(n: int, full: int, sparse: int) -> Result:
    """The bytes a sparse answer saves (fields=, keyspace.sparse) on the HTTP list."""
    detail = f"{full:,} bytes whole, {sparse:,} with fields={SPARSE}"
    return Result(
        SECTION,
        f"HTTP list bytes saved by fields=, N={n}",
        100 * (1 - sparse / full),
        "%",
        None,
        detail,
    )


def _results(report: Report, n: int, rows: dict[str, dict[int, Row]], matches: int) -> None:
    detail = f"{matches} matching drivers of {n:,}; result sets equal on every path"
    for path, label in _LABELS.items():
        if n in rows[path]:
            row = rows[path][n]
            report.results.append(
                Result(SECTION, f"{label}, N={n}", row.median, "ms", row.p99, detail)
            )
    seed = rows["seed"][n].median
    for path, name in (("keyspace", "keyspace API"), ("http", "HTTP")):
        ratio = seed / rows[path][n].median
        report.results.append(
            Result(SECTION, f"speedup seed / {name}, N={n}", ratio, "x", None, "medians")
        )


def _targets(ctx: Context, report: Report, rows: dict[str, dict[int, Row]]) -> None:
    not_run = f"not run (sizes {', '.join(f'{n:,}' for n in ctx.sizes)})"
    for path, name, floor in (("keyspace", "keyspace API", 200.0), ("http", "HTTP", 100.0)):
        title = f"Filtered list at 100k documents: {name} >= {floor:.0f}x faster than the seed path"
        if 100_000 not in rows[path]:
            report.targets.append(Target(title, False, not_run, judged=False))
            continue
        seed, this = rows["seed"][100_000].median, rows[path][100_000].median
        measured = f"{seed / this:.0f}x (seed {seed:.1f} ms / {name} {this:.2f} ms, medians)"
        report.targets.append(Target(title, seed / this >= floor, measured))
    title = "Filtered list at 1M documents: keyspace API median < 5 ms"
    if 1_000_000 not in rows["keyspace"]:
        report.targets.append(Target(title, False, not_run, judged=False))
    else:
        row = rows["keyspace"][1_000_000]
        measured = f"median {row.median:.2f} ms, p99 {row.p99:.2f} ms"
        report.targets.append(Target(title, row.median < 5.0, measured))


def _plot(ctx: Context, report: Report, rows: dict[str, dict[int, Row]]) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(8, 5.6))
    styles = {
        "seed": "o-",
        "seed-unpipelined": "s",
        "keyspace": "^-",
        "http": "D-",
        "http-sparse": "v-",
    }
    for path, label in _LABELS.items():
        points = sorted(rows[path].items())
        if not points:
            continue
        xs = [n for n, _ in points]
        med = [r.median for _, r in points]
        up = [r.p99 - r.median for _, r in points]
        ax.errorbar(xs, med, yerr=[[0.0] * len(xs), up], fmt=styles[path], capsize=3, label=label)
    log_axes(
        ax,
        "drivers (N)",
        "latency, ms (median; bar to p99)",
        "One user's optimized drivers: seed design vs keyspace",
        0.3,
    )
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    save(ctx, report, fig, plt, PLOT)
