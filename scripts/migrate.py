"""``migrate``, ``status`` and ``health``: the seed's manage_db verbs that had no command yet
(its other verbs are the existing commands, wired in cli.py)."""

from __future__ import annotations

import argparse
import sys

from redis.exceptions import ResponseError

from keyspace import Keyspace, search
from keyspace.capabilities import Capabilities, probe
from keyspace.connection import call
from keyspace.migrating import Outcome, migrate, read_status
from keyspace.migrations import Migration, MigrationFailed

from .args import positive_seconds
from .exits import NOT_READY, OK, PROBLEMS
from .progress import Progress


def migrate_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--to",
        type=int,
        default=None,
        metavar="VERSION",
        help="apply the pending migrations up to this version only (default: all)",
    )
    parser.add_argument(
        "--index-timeout",
        type=positive_seconds,
        default=None,
        help="seconds to wait per index build",
    )


async def run_migrate(args: argparse.Namespace, ks: Keyspace) -> int:
    """Apply the pending migrations in version order, each recorded once applied; progress
    on stderr. 0 when done, 1 when a document cannot be converted (the run stops; what was
    converted stays, and a new run resumes after it), 75 while another run holds the lock."""
    declared: tuple[Migration, ...] = args.system.migrations
    shown: dict[int, Progress] = {}

    def batches(migration: Migration, read: int) -> None:
        if migration.version not in shown:
            shown[migration.version] = Progress(f"migrate {migration.version}")
        shown[migration.version].advance(read)

    try:
        outcomes = await migrate(
            ks, declared, to=args.to, batches=batches, index_timeout=args.index_timeout
        )
    except MigrationFailed as exc:
        print(f"migrate: stopped: {exc}; fix the document (or the migration) and run again")
        return PROBLEMS
    finally:
        for progress in shown.values():
            progress.__exit__(None, None, None)
    for outcome in outcomes:
        print(_line(outcome))
    done = len(outcomes)
    print(f"migrate: {done} migration(s) applied" if done else "migrate: nothing pending")
    return OK


def _line(outcome: Outcome) -> str:
    m = outcome.migration
    what = (
        f"{outcome.converted} of {outcome.examined} documents changed"
        if m.kind == "data"
        else "index built"
    )
    return f"  {m.version} {m.collection}: {m.description} ({what})"


def status_args(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(setup=False)  # only reads the registry


async def run_status(args: argparse.Namespace, ks: Keyspace) -> int:
    """Applied migrations (time and description) and pending ones; 0 when nothing is
    pending, 1 otherwise (and for a registry entry that does not parse)."""
    found, running = await read_status(ks, args.system.migrations)
    for entry in found.applied:
        print(
            f"applied  {entry.version} {entry.collection}: {entry.description} ({entry.applied_at})"
        )
    for migration in found.pending:
        at = running.get(migration.version)
        since = f"; stopped after {at.examined} documents, resumes there" if at else ""
        print(
            f"pending  {migration.version} {migration.collection}: {migration.description}{since}"
        )
    for entry in found.unknown:
        print(f"unknown  {entry.version}: {entry.description} (recorded, not declared here)")
    for problem in found.malformed:
        print(f"malformed {problem}")
    print(
        f"status: {len(found.applied)} applied, {len(found.pending)} pending"
        + (f", {len(found.unknown)} unknown" if found.unknown else "")
    )
    return PROBLEMS if found.pending or found.malformed else OK


def health_args(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(setup=False)  # reports on the server as it is, builds nothing


async def run_health(args: argparse.Namespace, ks: Keyspace) -> int:
    """Server reachable (else the CLI's exit 1), modules present, indexes built, nothing
    pending: 0 healthy; 1 a module or an index missing, or migrations pending; 75 when the
    only thing wrong is an index still building."""
    await ks.client.ping()
    found = await probe(ks.client, ks.schema.names.probe_key())
    ks.capabilities = Capabilities(json=found.json, search=found.search)
    scan = "absent (lists use the scan path)"
    print(
        f"redis: reachable; RedisJSON {'present' if found.json else 'MISSING'}; "
        f"RediSearch {'present' if found.search else scan}"
    )
    missing, building = [], []
    if found.search:
        for spec in ks.schema.entities:
            try:
                info = search.parse_info(
                    await call(ks.client, "FT.INFO", ks.schema.names.index_alias(spec.prefix))
                )
            except ResponseError:
                missing.append(spec.collection)
                continue
            if search.is_building(info):
                building.append(spec.collection)
    total = len(ks.schema.entities) if found.search else 0
    ready = total - len(missing) - len(building)
    print(
        f"indexes: {ready} of {total} ready"
        + _named("missing", missing)
        + _named("building", building)
    )
    status, _ = await read_status(ks, args.system.migrations)
    print(f"migrations: {len(status.applied)} applied, {len(status.pending)} pending")
    if not found.json or missing or status.pending:
        print("health: unhealthy", file=sys.stderr)
        return PROBLEMS
    if building:
        print("health: indexes still building; try again shortly", file=sys.stderr)
        return NOT_READY
    print("health: ok")
    return OK


def _named(what: str, collections: list[str]) -> str:
    return f"; {what}: {', '.join(collections)}" if collections else ""
