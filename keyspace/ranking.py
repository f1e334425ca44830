"""Reading a sorted page from the top of a ranked field's set (keyspace.ranks).

RediSearch visits every match of a sorted list to find its first rows. For a page sorted by
a ranked field, wanting no total, that the windows of keyspace.pages do not apply to, the
candidates are read from the field's set in the page's order instead, a chunk at a time,
and the index is asked which of them match: the page's own query with one more condition,
the chunk's ids. A chunk's matches are the first matches of the whole list among everything
from the chunk's start, so the walk stops at the first chunk that completes the page.

On a server that fails a query past its TIMEOUT the index is asked first, for
:data:`PROBE_MS`: a selective query is answered within it, as cheaply as ever, and only a
broad one, which fails it, reads the set.

The set is written in the commits that write the index's documents, but read here a moment
before the index is: a row whose sort value is not the score it was a candidate with was
written in between, and the page is read the usual way instead. So is a page the walk gives
up on: no match among the first chunk (a selective query, which the index answers cheaply),
a density of matches so low that the index would visit fewer rows than the walk still has
to, or more than :data:`MOST` candidates visited. Past the set's end a page without a range
over the field is read the usual way too, for the documents without a value in it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from redis.asyncio import Redis

from . import pages
from .query import Query, sort_field
from .schema import EntitySpec, FieldKind

FIRST = 512  # the least candidates a chunk holds: ~1 ms of the server's
PER_ROW = 20  # candidates of the first chunk per row the page asks (limit + 1), from FIRST
MOST = 8_192  # candidates visited at most: where the usual read costs less at 1M and 2% density
SPARE = 1.5  # the next chunk holds this much more than the density seen so far asks
PROBE_MS = 1  # the index's own read first, this long at most (on a server that fails it)


@dataclass(frozen=True)
class Bounds:
    """The scores a page's candidates lie within: ``first`` the end the walk starts from."""

    first: float
    last: float
    closed: bool  # the query ranges over the field: no document without a score can match


def applies(spec: EntitySpec, q: Query) -> bool:
    """Whether a page of ``q`` is read from the set first (see the module docstring)."""
    field = sort_field(spec, q)
    if not field.ranked or q.counted or field is spec.id_index:
        return False
    return not pages.windows(spec, q, shadows=True)


def bounds(spec: EntitySpec, q: Query) -> Bounds:
    """The scores ``q``'s range over its sort field, and its cursor, leave."""
    field = sort_field(spec, q)
    low, high, closed = -math.inf, math.inf, False
    for ranged, bound in q.ranges:
        if ranged is field:
            closed = True
            low = low if bound.low is None else max(low, float(bound.low))
            high = high if bound.high is None else min(high, float(bound.high))
    if q.after is not None and q.descending:
        high = min(high, float(q.after.value))
    elif q.after is not None:
        low = max(low, float(q.after.value))
    return Bounds(high, low, closed) if q.descending else Bounds(low, high, closed)


def probe(page: list[str]) -> list[str]:
    """The page command ``page`` bounded by :data:`PROBE_MS`: a selective query (most of
    those the walk would give up on) is answered within it, a broad one fails it."""
    return [*page, "TIMEOUT", str(PROBE_MS)]


def _score(value: float) -> str:
    return "+inf" if value == math.inf else "-inf" if value == -math.inf else repr(value)


async def _start(client: Redis, key: str, q: Query) -> tuple[int, int]:
    """The set's size, and how many members from the walk's first score precede the
    cursor's row: those tied with its value and ordered before it, and the row itself when
    it is still there (one round trip)."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.zcard(key)
        if q.after is not None:
            value, doc_id = float(q.after.value), q.after.doc_id
            pipe.zscore(key, doc_id)
            if q.descending:
                pipe.zrevrank(key, doc_id)
                pipe.zcount(key, f"({_score(value)}", "+inf")
            else:
                pipe.zrank(key, doc_id)
                pipe.zcount(key, "-inf", f"({_score(value)}")
        card, *cursor = await pipe.execute()
    if not cursor:
        return int(card), 0
    score, rank, before = cursor
    if score is None or float(score) != value or rank is None:
        return int(card), 0  # the row moved or went: the keyset FILTER skips what precedes it
    return int(card), int(rank) - int(before) + 1


async def _chunk(
    client: Redis, key: str, q: Query, b: Bounds, offset: int, size: int
) -> list[tuple[str, float]]:
    first, last = _score(b.first), _score(b.last)
    walk = client.zrevrangebyscore if q.descending else client.zrangebyscore
    found: list[Any] = await walk(key, first, last, start=offset, num=size, withscores=True)
    return [(m.decode() if isinstance(m, bytes) else str(m), float(s)) for m, s in found]


def _next_size(limit: int, matched: int, visited: int, card: int) -> int:
    """The next chunk's size, from the density of matches seen so far; 0 when reading the
    page the usual way is cheaper: when the candidates still to visit outnumber the matches
    the index would visit (the set's size at that density)."""
    density = matched / visited
    need = (limit + 1 - matched) / density
    if need > density * card or visited >= MOST:
        return 0
    return max(FIRST, min(MOST - visited, math.ceil(need * SPARE)))


def _consistent(spec: EntitySpec, q: Query, rows: list[Any], scores: dict[str, float]) -> bool:
    """Whether every row's sort value is the score it was a candidate with."""
    field, id_name = sort_field(spec, q), spec.id_index.name
    for row in rows:
        text = [v.decode() if isinstance(v, bytes) else str(v) for v in row]
        found = dict(zip(text[::2], text[1::2], strict=True))
        doc_id, value = found.get(id_name), found.get(field.name)
        if doc_id is None or value is None or scores.get(doc_id) != float(value):
            return False
    return True


async def rows(client: Redis, spec: EntitySpec, q: Query, ask: Any) -> list[Any] | None:
    """The first ``q.limit + 1`` rows of ``q`` (rows as :func:`pages.page_read`'s page
    command answers them), or None when the page is to be read the usual way. ``ask`` sends
    commands to the entity's index (keyspace.listing.ask_index)."""
    field = sort_field(spec, q)
    assert field.kind is FieldKind.NUMERIC
    key = spec.names.rank_key(spec.prefix, field.name)
    alias = spec.names.index_alias(spec.prefix)
    b = bounds(spec, q)
    if (b.first > b.last) if not q.descending else (b.first < b.last):
        return []
    card, offset = await _start(client, key, q)
    found: list[Any] = []
    visited, size = 0, min(MOST // 2, max(FIRST, PER_ROW * (q.limit + 1)))
    while True:
        candidates = await _chunk(client, key, q, b, offset, size)
        if not candidates:
            return found if b.closed else None
        scores = dict(candidates)
        chunk = replace(q, equals=(*q.equals, (spec.id_index, tuple(scores))))
        read = pages.page_read(alias, spec, chunk, shadows=False)
        (reply,) = await ask(client, spec, read.page)
        if not _consistent(spec, q, reply[1:], scores):
            return None
        found += reply[1:]
        if len(found) > q.limit:
            return found[: q.limit + 1]
        visited += len(candidates)
        if len(candidates) < size:
            return found if b.closed else None
        size = _next_size(q.limit, len(found), visited, card) if found else 0
        if not size:
            return None
        offset += len(candidates)
