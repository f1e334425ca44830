"""Answering list queries: through RediSearch, or by scanning when the module is absent.

Both paths take the same :class:`~keyspace.query.Query` and return the same
:class:`Page` for the same data (a parity test holds them to it). The scan path
reads every document of the entity (SCAN + JSON.MGET) and evaluates the query
in Python: O(documents) per page, fine for unit tests and small data sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from . import codec, keys, query, search
from .connection import call
from .errors import NotReady
from .projection import projected
from .schema import EntitySpec

SCAN_BATCH = 500


class IndexUnavailable(NotReady):
    """The entity's index is missing or still being built: every query of it is refused now,
    not only this one (unlike a query that timed out)."""


@dataclass(frozen=True)
class Page:
    """One page of a list: ``next_cursor`` is None on the last page."""

    items: list[dict[str, Any]]
    total: int
    next_cursor: str | None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode_docs(raws: list[Any]) -> list[dict[str, Any]]:
    # fakeredis answers a missing key in JSON.MGET with "[]" rather than nil.
    docs = (codec.loads(r) for r in raws if r is not None and r not in (b"[]", "[]"))
    return [d for d in docs if isinstance(d, dict)]


def _page(spec: EntitySpec, q: query.Query, rows: list[dict[str, Any]], total: int) -> Page:
    more = len(rows) > q.limit
    items = rows[: q.limit]
    cursor = query.encode_cursor(spec, q, items[-1]) if more and items else None
    return Page(items, total, cursor)


async def _mget(client: Redis, doc_keys: list[str]) -> list[dict[str, Any]]:
    if not doc_keys:
        return []
    return _decode_docs(await call(client, "JSON.MGET", *doc_keys, "."))


def _keys_of(reply: list[Any]) -> list[str]:
    out: list[str] = []
    for row in reply[1:]:
        fields = [_text(v) for v in row]
        for name, value in zip(fields[::2], fields[1::2], strict=True):
            if name == "__key":
                out.append(value)
    return out


def _count(reply: list[Any]) -> int:
    if len(reply) < 2:
        return 0
    fields = [_text(v) for v in reply[1]]
    return int(float(dict(zip(fields[::2], fields[1::2], strict=True)).get("n", "0")))


async def search_page(client: Redis, spec: EntitySpec, q: query.Query) -> Page:
    """One page through the entity's index alias, refusing while the index is being built."""
    alias = keys.index_alias(spec.prefix)
    try:
        async with client.pipeline(transaction=False) as pipe:
            pipe.execute_command("FT.INFO", alias)
            pipe.execute_command(*query.count_args(alias, spec, q))
            pipe.execute_command(*query.page_args(alias, spec, q))
            info, counted, rows = await pipe.execute()
    except ResponseError as exc:
        message = str(exc).lower()
        if "no such index" in message or "unknown index" in message:
            raise IndexUnavailable(f"{spec.collection} index unavailable: {exc}") from None
        if "timeout" in message:
            raise NotReady(f"{spec.collection} query timed out: {exc}") from None
        raise
    if search.is_building(search.parse_info(info)):
        raise IndexUnavailable(f"the {spec.collection} index is still being built; retry shortly")
    found = _keys_of(rows)
    if projected(spec):
        start = len(keys.projection_key(spec.prefix, ""))
        found = [keys.doc_key(spec.prefix, k[start:]) for k in found]
    docs = await _mget(client, found)
    return _page(spec, q, docs, _count(counted))


async def scan_documents(client: Redis, spec: EntitySpec) -> list[dict[str, Any]]:
    """Every document of one entity, by SCAN (never KEYS) and batched JSON.MGET."""
    seen: set[str] = set()
    batch: list[str] = []
    docs: list[dict[str, Any]] = []
    async for raw_key in client.scan_iter(match=keys.doc_match(spec.prefix), count=SCAN_BATCH):
        key = _text(raw_key)
        if key in seen:
            continue  # SCAN may return a key more than once
        seen.add(key)
        batch.append(key)
        if len(batch) >= SCAN_BATCH:
            docs += await _mget(client, batch)
            batch = []
    return docs + await _mget(client, batch)


async def scan_page(client: Redis, spec: EntitySpec, q: query.Query) -> Page:
    """One page computed in Python from every document of the entity."""
    matching = [d for d in await scan_documents(client, spec) if query.matches(spec, q, d)]
    matching.sort(key=lambda d: query.sort_key(spec, q, d), reverse=q.descending)
    after = [d for d in matching if query.after_cursor(spec, q, d)]
    return _page(spec, q, after[: q.limit + 1], len(matching))
