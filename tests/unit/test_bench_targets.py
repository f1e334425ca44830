"""Issue 19's benchmark targets without a server: verdicts and their wording, the time window
the time-range list asks for, the list parameters the API must accept, and the Targets
table of docs/benchmarks.md."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pytest

from bench import bulk, lists
from bench.common import Context, Report, Result, Target
from bench.dataset import TIME_SLOTS, time_window
from bench.markdown import render
from bench.targets import (
    flat_memory_target,
    generate_target,
    latency_target,
    page_cost_target,
    ratio_target,
    size_note,
    spread_target,
)
from keyspace import DRIVER, parse
from scripts.generate import World


def test_size_note_names_the_size_a_1m_target_was_measured_at() -> None:
    assert size_note(1_000_000) == ""
    assert size_note(10_000) == " (quick: 10k)"
    assert size_note(9_999) == " (quick: 10k)"
    assert size_note(100_000) == " (at 100,000, not 1,000,000)"


def test_ratio_target_needs_the_floor_and_no_errors() -> None:
    passed = ratio_target("HTTP read / one-JSON.GET handler", 1.02, 1.0, "900 / 882 req/s")
    assert passed.verdict == "PASS"
    assert passed.name == "HTTP read / one-JSON.GET handler >= 1.00x"
    assert passed.measured == "1.02x (900 / 882 req/s)"
    assert ratio_target("x", 0.54, 0.55, "d").verdict == "FAIL"
    failed = ratio_target("x", 1.5, 0.55, "d", errors=3)
    assert failed.verdict == "FAIL"
    assert failed.measured.endswith("errors 3")


def test_latency_target_is_strictly_under_and_says_quick() -> None:
    quick = latency_target("Broad sorted list at 1M:", 10_000, 9.5, 15.3, 15.0, "183 matches")
    assert quick.verdict == "PASS"
    assert quick.name == "Broad sorted list at 1M: median < 15 ms"
    assert quick.measured.endswith("183 matches (quick: 10k)")
    full = latency_target("Time-range list at 1M:", 1_000_000, 10.0, 12.0, 10.0, "9,990 matches")
    assert full.verdict == "FAIL"  # the median must be under the limit, not at it
    assert "quick" not in full.measured


def test_page_cost_target_compares_the_last_page_with_the_first() -> None:
    flat = page_cost_target(1_000_000, {1: 4.0, 10: 4.4, 100: 6.0}, 1.5)
    assert flat.verdict == "PASS"
    assert flat.name == "Cursor walk: page 100 costs <= 1.5x page 1 (per-page median)"
    assert flat.measured.startswith("1.50x (page 1: 4.00 ms, page 10: 4.40 ms")
    assert page_cost_target(1_000_000, {100: 6.1, 1: 4.0, 10: 4.0}, 1.5).verdict == "FAIL"


def test_generate_target_measured_or_projected() -> None:
    measured = generate_target(58.0, 1_000_000, True, 60.0)
    assert (measured.verdict, measured.measured) == ("PASS", "58 s (measured)")
    projected = generate_target(61.0, 9_999, False, 60.0)
    assert projected.verdict == "FAIL"
    assert projected.measured == "61 s (projected from 9,999 documents) (quick: 10k)"
    assert projected.name == "Bulk generate: 1M documents in under 60 s"


def test_flat_memory_target_catches_growth_with_n() -> None:
    flat = flat_memory_target((100_000, 60.0), (1_000_000, 95.0), 1.5, 32.0, 22_000)
    assert flat.verdict == "PASS"  # allowed 1.5 * 60 + 32 = 122
    assert "allowed 122.0 MiB" in flat.measured
    leaking = flat_memory_target((100_000, 60.0), (1_000_000, 600.0), 1.5, 32.0, 22_000)
    assert leaking.verdict == "FAIL"


def test_flat_memory_target_is_not_judged_within_one_batch() -> None:
    quick = flat_memory_target((990, 8.0), (9_999, 42.0), 1.5, 32.0, 22_000)
    assert quick.verdict == "NOT RUN"
    assert quick.measured.startswith("n/a below N/10 = 44,000")
    assert "42.0 MiB at 9,999 vs 8.0 MiB at 990" in quick.measured


def test_spread_target() -> None:
    assert spread_target(4.9, 5.0, 0, "runs").verdict == "PASS"
    assert spread_target(5.1, 5.0, 0, "runs").verdict == "FAIL"
    assert spread_target(2.0, 5.0, 1, "runs").verdict == "FAIL"
    assert spread_target(2.0, 5.0, 0, "runs").name.startswith(
        "Tail latency: at half the peak rate, p99 <= 5x p50"
    )


def test_time_window_holds_the_share_of_the_generated_times() -> None:
    low, high, share = time_window(0.01)
    assert (low, high) == ("2025-05-10T00:00:00", "2025-05-12T12:28:00")
    assert share == pytest.approx(0.01, abs=1 / TIME_SLOTS)
    world = World(11)
    drawn = [world.time() for _ in range(100_000)]
    inside = sum(low <= t <= high for t in drawn)
    # 1% of 100,000 is 1,000 +- 31 (one standard deviation): a changed generator fails here.
    assert 850 <= inside <= 1150, inside


def test_time_window_must_stay_within_the_generated_days() -> None:
    with pytest.raises(ValueError, match="leaves the generated days"):
        time_window(0.01, datetime(2025, 5, 27))
    with pytest.raises(ValueError, match="leaves the generated days"):
        time_window(0.1)  # 25.2 days from the 10th run past the 28th


def test_list_parameters_are_what_the_api_accepts() -> None:
    ranged = parse(DRIVER, lists.time_range_params())
    assert [(f.name, r.low, r.high) for f, r in ranged.ranges] == [
        ("timestamp", "2025-05-10T00:00:00", "2025-05-12T12:28:00")
    ]
    assert ranged.sort is not None and ranged.sort.name == "timestamp" and ranged.descending
    walked = parse(DRIVER, lists.WALK_PARAMS)
    assert walked.sort is lists.CORES and walked.descending and walked.limit == lists.PAGE_SIZE


def test_count_is_one_constant(monkeypatch: pytest.MonkeyPatch) -> None:
    params = {"sort": ["-cores"]}
    monkeypatch.setattr(lists, "COUNT", None)
    assert lists.timed_params(params) == params == lists.counting_params(params)
    monkeypatch.setattr(lists, "COUNT", "none")
    assert lists.timed_params(params) == {"sort": ["-cores"], "count": ["none"]}
    assert lists.counting_params(params) == {"sort": ["-cores"], "count": ["exact"]}
    assert params == {"sort": ["-cores"]}


def _driver(cores: int, doc_id: str) -> dict[str, Any]:
    return {"driver_id": doc_id, "chip_data": {"cores": cores}}


def test_the_walk_order_check() -> None:
    last = lists._in_order(None, [_driver(512, "driver_9"), _driver(512, "driver_10")])
    assert last == (512.0, "driver_10")  # ids descend as strings within a tie
    assert lists._in_order(last, [_driver(256, "driver_99")]) == (256.0, "driver_99")
    with pytest.raises(AssertionError, match="out of order"):
        lists._in_order(last, [_driver(512, "driver_11")])
    with pytest.raises(AssertionError, match="out of order"):
        lists._in_order(last, [_driver(512, "driver_10")])  # a repeat is out of order too


def test_peak_rss_keeps_the_highest_reading_between_start_and_end() -> None:
    readings = iter([100 * bulk.MIB, 130 * bulk.MIB, 190 * bulk.MIB, 120 * bulk.MIB])
    seen: list[int] = []

    def read() -> int:
        value = next(readings, 110 * bulk.MIB)
        seen.append(value)
        return value

    with bulk.PeakRss(read) as rss:
        deadline = time.monotonic() + 10
        while len(seen) < 4 and time.monotonic() < deadline:
            time.sleep(bulk.SAMPLE_S)
    assert len(seen) >= 4, "the sampling thread never ran"
    assert rss.growth_mb == 90


def test_peak_rss_sees_memory_allocated_inside() -> None:
    before = bulk.rss_bytes()
    if before is None:
        pytest.skip("no /proc/self/statm here")
    probe = bytearray(64 * bulk.MIB)
    probe[::4096] = b"\x01" * len(probe[::4096])
    shown = (bulk.rss_bytes() or 0) - before
    del probe
    if shown < 48 * bulk.MIB:
        # Seen on a CI machine: its kernel's statm did not count 64 MiB just written.
        pytest.skip(f"this kernel's statm showed {shown / bulk.MIB:.1f} MiB of 64 written")
    with bulk.PeakRss() as rss:
        block = bytearray(64 * bulk.MIB)  # zero-filled pages: resident once written
        block[::4096] = b"\x01" * len(block[::4096])
        # Held until the sampling thread has seen it (a loaded machine delays the thread).
        deadline = time.monotonic() + 5
        while (rss.peak or 0) - (rss.start or 0) < 48 * bulk.MIB:
            if time.monotonic() > deadline:
                break
            time.sleep(bulk.SAMPLE_S)
        del block
    assert rss.growth_mb is not None and rss.growth_mb >= 48


def test_markdown_lists_every_target_with_its_verdict(tmp_path: Path) -> None:
    ctx = Context("redis://x", cast(Any, None), cast(Any, None), [10_000], 5, tmp_path, True)
    report = Report(
        results=[Result("4. Scale", "keyspace list: a|b, N=10000", 9.5, "ms", 15.3, "183")],
        targets=[
            latency_target("Broad sorted list at 1M:", 10_000, 9.5, 15.3, 15.0, "183 matches"),
            Target("Bulk generate: flat memory", False, "n/a | one batch", judged=False),
        ],
    )
    text = render(ctx, report, {"date": "today"}, [], [])
    assert (
        "| Broad sorted list at 1M: median < 15 ms | **PASS** | median 9.50 ms, p99 15.30 ms; "
        "183 matches (quick: 10k) |" in text
    )
    assert "| Bulk generate: flat memory | **NOT RUN** | n/a \\| one batch |" in text
    assert "| keyspace list: a\\|b, N=10000 | 9.50 | 15.30 | ms | 183 |" in text
