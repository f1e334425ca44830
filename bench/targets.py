"""Pure verdicts of issue 19's targets: each takes figures of one run and returns a Target.

Kept apart from the sections that measure so the thresholds and the wording of the
Targets table are unit-tested without a server (tests/unit/test_bench_targets.py).
"""

from __future__ import annotations

from .common import Target

FULL_N = 1_000_000  # the size the 1M targets name


def size_note(n: int, full: int = FULL_N) -> str:
    """What the detail says when a target for ``full`` documents was measured at ``n``."""
    if n >= full:
        return ""
    return f" (quick: {n / 1000:.0f}k)" if n <= 10_000 else f" (at {n:,}, not {full:,})"


def ratio_target(name: str, ratio: float, floor: float, detail: str, errors: int = 0) -> Target:
    """``ratio >= floor`` and no errors; the name carries the floor as a ratio."""
    measured = f"{ratio:.2f}x ({detail})" + (f"; errors {errors}" if errors else "")
    return Target(f"{name} >= {floor:.2f}x", ratio >= floor and errors == 0, measured)


def latency_target(
    name: str, n: int, median_ms: float, p99_ms: float, limit_ms: float, detail: str
) -> Target:
    """A list's median at ``n`` documents (the largest size of the run) under ``limit_ms``."""
    measured = f"median {median_ms:.2f} ms, p99 {p99_ms:.2f} ms; {detail}{size_note(n)}"
    return Target(f"{name} median < {limit_ms:g} ms", median_ms < limit_ms, measured)


def page_cost_target(n: int, medians: dict[int, float], tolerance: float) -> Target:
    """Per-page cost flat along a cursor walk: the last page's median within ``tolerance``
    times the first page's. ``medians`` maps page number (1-based) to its median in ms."""
    pages = sorted(medians)
    first, last = pages[0], pages[-1]
    ratio = medians[last] / medians[first] if medians[first] > 0 else float("inf")
    shown = ", ".join(f"page {p}: {medians[p]:.2f} ms" for p in pages)
    return Target(
        f"Cursor walk: page {last} costs <= {tolerance:g}x page {first} (per-page median)",
        ratio <= tolerance,
        f"{ratio:.2f}x ({shown}){size_note(n)}",
    )


def generate_target(seconds: float, docs: int, measured_1m: bool, limit_s: float) -> Target:
    """``generate`` of 1M documents under ``limit_s``, measured or projected linearly."""
    how = "measured" if measured_1m else f"projected from {docs:,} documents"
    note = "" if measured_1m else size_note(docs)
    return Target(
        f"Bulk generate: 1M documents in under {limit_s:g} s",
        seconds < limit_s,
        f"{seconds:.0f} s ({how}){note}",
    )


def flat_memory_target(
    small: tuple[int, float],
    large: tuple[int, float],
    tolerance: float,
    slack_mb: float,
    batch_docs: int,
) -> Target:
    """The generator's peak RSS growth over a run of ``large`` documents stays within
    ``tolerance`` times (plus ``slack_mb`` of allocator noise) its growth at ``small``.

    ``small`` and ``large`` are (documents, peak growth in MiB). A generator holding every
    document it wrote grows with N: ten times the documents, about ten times the growth.
    It holds ``batch_docs`` documents by design (a group of users, the batch it makes and the
    one in flight), so the comparison is judged only when the smaller run spans at least
    twice that; below it both runs grow with N."""
    (n_small, mb_small), (n_large, mb_large) = small, large
    allowed = tolerance * mb_small + slack_mb
    name = (
        f"Bulk generate: flat memory, peak RSS growth at N <= {tolerance:g}x that at N/10 "
        f"(+{slack_mb:g} MiB)"
    )
    figures = f"{mb_large:.1f} MiB at {n_large:,} vs {mb_small:.1f} MiB at {n_small:,}"
    if n_small < 2 * batch_docs:
        why = f"n/a below N/10 = {2 * batch_docs:,}: the ~{batch_docs:,} documents it holds"
        return Target(name, False, f"{why} holds both runs; {figures}", judged=False)
    return Target(
        name,
        mb_large <= allowed,
        f"{figures} (allowed {allowed:.1f} MiB){size_note(n_large)}",
    )


def spread_target(spread: float, limit: float, errors: int, detail: str) -> Target:
    """Tail: the median run's p99/p50 at most ``limit`` and no errors."""
    return Target(
        f"Tail latency: at half the peak rate, p99 <= {limit:g}x p50 and no errors",
        spread <= limit and errors == 0,
        f"median run p99/p50 {spread:.1f}x; {detail}",
    )
