"""The list query shapes of issue 19 (keyspace.pages): count=none, a time range through its
numeric shadow, keyset cursors narrowing a range on the sort field. Every answer is the
scan path's, to the microsecond and the tie."""

from __future__ import annotations

from typing import Any

from keyspace import DRIVER, Keyspace, keys, parse
from keyspace.connection import call
from keyspace.listing import Page
from tests import factories as f


async def listed(ks: Keyspace, **params: str) -> Page:
    return await ks.list(DRIVER, parse(DRIVER, {k: [v] for k, v in params.items()}))


async def walk(ks: Keyspace, **params: str) -> tuple[list[str], list[int | None]]:
    """Every id a cursor walk returns, and each page's total."""
    seen: list[str] = []
    totals: list[int | None] = []
    cursor: str | None = None
    while True:
        page = await listed(ks, **params, **({"cursor": cursor} if cursor else {}))
        seen += [d["driver_id"] for d in page.items]
        totals.append(page.total)
        cursor = page.next_cursor
        if cursor is None:
            return seen, totals


async def tied_world(ks: Keyspace) -> list[dict[str, Any]]:
    await f.user(ks, "A")
    made = []
    for i in range(14):  # ids driver_1 .. driver_14: text order puts driver_10 before driver_2
        stored = await f.driver(
            ks,
            "user_1",
            cores=[64, 256, 512][i % 3],
            timestamp=f"2025-05-0{1 + i % 3}T10:00:00",
        )
        made.append(stored.doc)
    return made


def by_cores(docs: list[dict[str, Any]], low: int, high: int, descending: bool) -> list[str]:
    kept = [d for d in docs if low <= d["chip_data"]["cores"] <= high]
    kept.sort(key=lambda d: (d["chip_data"]["cores"], d["driver_id"]), reverse=descending)
    return [d["driver_id"] for d in kept]


async def test_count_none_pages_like_exact_without_a_total(ks: Keyspace) -> None:
    docs = await tied_world(ks)
    expected = by_cores(docs, 256, 512, descending=True)
    exact, totals = await walk(ks, cores_min="256", sort="-cores", limit="3")
    assert len(expected) == 9
    assert exact == expected and totals == [9, 9, 9]
    none, totals = await walk(ks, cores_min="256", sort="-cores", limit="3", count="none")
    assert none == expected and totals == [None, None, None]
    assert (await listed(ks, count="none")).body()["total"] is None


async def test_cursor_walks_keep_ties_in_id_order_through_a_narrowed_range(ks: Keyspace) -> None:
    docs = await tied_world(ks)
    for descending in (True, False):
        sort = "-cores" if descending else "cores"
        for low, high in ((0, 10_000), (256, 10_000), (64, 256), (256, 256)):
            got, _ = await walk(ks, cores_min=str(low), cores_max=str(high), sort=sort, limit="2")
            assert got == by_cores(docs, low, high, descending), (sort, low, high)
        got, _ = await walk(ks, sort=sort, limit="4")  # no range to narrow: the FILTER alone
        assert got == by_cores(docs, 0, 10_000, descending)


async def test_time_range_bounds_are_inclusive_to_the_microsecond(ks: Keyspace) -> None:
    await f.user(ks, "A")
    stamps = [
        "2025-05-01T00:00:00",
        "2025-05-01T00:00:00.000001",
        "2025-05-02T12:00:00",
        "2025-05-03T11:59:59",
        "2025-05-03T11:59:59.000001",
        "2025-05-02T12:00:00",  # a tie with driver_3
    ]
    for stamp in stamps:
        await f.driver(ks, "user_1", timestamp=stamp)
    window = {"timestamp_min": "2025-05-01T00:00:00.000001", "timestamp_max": "2025-05-03T11:59:59"}
    page = await listed(ks, **window, sort="-timestamp")
    assert [d["driver_id"] for d in page.items] == ["driver_4", "driver_6", "driver_3", "driver_2"]
    assert page.total == 4
    got, totals = await walk(ks, **window, sort="timestamp", limit="1")
    assert got == ["driver_2", "driver_3", "driver_6", "driver_4"] and totals == [4] * 4
    # An aware bound is the same instant in UTC: 02:00+02:00 is the first stamp exactly.
    aware = await listed(ks, timestamp_max="2025-05-01T02:00:00+02:00", sort="timestamp")
    assert [d["driver_id"] for d in aware.items] == ["driver_1"]
    only_min = await listed(ks, timestamp_min="2025-05-03T11:59:59.000001", count="none")
    assert [d["driver_id"] for d in only_min.items] == ["driver_5"]


async def test_a_timestamp_written_around_the_service_lists_through_the_fallback(
    ks: Keyspace,
) -> None:
    await f.user(ks, "A")
    for day in (1, 2, 3):
        await f.driver(ks, "user_1", timestamp=f"2025-05-0{day}T10:00:00")
    # Not the stored form (that is 2025-05-02T23:00:00): no shadow but an odd mark, and the
    # index compares its text, as the scan path does.
    key = keys.doc_key(DRIVER.prefix, "driver_2")
    await call(ks.client, "JSON.SET", key, "$.timestamp", '"2025-05-02T23:00:00.000"')
    await ks.reproject(DRIVER)  # what repair and every upgrade do for such a document
    window = {"timestamp_min": "2025-05-02T00:00:00", "timestamp_max": "2025-05-03T10:00:00"}
    page = await listed(ks, **window, sort="timestamp")
    assert [d["driver_id"] for d in page.items] == ["driver_2", "driver_3"]
    assert page.total == 2
    got, _ = await walk(ks, sort="-timestamp", limit="1")
    assert got == ["driver_3", "driver_2", "driver_1"]
    got, _ = await walk(ks, timestamp_min="2025-05-01T00:00:00", sort="-timestamp", limit="1")
    assert got == ["driver_3", "driver_2", "driver_1"]


async def test_far_dates_list_exactly_and_keep_shadows(ks: Keyspace) -> None:
    """Review 19b: a valid far date (2300) got an odd mark, and every time range of its
    entity fell back to the FILTERs; far bounds must still select exactly."""
    await f.user(ks, "A")
    stamps = ["2025-05-01T10:00:00", "2300-01-01T00:00:00", "2300-01-01T00:00:00.000001"]
    for stamp in stamps:
        await f.driver(ks, "user_1", timestamp=stamp)
    near = await listed(ks, timestamp_min="2025-01-01T00:00:00", sort="timestamp")
    assert [d["driver_id"] for d in near.items] == ["driver_1", "driver_2", "driver_3"]
    far = await listed(ks, timestamp_min="2300-01-01T00:00:00.000001", sort="timestamp")
    assert [d["driver_id"] for d in far.items] == ["driver_3"]
    before = await listed(ks, timestamp_max="2300-01-01T00:00:00", sort="-timestamp")
    assert [d["driver_id"] for d in before.items] == ["driver_2", "driver_1"]
    # No odd mark: the shadows answer, with no fallback read.
    shown = await call(ks.client, "JSON.GET", keys.projection_key(DRIVER.prefix, "driver_2"), ".")
    assert b"_us_timestamp" in shown and b"_odd_" not in shown
