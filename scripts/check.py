"""``check [--repair] [--json]``: find (and fix) what disagrees with the documents.

Claims, reference sets, counters and indexes must agree with the documents (scripts.inspection
finds what does not; this module is the command around it). Each repair is one
``commit.lua`` plan re-checking the exact bytes it relied on: a concurrent write makes it skip."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import asdict
from typing import Any

from redis.exceptions import ResponseError

from keyspace import Capabilities, EntitySpec, Keyspace, search, upgrade
from keyspace.capabilities import probe
from keyspace.connection import call
from keyspace.migrating import read_status
from keyspace.migrations import Migration, Status

from .args import non_negative
from .exits import NOT_READY, OK, PROBLEMS
from .inspection import indexed_share, inspect_settled, upcoming
from .repair import prune, repair
from .report import Problem, Report

WAIT_S = 300.0  # default --wait: how long check waits for indexes being built


def add_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``multiframe-admin check``."""
    parser.add_argument("--repair", action="store_true", help="fix what can be fixed safely")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--wait",
        type=non_negative,
        default=WAIT_S,
        metavar="SECONDS",
        help=f"wait this long for indexes still building, with progress ({WAIT_S:.0f}); "
        f"then exit {NOT_READY} if one still is",
    )
    parser.set_defaults(setup=False, verbose=True)  # setup() would rebuild what this checks


def validate_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``validate``: ``check``'s, and ``--verbose`` to list every problem (else
    one line per kind)."""
    add_args(parser)
    parser.add_argument("--verbose", action="store_true", help="list every problem")
    parser.set_defaults(verbose=False)


def _print(report: Report, title: str, verbose: bool = True) -> None:
    for kind, count in Counter(p.kind for p in report.problems).items():
        problems = [p for p in report.problems if p.kind == kind]
        print(f"{kind}: {count} ({sum(p.repairable for p in problems)} repairable)")
        for p in problems if verbose else ():
            print(f"  {p.key}: {p.detail}{' [repairable]' if p.repairable else ''}")
    fixable = sum(p.repairable for p in report.problems)
    found = f"{len(report.problems)} problems, {fixable} repairable" if report.problems else "clean"
    print(f"{title}: {report.documents} documents: {found}")


def _current(info: dict[str, Any], spec: EntitySpec) -> bool:
    """Whether an alias's FT.INFO names the current definition (``reindex``'s rebuilds
    included: ``<current>.<nanoseconds>``)."""
    name = info.get("index_name", b"")
    text = name.decode() if isinstance(name, bytes) else str(name)
    return text.split(".")[0] == search.current_name(spec)


async def wait_for_indexes(ks: Keyspace, seconds: float) -> None:
    """Wait up to ``seconds`` while any index behind an alias is still building (after a
    server start RediSearch rebuilds them all), or the current definition's index an alias
    is not on yet is building or, while a service's index work is alive
    (``upgrade.indexing``), still to come (a first start's or an upgrade's), printing
    progress on stderr."""
    deadline = time.monotonic() + seconds
    shown = 0.0
    while True:
        building: dict[str, str] = {}
        work = await upgrade.indexing(ks.client, ks.schema.names)
        indexing = work is not None and work.failure is None
        for spec in ks.schema.entities:
            try:
                info = search.parse_info(
                    await call(ks.client, "FT.INFO", ks.schema.names.index_alias(spec.prefix))
                )
            except ResponseError:
                info = {}  # no alias yet: a first start may be building its index
            if info and search.is_building(info):
                building[spec.collection] = indexed_share(info)
            elif not _current(info, spec) and await upcoming(ks.client, spec) is not None:
                building[spec.collection] = "its new index"
            elif not _current(info, spec) and indexing:
                building[spec.collection] = "not started"
        if not building or time.monotonic() >= deadline:
            return
        if time.monotonic() - shown >= 2.0:
            state = ", ".join(f"{name} {share}" for name, share in building.items())
            left = deadline - time.monotonic()
            print(f"check: waiting for indexes to build ({state}); up to {left:.0f}s more",
                  file=sys.stderr)  # fmt: skip
            shown = time.monotonic()
        await asyncio.sleep(0.25)


async def run(args: argparse.Namespace, ks: Keyspace) -> int:
    """``multiframe-admin check [--repair] [--json] [--wait S]``: 0 when clean (after repair),
    1 when problems were found, NOT_READY when the only thing wrong is an index still building
    after ``--wait`` seconds."""
    ks.capabilities = Capabilities(
        json=True, search=(await probe(ks.client, ks.schema.names.probe_key())).search
    )
    if ks.capabilities.search:
        await wait_for_indexes(ks, args.wait)
    report = final = await inspect_settled(ks)
    todo, fixed, pruned = sum(p.repairable for p in report.problems), 0, 0
    if args.repair and report.expired:
        pruned = await prune(ks, report)
    if args.repair and todo:
        fixed = await repair(ks, report)
        final = await inspect_settled(ks)
    found = await _registry(ks, args.system.migrations, report, final)
    out: dict[str, Any] = {"clean": report.clean, **_shown(report)}
    out["migrations"] = found.shown()
    if args.repair:
        out |= {"repaired": fixed, "after": {"clean": final.clean, **_shown(final)}}
        out |= {"pruned": pruned}
    if args.json:
        print(json.dumps(out, indent=2))
        return _status(final)
    _print(report, "check", args.verbose)
    if report.quarantined:
        print(f"quarantine: {report.quarantined} legacy records kept out of the live keys "
              "(information, no problem: multiframe-admin quarantine list)")  # fmt: skip
    print(
        f"migrations: {len(found.applied)} applied, {len(found.pending)} pending"
        + "".join(f"; {m.version} pending ({m.description})" for m in found.pending)
    )
    if args.repair and pruned:
        print(f"repair: removed {pruned} reference set members left by expired documents")
    if args.repair:
        left = todo - fixed
        why = (
            f"; {left} skipped: what each fix relies on changed since the check, or a key "
            "it needs holds something else (see below; run check again)"
            if left
            else ""
        )
        print(f"repair: fixed {fixed} of {todo} repairable problems{why}")
        _print(final, "after repair", args.verbose)
    if final.building and final.clean:
        print(
            "not yet checkable: indexes still building (" + "; ".join(final.building) + "); "
            f"run check again once they are built, or with a longer --wait (exit {NOT_READY})"
        )
    return _status(final)


async def _registry(ks: Keyspace, declared: tuple[Migration, ...], *reports: Report) -> Status:
    """The migration registry against the declarations; an entry that does not parse, or
    one this release does not declare (data of a newer release), is a problem for a person."""
    found, _ = await read_status(ks, declared)
    key = ks.schema.names.migrations_key()
    problems = [Problem("migration_registry", key, why, False) for why in found.malformed]
    problems += [
        Problem("migration_registry", key, f"version {a.version} is not declared here", False)
        for a in found.unknown
    ]
    for report in {id(r): r for r in reports}.values():  # before and after repair: maybe one
        report.problems.extend(problems)
    return found


def _shown(report: Report) -> dict[str, Any]:
    """The report as printed: what expired documents left behind is no problem, not shown."""
    out = asdict(report)
    del out["expired"]
    return out


def _status(report: Report) -> int:
    if not report.clean:
        return PROBLEMS
    return NOT_READY if report.building else OK
