"""Running a system's pending migrations (keyspace.migrations) beside the live service.

One run at a time: it holds ``mf:lock:migrate`` (keyspace.exclusive), and index builds also
``mf:lock:reindex``, so a second run, or a reindex meanwhile, is refused (Held). A data
migration SCANs its collection's keys (never KEYS) from the resume point in its progress
hash; each batch is one commit.lua plan that checks every document it changes is still
exactly the bytes read (``equals``), writes the migrated documents as any update does and
writes the new resume point: a batch and its record are applied together or not at all.
A document a client wrote meanwhile fails its check; it is read again and converted from
what the client wrote, so no API write is overwritten. Once the pass is complete, the
collection's index is brought to its current definition (as start-up and reindex do) and
the migration is recorded in the registry in the commit that drops its resume point.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import codec, search, upgrade
from .codec import now_iso
from .errors import Contention
from .exclusive import RENEW_S, AdminLock, settled
from .migrations import (
    Applied,
    Migration,
    MigrationFailed,
    Progress,
    Status,
    converted,
    parse_progress,
    plan_batch,
    plan_record,
    status,
    to_run,
)
from .plan import Loaded
from .schema import EntitySpec

if TYPE_CHECKING:  # the engine imports nothing of this module; no cycle at run time
    from .engine import Keyspace

BATCH = 200
STALE_TRIES = 100  # re-reads of one batch's changed documents before giving up (Contention)
Batches = Callable[[Migration, int], None]  # after each batch: the migration, documents read


@dataclass
class Outcome:
    """What one run did to one migration."""

    migration: Migration
    examined: int = 0
    converted: int = 0
    applied: bool = False


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def read_status(
    ks: Keyspace, migrations: Sequence[Migration]
) -> tuple[Status, dict[int, Progress]]:
    """The registry against ``migrations``, and the resume point of every pending data
    migration that has one (a run in progress, or one that stopped)."""
    names = ks.schema.names
    raw = await ks.client.hgetall(names.migrations_key())
    found = status(migrations, {_text(k): _text(v) for k, v in raw.items()})
    running: dict[int, Progress] = {}
    for migration in found.pending:
        stored = await ks.client.hgetall(names.migration_progress_key(migration.version))
        at = parse_progress({_text(k): _text(v) for k, v in stored.items()})
        if at is not None:
            running[migration.version] = at
    return found, running


@contextlib.asynccontextmanager
async def holding(ks: Keyspace, name: str) -> AsyncIterator[AdminLock]:
    """Hold the admin lock ``name`` (Held when another process does), renewed in the
    background while the body runs; released at the end, even on Ctrl-C."""
    lock = AdminLock(ks, name)
    await lock.take()

    async def keep() -> None:
        while True:
            await asyncio.sleep(RENEW_S / 2)
            if not await lock.renew():
                return

    keeper = asyncio.create_task(keep())
    try:
        yield lock
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await keeper
        await settled(lock.release)


async def migrate(
    ks: Keyspace,
    migrations: Sequence[Migration],
    *,
    to: int | None = None,
    batches: Batches | None = None,
    index_timeout: float | None = None,
) -> list[Outcome]:
    """Apply the pending migrations up to version ``to`` (None: all) in version order,
    each recorded once applied. Held when another run holds the lock; MigrationFailed for a
    document that cannot be converted (what was converted stays, with its resume point)."""
    async with holding(ks, "migrate"):
        found, _ = await read_status(ks, migrations)
        outcomes = []
        for migration in to_run(found.pending, to):
            outcomes.append(await _apply(ks, migration, batches, index_timeout))
        return outcomes


def _spec(ks: Keyspace, migration: Migration) -> EntitySpec:
    return next(s for s in ks.schema.entities if s.collection == migration.collection)


async def _apply(
    ks: Keyspace, migration: Migration, batches: Batches | None, index_timeout: float | None
) -> Outcome:
    spec, names = _spec(ks, migration), ks.schema.names
    progress_key = names.migration_progress_key(migration.version)
    outcome = Outcome(migration)
    if migration.change is not None:
        stored = await ks.client.hgetall(progress_key)
        at = parse_progress({_text(k): _text(v) for k, v in stored.items()}) or Progress()
        while not at.scanned:
            at = await _pass_batch(ks, migration, spec, progress_key, at)
            if batches is not None:
                batches(migration, at.examined - outcome.examined)
            outcome.examined = at.examined
        outcome.examined, outcome.converted = at.examined, at.converted
    if ks.capabilities.search and not await search.is_current(ks.client, spec):
        async with holding(ks, "reindex"):
            await upgrade.upgrade(ks.client, ks.scripts, spec, timeout=index_timeout)
    entry = Applied(
        migration.version,
        migration.description,
        migration.collection,
        migration.kind,
        now_iso(),
        outcome.converted,
    )
    result = await ks.commit(plan_record(names, entry, progress_key))
    if not result.ok:  # the plan has no checks: only a wrong-typed key refuses it
        raise MigrationFailed(f"cannot record migration {migration.version}: {result.error}")
    outcome.applied = True
    return outcome


async def _pass_batch(
    ks: Keyspace, migration: Migration, spec: EntitySpec, progress_key: str, at: Progress
) -> Progress:
    """Convert one SCAN batch after ``at`` and commit it with the next resume point."""
    cursor, found = await ks.client.scan(
        at.cursor, match=ks.schema.names.doc_match(spec.prefix), count=BATCH
    )
    found_keys: list[str] = []
    for raw_key in dict.fromkeys(found):  # SCAN may repeat a key, also within one reply
        with contextlib.suppress(UnicodeDecodeError):  # no document's key (check reports it)
            found_keys.append(_text(raw_key))
    loaded = await _read(ks, spec, found_keys)
    changes = {old.key: (old, new) for old in loaded if (new := converted(migration, old))}
    after = Progress(
        cursor=int(cursor),
        examined=at.examined + len(loaded),
        converted=at.converted,
        scanned=int(cursor) == 0,
    )
    for _ in range(STALE_TRIES):
        after = Progress(after.cursor, after.examined, at.converted + len(changes), after.scanned)
        result = await ks.commit(plan_batch(ks.schema, list(changes.values()), progress_key, after))
        if result.ok:
            return after
        if result.error not in ("stale", "not_found") or result.value not in changes:
            what = f"{result.error} {result.field} {result.value}".strip()
            raise MigrationFailed(f"migration {migration.version}: a batch was refused ({what})")
        # A client wrote (or deleted) it since it was read: convert what is there now.
        del changes[result.value]
        for again in await _read(ks, spec, [result.value]):
            if (new := converted(migration, again)) is not None:
                changes[again.key] = (again, new)
    raise Contention(f"migration {migration.version}: documents kept changing; run it again")


async def _read(ks: Keyspace, spec: EntitySpec, found_keys: Sequence[str]) -> list[Loaded]:
    """The JSON documents among ``found_keys`` as read now (gone or other types left out)."""
    if not found_keys:
        return []
    async with ks.client.pipeline(transaction=False) as pipe:
        for key in found_keys:
            pipe.execute_command("JSON.GET", key, ".")
        replies = await pipe.execute(raise_on_error=False)
    out = []
    for key, raw in zip(found_keys, replies, strict=True):
        if not isinstance(raw, bytes):
            continue  # deleted since the SCAN, or a legacy string value (import-legacy's)
        doc = codec.loads(raw)
        doc_id = ks.schema.names.id_from_key(spec.prefix, key)
        if isinstance(doc, dict) and doc.get(spec.id_field) == doc_id:
            out.append(Loaded(spec, doc_id, raw, doc, key))
    return out
