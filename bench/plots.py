"""The benchmark's plots: what every plot shares (matplotlib when installed, log-log axes,
saving into the report), and section 4's list latency against N (with the targets'
thresholds) and cost of a cursor page against its page number. Skipped with a note when
matplotlib is missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .common import Context, Report
from .lists import Timing, Walk

LISTS_PLOT = Path("bench") / "list_latency_vs_n.png"
PAGES_PLOT = Path("bench") / "cursor_page_cost.png"


def pyplot() -> Any:
    """matplotlib's pyplot for files (Agg), or None with a note when it is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  plot skipped: matplotlib is not installed (pip install -e '.[bench]')")
        return None
    return plt


def log_axes(ax: Any, xlabel: str, ylabel: str, title: str, x_margin: float) -> None:
    """Both axes logarithmic, labelled, with a light grid."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.margins(x=x_margin, y=0.3)


def save(ctx: Context, report: Report, fig: Any, plt: Any, name: Path) -> None:
    """The figure written to ``name`` under the output directory, listed in the report."""
    out = ctx.out_dir / name
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    report.plots.append(out)


def lists_vs_n(
    ctx: Context, report: Report, timings: dict[str, dict[int, Timing]], limits: dict[str, float]
) -> None:
    """Median (bar to p99) of each list at each N, its target as a dashed line."""
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(8, 5.6))
    for (name, by_n), style in zip(timings.items(), ("o-", "s-", "^-"), strict=False):
        points = sorted(by_n.items())
        xs = [n for n, _ in points]
        med = [t.median for _, t in points]
        up = [t.p99 - t.median for _, t in points]
        line = ax.errorbar(xs, med, yerr=[[0.0] * len(xs), up], fmt=style, capsize=3, label=name)
        color = line.lines[0].get_color()
        ax.axhline(limits[name], color=color, linestyle="--", linewidth=1, alpha=0.7)
        label = f"target < {limits[name]:g} ms at 1M"
        ax.annotate(label, (xs[0], limits[name]), fontsize=7, color=color)
    log_axes(
        ax,
        "drivers (N)",
        "latency, ms (median; bar to p99)",
        "Broad sorted and time-range lists as N grows (keyspace API)",
        0.3,
    )
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1)
    save(ctx, report, fig, plt, LISTS_PLOT)


def page_cost(
    ctx: Context, report: Report, walks: dict[int, Walk], what: str, tolerance: float
) -> None:
    """Median (bar to p99) of a cursor page against its page number, one line per N; the
    target (``tolerance`` times page 1 at the largest N) dashed."""
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(8, 5))
    for n, found in sorted(walks.items()):
        points = sorted(found.timings.items())
        xs = [p for p, _ in points]
        med = [t.median for _, t in points]
        up = [t.p99 - t.median for _, t in points]
        line = ax.errorbar(
            xs, med, yerr=[[0.0] * len(xs), up], fmt="o-", capsize=3, label=f"N={n:,}"
        )
    if walks:  # the last line drawn is the largest N's: its colour marks its target
        largest = walks[max(walks)].timings
        limit = tolerance * largest[min(largest)].median
        ax.axhline(limit, color=line.lines[0].get_color(), linestyle="--", linewidth=1, alpha=0.7)
        ax.annotate(f"target at N={max(walks):,}: <= {tolerance:g}x page 1", (1, limit), fontsize=7)
    log_axes(
        ax,
        "page number (followed by cursor)",
        "latency of one page, ms (median; bar to p99)",
        f"Cursor walk: cost of a page ({what})",
        0.2,
    )
    ax.legend(fontsize=8)
    save(ctx, report, fig, plt, PAGES_PLOT)
