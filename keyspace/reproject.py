"""Bring every search projection in line with its document (keyspace.projection).

Writes keep projections current; this pass is for data written before an entity was
projected (an upgrade), restored from a backup (projections are derived data, like
indexes, and are not backed up) or damaged by hand. Each fix is one commit that
re-checks the document's bytes, so a concurrent write (which writes its own
projection) is never overwritten with an older one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from . import codec
from .plan import Plan
from .projection import project, projected
from .schema import EntitySpec
from .scripts import Scripts

BATCH = 500


@dataclass
class Reprojected:
    """What one pass found: projections written (missing or stale) and orphans deleted."""

    checked: int = 0
    written: int = 0
    orphans: int = 0
    skipped: int = 0  # changed while being fixed: the concurrent write projected it

    @property
    def changed(self) -> int:
        return self.written + self.orphans


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def expected(spec: EntitySpec, raw: bytes | None) -> bytes | None:
    """The projection a stored document's bytes call for (None: no valid document)."""
    if raw is None:
        return None
    try:
        doc = codec.loads(raw)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get(spec.id_field), str):
        return None
    return codec.dumps(project(spec, doc))


async def _fix_batch(
    client: Redis, scripts: Scripts, spec: EntitySpec, ids: list[str], found: Reprojected
) -> None:
    doc_keys = [spec.names.doc_key(spec.prefix, i) for i in ids]
    shown_keys = [spec.names.projection_key(spec.prefix, i) for i in ids]
    async with client.pipeline(transaction=False) as pipe:
        for key in (*doc_keys, *shown_keys):
            # One by one (not JSON.MGET): a legacy string value must read as "no document".
            pipe.execute_command("JSON.GET", key, ".")
        replies = await pipe.execute(raise_on_error=False)
    raws = [r if isinstance(r, bytes) else None for r in replies]
    docs, shown = raws[: len(ids)], raws[len(ids) :]
    for doc_key, shown_key, raw, current in zip(doc_keys, shown_keys, docs, shown, strict=True):
        found.checked += 1
        want = expected(spec, raw)
        if want is not None and current is not None and codec.loads(current) == codec.loads(want):
            continue
        plan = Plan(spec.names.pause_key())
        if want is None:
            if current is None:
                continue
            plan.check("absent", doc_key)
            plan.write("del", shown_key)
        else:
            assert raw is not None
            plan.check("equals", doc_key, raw)
            plan.write("jset", shown_key, want)
            if spec.expiry is not None:  # a new key has no TTL: it expires with its document
                plan.write("ttlof", shown_key, plan.key(doc_key))
        # Not waited for: projections a failover loses are rewritten by the next upgrade
        # or `check --repair`, and this runs at start-up, not for a client.
        result = await scripts.commit(plan, durable=False)
        if not result.ok:
            found.skipped += 1
        elif want is None:
            found.orphans += 1
        else:
            found.written += 1


async def _ids(client: Redis, pattern: str, head: int) -> list[str]:
    seen: dict[str, None] = {}
    async for raw_key in client.scan_iter(match=pattern, count=BATCH):
        try:
            seen[_text(raw_key)[head:]] = None  # SCAN may return a key more than once
        except UnicodeDecodeError:
            continue  # no document id is such a name (check reports it, import-legacy skips it)
    return list(seen)


async def reproject(
    client: Redis,
    scripts: Scripts,
    spec: EntitySpec,
    progress: Callable[[int], None] | None = None,
) -> Reprojected:
    """Write missing or stale projections of ``spec`` and delete orphaned ones."""
    found = Reprojected()
    if not projected(spec):
        return found
    ids = await _ids(
        client, spec.names.doc_match(spec.prefix), len(spec.names.doc_key(spec.prefix, ""))
    )
    shown = await _ids(
        client,
        spec.names.projection_match(spec.prefix),
        len(spec.names.projection_key(spec.prefix, "")),
    )
    every = list(dict.fromkeys([*ids, *shown]))
    for start in range(0, len(every), BATCH):
        await _fix_batch(client, scripts, spec, every[start : start + BATCH], found)
        if progress is not None:
            progress(found.checked)
    return found
