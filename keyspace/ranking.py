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

Each chunk is read from one state of the set (rank_walk.lua) and continues strictly after
the previous chunk's last member (score and id), or after the page's cursor: a member
written, moved or deleted meanwhile shifts nothing, so an unchanged member is met once.
The set is written in the commits that write the index's documents, but read a moment
before the index is: a row whose sort value is not the score it was a candidate with was
written in between, and the page is read the usual way instead. So is a page whose index
holds a different number of documents than the set members, read in the same MULTI (a set
that lost members, or never had them), and a page the walk gives up on: no match among the
first chunk, a density of matches so low that the index would visit fewer rows than the walk
still has to, or more than :data:`MOST` candidates visited. Past the set's end a page
without a range over the field is read the usual way too, for the documents without a value
in it.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
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


# Scripts.rank_walk: (client, ranking key, rank_walk.lua's ARGV) -> its reply.
Walk = Callable[[Redis, str, list[Any]], Awaitable[list[Any]]]
# keyspace.listing.ask_with_info: (client, spec, *commands) -> (FT.INFO, replies).
Ask = Callable[..., Awaitable[tuple[dict[str, Any], list[Any]]]]


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


async def _chunk(
    client: Redis, walk: Walk, key: str, q: Query, b: Bounds, after: tuple[str, str], size: int
) -> tuple[list[tuple[str, float]], bool]:
    """The next ``size`` members of the walk strictly after ``after`` (score, id; empty for
    none), from one state of the set (rank_walk.lua); and whether the walk ended."""
    order = "desc" if q.descending else "asc"
    args: list[Any] = [order, _score(b.first), _score(b.last), *after, size]
    ended, *flat = await walk(client, key, args)
    ids = [m.decode() if isinstance(m, bytes) else str(m) for m in flat[::2]]
    return list(zip(ids, (float(v) for v in flat[1::2]), strict=True)), bool(int(ended))


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
        found = pages.row_values(row)
        doc_id, value = found.get(id_name), found.get(field.name)
        if doc_id is None or value is None or scores.get(doc_id) != float(value):
            return False
    return True


async def rows(client: Redis, spec: EntitySpec, q: Query, ask: Ask, walk: Walk) -> list[Any] | None:
    """The first ``q.limit + 1`` rows of ``q`` (rows as :func:`pages.page_read`'s page
    command answers them), or None when the page is to be read the usual way. ``ask``
    sends commands to the entity's index with its FT.INFO (keyspace.listing.ask_with_info),
    ``walk`` runs rank_walk.lua (Scripts.rank_walk)."""
    field = sort_field(spec, q)
    assert field.kind is FieldKind.NUMERIC
    key = spec.names.rank_key(spec.prefix, field.name)
    alias = spec.names.index_alias(spec.prefix)
    b = bounds(spec, q)
    if (b.first > b.last) if not q.descending else (b.first < b.last):
        return []
    after = ("", "") if q.after is None else (_score(float(q.after.value)), q.after.doc_id)
    found: list[Any] = []
    visited, size = 0, min(MOST // 2, max(FIRST, PER_ROW * (q.limit + 1)))
    while True:
        candidates, ended = await _chunk(client, walk, key, q, b, after, size)
        if not candidates:
            # An end is trusted once a chunk's read found the set whole: a set that lost
            # the members of the range would otherwise answer an empty page (review 27).
            return found if ended and b.closed and visited else None
        scores = dict(candidates)
        chunk = replace(q, equals=(*q.equals, (spec.id_index, tuple(scores))))
        read = pages.page_read(alias, spec, chunk, shadows=False)
        info, (reply, members) = await ask(client, spec, read.page, ["ZCARD", key])
        # One state of the index and the set: every document the index holds has its member
        # (a commit writes both), unless the set lost some (then the usual read answers).
        if int(float(info.get("num_docs", -1))) != members:
            return None
        if not _consistent(spec, q, reply[1:], scores):
            return None
        found += reply[1:]
        if len(found) > q.limit:
            return found[: q.limit + 1]
        visited += len(candidates)
        if ended:
            return found if b.closed else None
        size = _next_size(q.limit, len(found), visited, members) if found else 0
        if not size:
            return None
        last_id, last_score = candidates[-1]
        after = (_score(last_score), last_id)
