"""Section 4's list measurements (bench/lists.py) at a tiny size on the real server: the
time-range window finds the drivers whose timestamps lie in it, and the cursor walk reaches
its pages in order, keeps each page's cursor and times every page. No timing is asserted."""

from __future__ import annotations

import pytest

from bench import lists
from bench.dataset import load, reset, time_window
from keyspace import DRIVER, Keyspace, connect, parse
from keyspace.server import EmbeddedRedis

DRIVERS = 300
SMALL_PAGES: lists.Params = {"sort": ["-cores"], "limit": ["10"]}


@pytest.mark.redis
async def test_time_range_and_cursor_walk(redis_server: EmbeddedRedis) -> None:
    client = connect(redis_server.url, max_connections=8)
    try:
        ks = Keyspace(client)
        await reset(ks)
        await load(ks, DRIVERS, seed_layout=False)
        everything = await ks.list(DRIVER, parse(DRIVER, {"limit": ["1000"]}))
        assert everything.total == DRIVERS

        low, high, _ = time_window(0.07)  # a wide window (18 days), so a tiny world has matches
        inside = {d["driver_id"] for d in everything.items if low <= d["timestamp"] <= high}
        params = {**lists.time_range_params(0.07), "limit": ["1000"]}
        assert inside
        assert await lists.matches(ks, params) == len(inside)
        timing = await lists.time_list(ks, params, most=3, budget_ms=1.0)
        assert timing.runs == 3 and 0 < timing.median <= timing.p99

        walked = await lists.walk(ks, SMALL_PAGES, pages=(1, 3, 10))
        assert walked.pages_walked == 10 and walked.cursors[1] is None
        page3 = await lists.list_page(ks, {**SMALL_PAGES, "cursor": [str(walked.cursors[3])]})
        by_cores = sorted(
            everything.items, key=lambda d: (d["chip_data"]["cores"], d["driver_id"]), reverse=True
        )
        assert [d["driver_id"] for d in page3.items] == [d["driver_id"] for d in by_cores[20:30]]
        await lists.time_pages(ks, SMALL_PAGES, walked, most=2, budget_ms=1.0)
        assert sorted(walked.timings) == [1, 3, 10]
        assert all(t.runs == 2 and t.median > 0 for t in walked.timings.values())

        with pytest.raises(ValueError, match="before page 31"):
            await lists.walk(ks, SMALL_PAGES, pages=(1, 31))  # 300 drivers fill 30 pages
    finally:
        await client.aclose()
