"""Bring every search projection in line with its document (keyspace.projection), and every
ranked field's set (keyspace.ranks).

Writes keep projections current; this pass is for data written before an entity was
projected (an upgrade), restored from a backup (projections are derived data, like
indexes, and are not backed up) or damaged by hand. Each fix is one commit that
re-checks the document's bytes, so a concurrent write (which writes its own
projection) is never overwritten with an older one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from . import codec, ranks
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


def document(spec: EntitySpec, raw: bytes | None) -> dict[str, Any] | None:
    """A stored document's bytes as a document of ``spec`` (None: no valid document)."""
    if raw is None:
        return None
    try:
        doc = codec.loads(raw)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get(spec.id_field), str):
        return None
    return doc


def expected(spec: EntitySpec, raw: bytes | None) -> bytes | None:
    """The projection a stored document's bytes call for (None: no valid document)."""
    doc = document(spec, raw)
    return None if doc is None else codec.dumps(project(spec, doc))


def _scores(spec: EntitySpec, doc: dict[str, Any] | None) -> list[float | None]:
    """The score ``doc`` has in each ranked field's set (keyspace.ranks), None for none."""
    out: list[float | None] = []
    for field in spec.ranked_fields:
        found = None if doc is None else ranks.score(field, doc)
        out.append(None if found is None else float(found))
    return out


async def _read(
    client: Redis, spec: EntitySpec, ids: list[str]
) -> tuple[list[bytes | None], list[bytes | None], list[list[float | None]]]:
    """Each document's bytes, its projection's, and its scores in the ranked fields' sets."""
    names = spec.names
    rank_keys = [names.rank_key(spec.prefix, f.name) for f in spec.ranked_fields]
    async with client.pipeline(transaction=False) as pipe:
        for doc_id in ids:
            # One by one (not JSON.MGET): a legacy string value must read as "no document".
            pipe.execute_command("JSON.GET", names.doc_key(spec.prefix, doc_id), ".")
            pipe.execute_command("JSON.GET", names.projection_key(spec.prefix, doc_id), ".")
            for key in rank_keys:
                pipe.zscore(key, doc_id)
        replies = await pipe.execute(raise_on_error=False)
    width = 2 + len(rank_keys)
    docs, shown, scores = [], [], []
    for n in range(len(ids)):
        row = replies[n * width : (n + 1) * width]
        docs.append(row[0] if isinstance(row[0], bytes) else None)
        shown.append(row[1] if isinstance(row[1], bytes) else None)
        scores.append([float(v) if isinstance(v, int | float) else None for v in row[2:]])
    return docs, shown, scores


async def _fix_batch(
    client: Redis, scripts: Scripts, spec: EntitySpec, ids: list[str], found: Reprojected
) -> None:
    names = spec.names
    docs, shown, scores = await _read(client, spec, ids)
    for doc_id, raw, current, ranked in zip(ids, docs, shown, scores, strict=True):
        found.checked += 1
        doc = document(spec, raw)
        want = None if doc is None else codec.dumps(project(spec, doc))
        same = want == current or (
            want is not None and current is not None and codec.loads(current) == codec.loads(want)
        )
        if same and _scores(spec, doc) == ranked:
            continue
        doc_key, shown_key = (
            names.doc_key(spec.prefix, doc_id),
            names.projection_key(spec.prefix, doc_id),
        )
        plan = Plan(names.pause_key())
        if doc is None:
            plan.check("absent", doc_key)
            plan.write("del", shown_key)
            ranks.unrank(names, plan, spec, doc_id)
        else:
            assert raw is not None and want is not None
            plan.check("equals", doc_key, raw)
            plan.write("jset", shown_key, want)
            if spec.expiry is not None:  # a new key has no TTL: it expires with its document
                plan.write("ttlof", shown_key, plan.key(doc_key))
            ranks.rank(names, plan, spec, doc_id, doc)
        # Not waited for: projections a failover loses are rewritten by the next upgrade
        # or `check --repair`, and this runs at start-up, not for a client.
        result = await scripts.commit(plan, durable=False)
        if not result.ok:
            found.skipped += 1
        elif doc is None:
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
    ranked: list[str] = []
    for field in spec.ranked_fields:
        async for member, _ in client.zscan_iter(spec.names.rank_key(spec.prefix, field.name)):
            ranked.append(_text(member))
    every = list(dict.fromkeys([*ids, *shown, *ranked]))
    for start in range(0, len(every), BATCH):
        await _fix_batch(client, scripts, spec, every[start : start + BATCH], found)
        if progress is not None:
            progress(found.checked)
    return found
