"""What ``import-legacy`` prints and ``--report FILE`` holds: per entity, records imported,
already there, skipped (left in place with a reason) and quarantined (keyspace.quarantine)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import orjson

LISTED = 50  # skipped and quarantined keys printed; --report FILE has them all
Listed = list[dict[str, str]]  # {"entity", "key", "reason"} each


def summary(
    tallies: Mapping[str, Counter[str]], skips: Listed, quarantined: Listed, dry_run: bool
) -> str:
    lines = ["dry run: nothing written; 'imported' = would be imported"] if dry_run else []
    lines.append(f"{'':<10} {'imported':>9} {'already':>9} {'skipped':>8} {'quarantined':>12}")
    for name, t in tallies.items():
        counts = f"{t['imported']:>9} {t['already']:>9} {t['skipped']:>8}"
        lines.append(f"{name:<10} {counts} {t['quarantined']:>12}")
    if quarantined:
        lines.append(
            f"quarantined {len(quarantined)} record(s), unchanged, out of the live keys "
            "(multiframe-admin quarantine list|show|restore|drop):"
        )
        lines += _listed(quarantined)
    if skips:
        lines.append(f"skipped {len(skips)} key(s):")
        lines += _listed(skips)
    return "\n".join(lines)


def _listed(records: Listed) -> list[str]:
    lines = [f"  {r['key']}: {r['reason']}" for r in records[:LISTED]]
    if len(records) > LISTED:
        lines.append(f"  ... and {len(records) - LISTED} more (--report FILE)")
    return lines


def write_report(
    path: Path,
    tallies: Mapping[str, Counter[str]],
    skips: Listed,
    quarantined: Listed,
    dry_run: bool,
) -> None:
    counts = {name: dict(t) for name, t in tallies.items()}
    report = {"dry_run": dry_run, "counts": counts, "skipped": skips, "quarantined": quarantined}
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
