"""Answering list queries and nearness searches: through RediSearch, or by scanning when
the module is absent.

Both paths take the same :class:`~keyspace.query.Query` and return the same
:class:`Page` for the same data (a parity test holds them to it). The scan path
reads every document of the entity (SCAN + JSON.MGET) and evaluates the query
in Python: O(documents) per page, fine for unit tests and small data sets.

Under concurrent writes a cursor walk returns every document that matched (with an unchanged
sort value) throughout the walk exactly once, never a document that does not match when it is
returned, and ends only when nothing more matches: pages and cursors follow the index hits
(or the scanned documents), and fetched documents are checked against the query again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from . import codec, pages, query, ranking, search, sparse, vectors
from .connection import call
from .errors import NotReady
from .schema import EntitySpec, FieldKind

SCAN_BATCH = 500


class TimedOut(NotReady):
    """The index took longer than the query's TIMEOUT (a server that fails such a query)."""


class IndexUnavailable(NotReady):
    """The entity's index is missing or still being built: every query of it is refused now,
    not only this one (unlike a query that timed out)."""


@dataclass(frozen=True)
class Page:
    """One page of a list: ``next_cursor`` is None on the last page; ``total`` is None when
    the query asked for no count (``count=none``)."""

    items: list[dict[str, Any]]
    total: int | None
    next_cursor: str | None

    def body(self) -> dict[str, Any]:
        """The API's JSON: ``{"items", "total", "next_cursor"}``."""
        return {"items": self.items, "total": self.total, "next_cursor": self.next_cursor}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def decode(raw: Any) -> dict[str, Any] | None:
    # fakeredis answers a missing key in JSON.MGET with "[]" rather than nil.
    if raw is None or raw in (b"[]", "[]"):
        return None
    doc = codec.loads(raw)
    return doc if isinstance(doc, dict) else None


async def _fetch(client: Redis, doc_keys: list[str]) -> list[dict[str, Any] | None]:
    """The documents under ``doc_keys``, in order; None where one is gone."""
    if not doc_keys:
        return []
    return [decode(r) for r in await call(client, "JSON.MGET", *doc_keys, ".")]


async def _fetch_paths(
    client: Redis, doc_keys: list[str], paths: Sequence[str]
) -> list[dict[str, Any] | None]:
    """Only ``paths`` of the documents under ``doc_keys``, in order; None where one is gone.
    One JSON.MGET per path (a page asks for a few paths of many documents), in one MULTI so
    every path is read of one state of each document."""
    if not doc_keys:
        return []
    async with client.pipeline(transaction=True) as pipe:
        for path in paths:
            pipe.execute_command("JSON.MGET", *doc_keys, sparse.json_path(path))
        replies = await pipe.execute()
    docs: list[dict[str, Any] | None] = []
    for i in range(len(doc_keys)):
        if all(reply[i] is None for reply in replies):
            docs.append(None)
            continue
        doc: dict[str, Any] = {}
        for path, reply in zip(paths, replies, strict=True):
            values = None if reply[i] is None else codec.loads(reply[i])
            if values:  # $-paths answer an array of matches: empty where it is absent
                sparse.put(doc, path.split("."), values[0])
        docs.append(doc)
    return docs


@dataclass(frozen=True)
class Hit:
    """One row of an index page: the id and sort value the index held when it was read."""

    doc_id: str
    value: query.Scalar


def _hits(spec: EntitySpec, q: query.Query, rows: list[Any]) -> list[Hit | None]:
    """The page rows (of :func:`pages.page_read`'s commands) in order; None for a row without
    its id or sort value (only a document written around the service's validation lacks
    them)."""
    field = query.sort_field(spec, q)
    out: list[Hit | None] = []
    for row in rows:
        found = pages.row_values(row)
        doc_id, value = found.get(spec.id_index.name), found.get(field.name)
        if doc_id is None or value is None:
            out.append(None)
            continue
        out.append(Hit(doc_id, float(value) if field.kind is FieldKind.NUMERIC else value))
    return out


def _count(reply: list[Any]) -> int:
    if len(reply) < 2:
        return 0
    fields = [_text(v) for v in reply[1]]
    return int(float(dict(zip(fields[::2], fields[1::2], strict=True)).get("n", "0")))


async def ask_index(client: Redis, spec: EntitySpec, *commands: list[Any]) -> list[Any]:
    """The replies to ``commands`` on the entity's index, in one MULTI with its FT.INFO, so
    they are refused while the index is missing or still being built."""
    return (await ask_with_info(client, spec, *commands))[1]


async def ask_with_info(
    client: Redis, spec: EntitySpec, *commands: list[Any]
) -> tuple[dict[str, Any], list[Any]]:
    """:func:`ask_index`, and the index's FT.INFO read in the same MULTI."""
    alias = spec.names.index_alias(spec.prefix)
    try:
        async with client.pipeline(transaction=True) as pipe:
            pipe.execute_command("FT.INFO", alias)
            for command in commands:
                pipe.execute_command(*command)
            raw, *replies = await pipe.execute()
    except ResponseError as exc:
        message = str(exc).lower()
        if "no such index" in message or "unknown index" in message:
            raise IndexUnavailable(f"{spec.collection} index unavailable: {exc}") from None
        if "timeout" in message:
            raise TimedOut(f"{spec.collection} query timed out: {exc}") from None
        raise
    info = search.parse_info(raw)
    if search.is_building(info):
        raise IndexUnavailable(f"the {spec.collection} index is still being built; retry shortly")
    return info, replies


async def _read_index(
    client: Redis, spec: EntitySpec, q: query.Query, bounded: bool, walk: ranking.Walk | None
) -> tuple[int | None, list[Any]]:
    """The match count (None when not asked) and the rows of one page, read in one MULTI so
    both see one state; again without shadows when the guard finds odd-marked documents.
    A page that :func:`pages.windows` applies to is tried in its windows first; one sorted by
    a ranked field, from the top of its set (keyspace.ranking) through ``walk``
    (Scripts.rank_walk), after a read of the index bounded by :data:`ranking.PROBE_MS` when
    the server is ``bounded`` (fails a query past its TIMEOUT)."""
    alias = spec.names.index_alias(spec.prefix)
    if ranking.applies(spec, q) and walk is not None:
        if bounded:  # a selective query is answered within the probe, a broad one is not
            read = pages.page_read(alias, spec, q, shadows=False)
            try:
                return None, (await ask_index(client, spec, ranking.probe(read.page)))[0][1:]
            except TimedOut:
                pass
        found = await ranking.rows(client, spec, q, ask_with_info, walk)
        if found is not None:
            return None, found
    for shadows in (True, False):
        full = pages.page_read(alias, spec, q, shadows=shadows)
        reads = [
            pages.page_read(alias, spec, w, shadows=shadows)
            for w in pages.windows(spec, q, shadows=shadows)
        ]
        for read in [*reads, full]:
            extra = [c for c in (read.count, read.guard) if c is not None]
            found, *replies = await ask_index(client, spec, read.page, *extra)
            if read.guard is not None and int(replies[-1][0]) > 0:
                break  # a time the shadows cannot answer for: the string FILTERs do
            if read is not full and len(found) - 1 <= q.limit:
                continue  # the window does not fill the page: a wider one might
            if read.total_from_page:
                return int(found[0]), found[1:]
            return (None if read.count is None else _count(replies[0])), found[1:]
    raise AssertionError("a read without shadows has no guard")


async def search_page(
    client: Redis,
    spec: EntitySpec,
    q: query.Query,
    paths: Sequence[str] | None = None,
    *,
    bounded: bool = False,
    walk: ranking.Walk | None = None,
) -> Page:
    """One page through the entity's index alias, refusing while the index is being built.
    With ``paths`` (a sparse list, keyspace.sparse) only those paths and the ones the query
    filters on are read of each document, so the server sends no more than they hold.

    Whether there is a next page and where it starts come from the index hits; a document
    deleted, or changed so that it no longer matches, between the index read and the fetch
    is left out, so a page may hold fewer than ``limit`` items and still have a next one."""
    total, found = await _read_index(client, spec, q, bounded, walk)
    rows = _hits(spec, q, found)
    page = rows[: q.limit]
    hits = [h for h in page if h is not None]
    doc_keys = [spec.names.doc_key(spec.prefix, h.doc_id) for h in hits]
    if paths is None:
        docs = await _fetch(client, doc_keys)
    else:
        docs = await _fetch_paths(client, doc_keys, sparse.read_paths(paths, q_paths(spec, q)))
    items = [d for d in docs if d is not None and query.matches(spec, q, d)]
    # A page of nothing but malformed rows cannot be continued; `check` reports those documents.
    last = hits[-1] if hits else None
    if len(rows) <= q.limit or last is None:
        return Page(items, total, None)
    return Page(items, total, query.cursor_at(spec, q, last.value, last.doc_id))


def q_paths(spec: EntitySpec, q: query.Query) -> list[str]:
    """The document paths :func:`query.matches` reads to evaluate ``q``."""
    fields = [f for f, _ in q.equals] + [f for f, _ in q.ranges]
    if q.terms is not None:
        fields += spec.text_fields
    return [f.path for f in fields]


async def scan_documents(client: Redis, spec: EntitySpec) -> list[dict[str, Any]]:
    """Every document of one entity, by SCAN (never KEYS) and batched JSON.MGET."""
    seen: set[str] = set()
    batch: list[str] = []
    docs: list[dict[str, Any] | None] = []
    async for raw_key in client.scan_iter(
        match=spec.names.doc_match(spec.prefix), count=SCAN_BATCH
    ):
        try:
            key = _text(raw_key)
        except UnicodeDecodeError:
            continue  # not a name the service writes (ids are UTF-8); check reports it
        if key in seen:
            continue  # SCAN may return a key more than once
        seen.add(key)
        batch.append(key)
        if len(batch) >= SCAN_BATCH:
            docs += await _fetch(client, batch)
            batch = []
    docs += await _fetch(client, batch)
    return [d for d in docs if d is not None]


async def scan_page(client: Redis, spec: EntitySpec, q: query.Query) -> Page:
    """One page computed in Python from every document of the entity."""
    matching = [d for d in await scan_documents(client, spec) if query.matches(spec, q, d)]
    matching.sort(key=lambda d: query.sort_key(spec, q, d), reverse=q.descending)
    after = [d for d in matching if query.after_cursor(spec, q, d)]
    items = after[: q.limit]
    cursor = query.encode_cursor(spec, q, items[-1]) if len(after) > q.limit else None
    return Page(items, len(matching) if q.counted else None, cursor)


# --- nearness searches (keyspace.vectors) ----------------------------------------------------


async def search_nearest(
    client: Redis, spec: EntitySpec, unit: Sequence[float], k: int, q: query.Query
) -> list[vectors.Scored]:
    """The ``k`` nearest ``unit`` that pass ``q``, through the entity's index: its candidates
    (one more than k, and the band past the k-th when that one falls in it), fetched, checked
    against ``q`` again and ranked exactly (keyspace.vectors)."""
    field = spec.vector_field
    assert field is not None, f"{spec.name} has no vector field"
    alias, blob = spec.names.index_alias(spec.prefix), vectors.pack(unit)
    (reply,) = await ask_index(client, spec, vectors.knn_args(alias, spec, field, q, k + 1, blob))
    found = vectors.hits(spec, reply)
    radius = vectors.crowded(found, k)
    if radius is not None:
        near = vectors.range_args(alias, spec, field, q, radius, blob, k + vectors.MARGIN)
        (reply,) = await ask_index(client, spec, near)
        found = vectors.hits(spec, reply)
    chosen = vectors.contenders(found, k)
    docs = await _fetch(client, [spec.names.doc_key(spec.prefix, h.doc_id) for h in chosen])
    passing = [d for d in docs if d is not None and query.matches(spec, q, d)]
    return vectors.rank(spec, field, unit, passing, k)


async def scan_nearest(
    client: Redis, spec: EntitySpec, unit: Sequence[float], k: int, q: query.Query
) -> list[vectors.Scored]:
    """The ``k`` nearest ``unit`` that pass ``q``, ranked from every document of the entity."""
    field = spec.vector_field
    assert field is not None, f"{spec.name} has no vector field"
    passing = [d for d in await scan_documents(client, spec) if query.matches(spec, q, d)]
    return vectors.rank(spec, field, unit, passing, k)
