"""Section 4's list queries and how they are timed: issue 19's broad sorted list, the
time-range list and the cursor walk, with the parameters the list API accepts today.

Timed calls ask ``count=none`` (``COUNT``): a client paging a list asks for the total only
when it shows it; the call that counts the matches for the detail asks ``exact``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from keyspace import DRIVER, Keyspace, Page, parse
from keyspace.schema import Indexed, get_path

from .common import median_p99
from .dataset import repeats_for, time_window

Params = dict[str, list[str]]
Row = tuple[float, str]  # (cores, driver id): the walk's order, descending on both

COUNT: str | None = "none"  # timed pages skip the total (count=exact|none); matches() counts
TIME_SHARE = 0.01  # the time-range list's window holds this share of the generated times
PAGE_SIZE = 50
WALK_PAGES = (1, 10, 100)
WALK_PARAMS: Params = {"sort": ["-cores"], "limit": [str(PAGE_SIZE)]}
WALK_NAME = f"every driver by cores, {PAGE_SIZE} a page"
BROAD = "quantum QubitCore drivers with >= 256 cores, top 50 by cores (~2% of N match)"
TIME_RANGE = "drivers in a ~1% timestamp window, newest first, top 50"


def _driver_field(name: str) -> Indexed:
    found = DRIVER.indexed(name)
    if found is None:
        raise LookupError(f"drivers have no indexed field {name!r}")
    return found


CORES = _driver_field("cores")


def time_range_params(share: float = TIME_SHARE) -> Params:
    low, high, _ = time_window(share)
    return {"timestamp_min": [low], "timestamp_max": [high], "sort": ["-timestamp"]}


def timed_params(params: Params) -> Params:
    """``params`` as the timed calls send them (with ``count`` once it exists)."""
    return params if COUNT is None else {**params, "count": [COUNT]}


def counting_params(params: Params) -> Params:
    """``params`` asking for the exact total (the default before ``count`` existed)."""
    return params if COUNT is None else {**params, "count": ["exact"]}


async def list_page(ks: Keyspace, params: Params) -> Page:
    return await ks.list(DRIVER, parse(DRIVER, params))


async def matches(ks: Keyspace, params: Params) -> int:
    total = (await list_page(ks, counting_params(params))).total
    assert total is not None, "count=exact answers a total"
    return total


@dataclass
class Timing:
    median: float
    p99: float
    runs: int
    matches: int = 0  # filled in by the caller that counted them


async def time_list(ks: Keyspace, params: Params, most: int, budget_ms: float) -> Timing:
    """Median and p99 of up to ``most`` sequential calls, fewer when a call is slow enough
    that ``most`` would overrun ``budget_ms`` (at least 15)."""
    sent = timed_params(params)
    started = time.perf_counter()
    await list_page(ks, sent)  # warm-up, and the measure of how many runs fit the budget
    runs = repeats_for((time.perf_counter() - started) * 1000, budget_ms, min(15, most), most)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await list_page(ks, sent)
        samples.append((time.perf_counter() - started) * 1000)
    median, p99 = median_p99(samples)
    return Timing(median, p99, runs)


@dataclass
class Walk:
    """A cursor walk: the cursor each wanted page is fetched with (None for page 1), and the
    per-page timings measured afterwards."""

    cursors: dict[int, str | None]
    pages_walked: int
    walk_ms: float
    timings: dict[int, Timing] = field(default_factory=dict)


def _in_order(prev: Row | None, items: list[dict[str, Any]]) -> Row | None:
    """The last (cores, id) row of ``items``, checking the walk's descending order."""
    for doc in items:
        row = (float(get_path(doc, CORES.path)), str(doc["driver_id"]))
        if prev is not None and not row < prev:
            raise AssertionError(f"the cursor walk went out of order at {row} after {prev}")
        prev = row
    return prev


async def walk(ks: Keyspace, params: Params, pages: Sequence[int] = WALK_PAGES) -> Walk:
    """Follow ``next_cursor`` from page 1 to ``max(pages)``, keeping each wanted page's
    cursor; checks that no driver repeats and the order holds across pages."""
    cursors: dict[int, str | None] = {}
    seen: set[str] = set()
    cursor: str | None = None
    last: Row | None = None
    started = time.perf_counter()
    for number in range(1, max(pages) + 1):
        if number in pages:
            cursors[number] = cursor
        sent = timed_params(params if cursor is None else {**params, "cursor": [cursor]})
        page = await list_page(ks, sent)
        ids = [str(doc["driver_id"]) for doc in page.items]
        if seen.intersection(ids) or len(set(ids)) != len(ids):
            raise AssertionError(f"the cursor walk repeated a driver on page {number}")
        seen.update(ids)
        last = _in_order(last, page.items)
        cursor = page.next_cursor
        if cursor is None and number < max(pages):
            raise ValueError(f"the walk ended at page {number}, before page {max(pages)}")
    return Walk(cursors, max(pages), (time.perf_counter() - started) * 1000)


async def time_pages(
    ks: Keyspace, params: Params, found: Walk, most: int, budget_ms: float
) -> None:
    """Time each wanted page fetched with its cursor, the pages interleaved round by round so
    a drift of the shared machine falls on all of them alike."""
    per_page_ms = found.walk_ms / found.pages_walked
    runs = repeats_for(per_page_ms * len(found.cursors), budget_ms, min(15, most), most)
    samples: dict[int, list[float]] = {number: [] for number in found.cursors}
    sent = {
        number: timed_params(params if c is None else {**params, "cursor": [c]})
        for number, c in found.cursors.items()
    }
    for _ in range(runs):
        for number in found.cursors:
            started = time.perf_counter()
            await list_page(ks, sent[number])
            samples[number].append((time.perf_counter() - started) * 1000)
    for number, taken in samples.items():
        median, p99 = median_p99(taken)
        found.timings[number] = Timing(median, p99, runs)
