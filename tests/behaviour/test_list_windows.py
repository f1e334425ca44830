"""Pages read in windows of their sort range first (keyspace.pages.windows): a page without a
total whose only condition is a bounded range over its sort field. Every answer is the scan
path's and the counted walk's, with rows tied on a window's edge, windows too sparse to fill
a page and values just outside the range."""

from __future__ import annotations

from typing import Any

import pytest

from keyspace import DRIVER, Keyspace, listing, parse
from tests import factories as f
from tests.behaviour.test_list_shapes import walk

LOW, HIGH = "2025-05-01T00:00:00", "2025-05-01T08:00:00"
# The first window of a newest-first page is HIGH's last 15 minutes (1/32 of 8 hours), the
# second its last 2 hours; oldest-first, 00:15:00 and 02:00:00 from LOW.
STAMPS = [
    "2025-05-01T08:00:00",
    "2025-05-01T08:00:00",
    "2025-05-01T07:45:00",  # on the first window's edge, three times
    "2025-05-01T07:45:00",
    "2025-05-01T07:45:00",
    "2025-05-01T07:44:59.999999",
    "2025-05-01T06:30:00",
    "2025-05-01T06:00:00",  # on the second window's edge
    "2025-05-01T06:00:00",
    "2025-05-01T03:00:00",
    "2025-05-01T02:00:00",
    "2025-05-01T00:15:00",
    "2025-05-01T00:15:00",
    "2025-05-01T00:00:00.000001",
    "2025-05-01T00:00:00",
    "2025-05-01T08:00:00.000001",  # just outside the range, on both sides
    "2025-04-30T23:59:59.999999",
]
CORES = [3200, 3200, 3100, 3100, 3099, 2400, 2400, 900, 100, 100, 64, 1, 3201]


async def world(ks: Keyspace) -> list[dict[str, Any]]:
    await f.user(ks, "A")
    made = []
    for i, stamp in enumerate(STAMPS):
        made.append(
            (await f.driver(ks, "user_1", cores=CORES[i % len(CORES)], timestamp=stamp)).doc
        )
    return made


def expected(docs: list[dict[str, Any]], key: str, low: Any, high: Any, desc: bool) -> list[str]:
    def value(d: dict[str, Any]) -> Any:
        return d["timestamp"] if key == "timestamp" else d["chip_data"]["cores"]

    kept = sorted(
        (d for d in docs if low <= value(d) <= high), key=lambda d: (value(d), d["driver_id"])
    )
    return [d["driver_id"] for d in (reversed(kept) if desc else kept)]


@pytest.mark.parametrize("limit", ["1", "2", "4", "5", "6", "9", "50"])
async def test_time_windows_answer_what_the_whole_range_does(ks: Keyspace, limit: str) -> None:
    docs = await world(ks)
    for desc in (True, False):
        sort = "-timestamp" if desc else "timestamp"
        want = expected(docs, "timestamp", LOW, HIGH, desc)
        assert len(want) == 15
        params = {"timestamp_min": LOW, "timestamp_max": HIGH, "sort": sort, "limit": limit}
        none, _ = await walk(ks, **params, count="none")
        exact, _ = await walk(ks, **params)
        assert none == exact == want, (sort, limit)


@pytest.mark.parametrize("limit", ["1", "2", "3", "4", "7"])
async def test_number_windows_answer_what_the_whole_range_does(ks: Keyspace, limit: str) -> None:
    docs = await world(ks)
    for low, high in ((1, 3200), (64, 3100), (100, 100), (65, 3199)):
        for desc in (True, False):
            sort = "-cores" if desc else "cores"
            want = expected(docs, "cores", low, high, desc)
            params = {"cores_min": str(low), "cores_max": str(high), "sort": sort, "limit": limit}
            none, _ = await walk(ks, **params, count="none")
            assert none == want, (low, high, sort, limit)


async def test_a_page_the_first_window_fills_is_one_read(
    ks: Keyspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not ks.capabilities.search:
        pytest.skip("windows are index reads")
    await world(ks)
    reads: list[str] = []
    ask = listing.ask_index

    async def counted(client: Any, spec: Any, *commands: list[Any]) -> list[Any]:
        reads.append(commands[0][2])
        return await ask(client, spec, *commands)

    monkeypatch.setattr(listing, "ask_index", counted)
    params = {"timestamp_min": [LOW], "timestamp_max": [HIGH], "sort": ["-timestamp"]}
    page = await ks.list(DRIVER, parse(DRIVER, {**params, "limit": ["4"], "count": ["none"]}))
    assert len(page.items) == 4 and len(reads) == 1  # 5 rows from 07:45:00 on fill it
    reads.clear()
    page = await ks.list(DRIVER, parse(DRIVER, {**params, "limit": ["8"], "count": ["none"]}))
    assert len(page.items) == 8 and len(reads) == 2  # the second window holds 9 rows
    reads.clear()
    page = await ks.list(DRIVER, parse(DRIVER, {**params, "limit": ["12"], "count": ["none"]}))
    assert len(page.items) == 12 and len(reads) == 3
    reads.clear()
    await ks.list(DRIVER, parse(DRIVER, {**params, "limit": ["4"]}))  # a total: one read
    assert len(reads) == 1
