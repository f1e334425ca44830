"""The index commands of one list page (keyspace.pages) and a time's numeric shadow
(keyspace.projection): pure, no server."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from keyspace import codec
from keyspace.errors import ValidationFailed
from keyspace.pages import page_read, windows
from keyspace.projection import project, shadow
from keyspace.query import compile_search, encode_cursor, parse
from keyspace.systems.multiframe.entities import DRIVER, NFT

TAIL = ["SORTBY", "4", "@cores", "DESC", "@driver_id", "DESC", "MAX", "51", "DIALECT", "2"]
BROAD = {"chip_type": ["quantum_processor"], "cores_min": ["256"], "sort": ["-cores"]}
WHERE = "@chip_type:{quantum_processor} @cores:[256 +inf]"


def doc(driver_id: str, cores: int, stamp: str = "2025-05-02T10:00:00") -> dict[str, object]:
    return {
        "driver_id": driver_id,
        "user_id": "user_1",
        "chip_id": "chip_1",
        "chip_data": {"type": "quantum_processor", "cores": cores, "frequency": "4.5GHz"},
        "status": "generated",
        "version": "1.0",
        "timestamp": stamp,
    }


def test_count_is_exact_by_default_none_on_request_and_nothing_else() -> None:
    assert parse(DRIVER, {}).counted
    assert parse(DRIVER, {"count": ["exact"]}).counted
    assert not parse(DRIVER, {"count": ["none"]}).counted
    for bad in (["all"], ["none", "exact"], [""]):
        with pytest.raises(ValidationFailed, match="count"):
            parse(DRIVER, {"count": bad})


def test_a_first_page_without_filter_counts_itself() -> None:
    read = page_read("idx", DRIVER, parse(DRIVER, BROAD), shadows=True)
    assert read.page == ["FT.AGGREGATE", "idx", WHERE, "VERBATIM", *TAIL]
    assert read.total_from_page and read.count is None and read.guard is None
    none = page_read("idx", DRIVER, parse(DRIVER, {**BROAD, "count": ["none"]}), shadows=True)
    assert none.page == read.page and not none.total_from_page and none.count is None


def test_a_cursor_page_narrows_the_sort_fields_range_and_filters_the_ties() -> None:
    token = encode_cursor(DRIVER, parse(DRIVER, BROAD), doc("driver_7", 512))
    read = page_read("idx", DRIVER, parse(DRIVER, {**BROAD, "cursor": [token]}), shadows=True)
    narrowed = "@chip_type:{quantum_processor} @cores:[256 512]"
    keyset = "exists(@cores) && (@cores < 512 || (@cores == 512 && @driver_id < 'driver_7'))"
    assert read.page == ["FT.AGGREGATE", "idx", narrowed, "VERBATIM", "FILTER", keyset, *TAIL]
    # The total is every match's, so it is counted apart, without the cursor.
    assert read.count is not None and read.count[2] == WHERE and "FILTER" not in read.count
    unranged = {"sort": ["-cores"]}
    token = encode_cursor(DRIVER, parse(DRIVER, unranged), doc("driver_7", 512))
    read = page_read("idx", DRIVER, parse(DRIVER, {**unranged, "cursor": [token]}), shadows=True)
    assert read.page[2:6] == ["*", "VERBATIM", "FILTER", keyset]  # no range clause added


def test_a_stale_cursor_never_widens_the_range() -> None:
    capped = {**BROAD, "cores_max": ["1024"]}
    token = encode_cursor(DRIVER, parse(DRIVER, capped), doc("driver_7", 4096))
    read = page_read("idx", DRIVER, parse(DRIVER, {**capped, "cursor": [token]}), shadows=True)
    assert read.page[2] == "@chip_type:{quantum_processor} @cores:[256 1024]"


def test_a_time_range_is_a_shadow_range_with_a_guard_or_the_string_filters() -> None:
    params = {"timestamp_min": ["2025-05-01"], "timestamp_max": ["2025-05-03T12:00:00.5"]}
    q = parse(DRIVER, {**params, "sort": ["-timestamp"]})
    read = page_read("idx", DRIVER, q, shadows=True)
    low, high = shadow("2025-05-01T00:00:00"), shadow("2025-05-03T12:00:00.500000")
    assert read.page[2:4] == [f"@_us_timestamp:[{low} {high}]", "VERBATIM"]
    assert read.total_from_page
    assert read.guard == [
        *["FT.SEARCH", "idx", "@_odd_timestamp:{1}", "NOCONTENT", "LIMIT", "0", "0"],
        *["DIALECT", "2"],
    ]
    plain = page_read("idx", DRIVER, q, shadows=False)
    assert plain.guard is None and not plain.total_from_page and plain.count is not None
    assert plain.page[2:8] == [
        *["*", "VERBATIM", "FILTER", "exists(@timestamp) && @timestamp >= '2025-05-01T00:00:00'"],
        *["FILTER", "exists(@timestamp) && @timestamp <= '2025-05-03T12:00:00.500000'"],
    ]
    token = encode_cursor(DRIVER, q, doc("driver_3", 64, "2025-05-02T10:00:00"))
    walked = page_read(
        "idx",
        DRIVER,
        parse(DRIVER, {**params, "sort": ["-timestamp"], "cursor": [token]}),
        shadows=True,
    )
    assert walked.page[2] == f"@_us_timestamp:[{low} {shadow('2025-05-02T10:00:00')}]"


def test_the_shadow_orders_exactly_as_the_stored_text() -> None:
    rng = random.Random(19)
    start = datetime(1700, 1, 1)
    stamps = []
    for _ in range(2000):
        moment = start + timedelta(microseconds=rng.randrange(0, 550 * 365 * 86400 * 10**6))
        if rng.random() < 0.5:
            moment = moment.replace(microsecond=0)
        stamps.append(codec.normalize_iso(moment.isoformat()))
    stamps += [stamps[0], "2025-05-01T00:00:00", "2025-05-01T00:00:00.000001"]
    shadows = [shadow(s) for s in stamps]
    assert all(isinstance(s, int) for s in shadows)
    assert sorted(stamps) == [s for _, s in sorted(zip(shadows, stamps, strict=True))]
    assert shadow("1970-01-01T00:00:01") == 1_000_000


@pytest.mark.parametrize(
    "odd",
    [
        "2025-05-01T00:00:00.000",  # not what normalize_iso makes of it
        "2025-05-01 00:00:00",
        "2025-05-01T00:00:00Z",
        "2025-05-01",
        "yesterday",
        17,
    ],
)
def test_a_value_without_a_shadow_is_marked_odd(odd: object) -> None:
    assert shadow(odd) is None
    shown = project(DRIVER, {**doc("driver_1", 64), "timestamp": odd})
    assert shown["_odd_timestamp"] == "1" and "_us_timestamp" not in shown
    assert shown["timestamp"] == odd  # the text the fallback's FILTER compares


@pytest.mark.parametrize(
    "far", ["2300-01-01T00:00:00", "9999-12-31T23:59:59", "1600-06-01T00:00:00"]
)
def test_a_valid_far_date_has_a_shadow_not_an_odd_mark(far: str) -> None:
    """Review 19b: one such document sent every time range of its entity to the FILTERs."""
    shown = project(DRIVER, {**doc("driver_1", 64), "timestamp": far})
    assert "_odd_timestamp" not in shown and shown["_us_timestamp"] == shadow(far)


def test_a_bound_past_the_exact_years_is_compared_as_text() -> None:
    near = parse(DRIVER, {"timestamp_min": ["2025-01-01T00:00:00"]})
    far = parse(DRIVER, {"timestamp_min": ["2300-01-01T00:00:00.000001"]})
    assert "_us_timestamp" in compile_search(DRIVER, near, shadows=True)[0]
    text, filters = compile_search(DRIVER, far, shadows=True)
    assert "_us_timestamp" not in text and filters


def test_a_projection_holds_the_shadow_and_entities_without_time_none() -> None:
    shown = project(DRIVER, doc("driver_1", 64, "2025-05-02T10:00:00"))
    assert shown["_us_timestamp"] == shadow("2025-05-02T10:00:00") and "_odd_timestamp" not in shown
    assert list(shown)[:2] == ["driver_id", "user_id"]
    assert not any(k.startswith("_") for k in project(NFT, {"nft_id": "n", "user_id": "u"}))


def _window_ranges(
    params: dict[str, list[str]], shadows: bool = True
) -> list[tuple[object, object]]:
    query = parse(DRIVER, {**params, "count": ["none"]})
    return [
        (w.ranges[0][1].low, w.ranges[0][1].high) for w in windows(DRIVER, query, shadows=shadows)
    ]


def test_windows_are_the_top_of_a_bounded_sort_range_newest_first_and_oldest_first() -> None:
    day = {"timestamp_min": ["2025-05-01T00:00:00"], "timestamp_max": ["2025-05-01T08:00:00"]}
    assert _window_ranges({**day, "sort": ["-timestamp"]}) == [
        ("2025-05-01T07:45:00", "2025-05-01T08:00:00"),
        ("2025-05-01T06:00:00", "2025-05-01T08:00:00"),
    ]
    assert _window_ranges({**day, "sort": ["timestamp"]}) == [
        ("2025-05-01T00:00:00", "2025-05-01T00:15:00"),
        ("2025-05-01T00:00:00", "2025-05-01T02:00:00"),
    ]
    cores = {"cores_min": ["0"], "cores_max": ["3200"], "sort": ["-cores"]}
    assert _window_ranges(cores) == [(3100.0, 3200), (2400.0, 3200)]


def test_a_window_cut_is_whole_microseconds_inside_the_range() -> None:
    tiny = {
        "timestamp_min": ["2025-05-01T00:00:00"],
        "timestamp_max": ["2025-05-01T00:00:00.000003"],
    }
    for low, high in _window_ranges({**tiny, "sort": ["-timestamp"]}):
        assert "2025-05-01T00:00:00" <= str(low) <= str(high) == "2025-05-01T00:00:00.000003"
        assert codec.normalize_iso(str(low)) == low


def test_windows_follow_a_cursor_and_keep_it() -> None:
    params = {"cores_min": ["0"], "cores_max": ["3200"], "sort": ["-cores"], "count": ["none"]}
    token = encode_cursor(DRIVER, parse(DRIVER, params), doc("driver_7", 1600))
    query = parse(DRIVER, {**params, "cursor": [token]})
    found = windows(DRIVER, query, shadows=True)
    assert [(w.ranges[0][1].low, w.ranges[0][1].high) for w in found] == [
        (1550.0, 1600),
        (1200.0, 1600),
    ]
    assert all(w.after == query.after for w in found)


def test_no_windows_where_they_could_cost_more_than_they_save() -> None:
    ranged = {"cores_min": ["0"], "cores_max": ["3200"], "sort": ["-cores"]}
    assert windows(DRIVER, parse(DRIVER, ranged), shadows=True) == []  # a total is asked
    assert _window_ranges({**ranged, "status": ["optimized"]}) == []  # another condition
    assert _window_ranges({**ranged, "version": ["2.1.0"]}) == []  # an equality
    assert _window_ranges({"cores_min": ["0"], "sort": ["-cores"]}) == []  # unbounded
    assert _window_ranges({**ranged, "sort": ["-timestamp"]}) == []  # not the sort field
    assert _window_ranges({"cores_min": ["5"], "cores_max": ["5"], "sort": ["cores"]}) == []
    times = {"timestamp_min": ["2025-05-01T00:00:00"], "timestamp_max": ["2025-05-02T00:00:00"]}
    assert _window_ranges({**times, "sort": ["-timestamp"]}, shadows=False) == []  # FILTERs
    far = {"timestamp_min": ["2025-05-01T00:00:00"], "timestamp_max": ["2300-01-01T00:00:00"]}
    assert _window_ranges({**far, "sort": ["-timestamp"]}) == []  # past the exact shadows
