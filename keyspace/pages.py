"""The index commands that read one list page (keyspace.listing): pure, no I/O.

A page is one FT.AGGREGATE sorted by (sort field, id) and cut at ``limit + 1`` rows, so
RediSearch keeps a heap of the page only. Three things keep its cost at what the first page
of the query costs, whatever the page:

- The total is asked only when wanted (``count=exact``, the default). A page without
  FILTER and without a cursor counts its matches itself (an aggregation's total is what its
  index iterator yielded), so a first page is one pass over the matches, not two.
- A keyset cursor is one FILTER on the sortable values the rows carry anyway (value, then
  id), plus, when the query ranges over the sort field, that range narrowed to the cursor's
  value. It adds no range clause of its own: intersecting the matches with a second numeric
  range (``@cores:[-inf 512]``, most of the index) cost more than the page itself.
- A time range is a numeric range on the field's shadow (keyspace.projection) rather than
  a string FILTER evaluated on every candidate. The shadow is exact only for documents
  without an odd mark, so the page's commands come with a guard counting the marked ones
  (a tiny posting list) in the same MULTI; when the guard finds any, the caller reads the
  page again with ``shadows=False``: the string FILTERs of before, exact for every value.

A page without a total whose only condition is a range over its sort field (the newest of a
time window, the largest of a number range) is read in windows first (:func:`windows`): the
top thirty-second of the range, then the top quarter, then all of it, stopping at the first
read that fills the page. A window holds every match from its edge to the range's top, so a
full page from it is the range's own first page, ties included; RediSearch's cost follows
the rows a read visits, so the newest 1% of a million documents costs what ~300 of them do.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from .projection import ODD, exact, micros_time, shadow, shadowed
from .query import Query, Range, Scalar, compile_search, literal, number, sort_field
from .schema import EntitySpec, FieldKind, Indexed

DIALECT = ["DIALECT", "2"]


@dataclass(frozen=True)
class PageRead:
    """The commands of one page: ``page`` its rows, ``count`` a separate count (None: counted
    by ``page`` itself when ``total_from_page``, else not at all), ``guard`` counting the
    odd-marked documents the shadows cannot answer for (None: no shadow used)."""

    page: list[str]
    count: list[str] | None
    total_from_page: bool
    guard: list[str] | None


def row_values(row: Any) -> dict[str, str]:
    """One row of a page command's reply (attribute, value, ...) as text by attribute."""
    text = [v.decode() if isinstance(v, bytes) else str(v) for v in row]
    return dict(zip(text[::2], text[1::2], strict=True))


def _command(index: str, text: str, filters: list[str], tail: list[str]) -> list[str]:
    args = ["FT.AGGREGATE", index, text, "VERBATIM"]
    for expr in filters:
        args += ["FILTER", expr]
    return [*args, *tail]


def _sort_tail(spec: EntitySpec, query: Query) -> list[str]:
    field, id_field = sort_field(spec, query), spec.id_index
    order = "DESC" if query.descending else "ASC"
    by = [f"@{field.name}", order]
    if field is not id_field:
        by += [f"@{id_field.name}", order]
    return ["SORTBY", str(len(by)), *by, "MAX", str(query.limit + 1), *DIALECT]


def _narrowed(spec: EntitySpec, query: Query, shadows: bool) -> Query:
    """``query`` with its range over the sort field (if any) narrowed to the cursor's value,
    inclusive (the keyset FILTER decides the tied rows): fewer rows for the index to visit,
    the same rows after the FILTER."""
    after, field = query.after, sort_field(spec, query)
    assert after is not None
    key: Callable[[Scalar], Any]
    if field.kind is FieldKind.NUMERIC:
        key = float
    elif field.kind is FieldKind.DECIMAL:
        key = Decimal
    elif field.kind is FieldKind.TIME and shadows and shadowed(field):
        if shadow(after.value) is None:
            return query  # an odd value: its shadow cannot bound anything
        key = str  # canonical timestamps: text order is time order
    else:
        return query
    ranges = []
    for ranged, bounds in query.ranges:
        if ranged is field and query.descending:
            high = after.value if bounds.high is None else min(bounds.high, after.value, key=key)
            bounds = Range(bounds.low, high)
        elif ranged is field:
            low = after.value if bounds.low is None else max(bounds.low, after.value, key=key)
            bounds = Range(low, bounds.high)
        ranges.append((ranged, bounds))
    return replace(query, ranges=tuple(ranges))


def _keyset_filter(spec: EntitySpec, query: Query) -> str:
    """The FILTER selecting the rows after the cursor: past its value, or tied and past its
    id. On numbers it compares the index's doubles, as the narrowed range does."""
    assert query.after is not None
    field, id_field = sort_field(spec, query), spec.id_index
    op = "<" if query.descending else ">"
    tie = f"@{id_field.name} {op} {literal(query.after.doc_id)}"
    if field is id_field:
        return tie
    numeric = field.kind in (FieldKind.NUMERIC, FieldKind.DECIMAL)
    value = number(query.after.value) if numeric else literal(query.after.value)
    after = f"@{field.name} {op} {value} || (@{field.name} == {value} && {tie})"
    # A row without the value (a document changed outside the service: `check` names it)
    # would fail the whole FILTER ("has no value"), a 500 for every page after the first.
    return f"exists(@{field.name}) && ({after})"


def _guard(index: str, query: Query) -> list[str] | None:
    used = [f for f, _ in query.ranges if shadowed(f)]
    if not used:
        return None
    marks = " | ".join(f"@{ODD}{f.name}:{{1}}" for f in used)
    return ["FT.SEARCH", index, marks, "NOCONTENT", "LIMIT", "0", "0", *DIALECT]


def page_read(index: str, spec: EntitySpec, query: Query, *, shadows: bool) -> PageRead:
    """The commands reading one page of ``query`` (see the module's docstring)."""
    text, filters = compile_search(spec, query, shadows=shadows)
    count = _command(index, text, filters, ["GROUPBY", "0", "REDUCE", "COUNT", "0", "AS", "n"])
    count += DIALECT
    if query.after is not None:
        text, filters = compile_search(spec, _narrowed(spec, query, shadows), shadows=shadows)
        filters = [*filters, _keyset_filter(spec, query)]
    page = _command(index, text, filters, _sort_tail(spec, query))
    from_page = query.counted and query.after is None and not filters
    guard = _guard(index, query) if shadows else None
    return PageRead(page, count if query.counted and not from_page else None, from_page, guard)


# The shares of a bounded sort range read before the whole of it (see the module docstring):
# x8 apart, so a range too sparse for either costs at most ~1.3 reads of it and two round trips.
WINDOWS = (1 / 32, 1 / 4)


def _as_number(field: Indexed, bound: Scalar, shadows: bool) -> float | None:
    """``bound`` as the number the index compares for ``field``; None where it compares no
    number (a time without its shadow, an odd or far time)."""
    if field.kind in (FieldKind.NUMERIC, FieldKind.DECIMAL):
        return float(bound)
    if field.kind is not FieldKind.TIME or not (shadows and shadowed(field)):
        return None
    micros = shadow(bound)
    return None if micros is None or not exact(micros) else float(micros)


def _as_bound(field: Indexed, value: float) -> Scalar:
    return micros_time(int(value)) if field.kind is FieldKind.TIME else value


def windows(spec: EntitySpec, query: Query, *, shadows: bool) -> list[Query]:
    """The narrower reads to try, in order, before ``query``'s own: the top :data:`WINDOWS`
    of its range over the sort field (after a cursor's narrowing). Empty unless the page
    wants no total and that bounded range is its only condition."""
    field = sort_field(spec, query)
    if query.counted or query.equals or query.terms is not None or len(query.ranges) != 1:
        return []
    narrowed = _narrowed(spec, query, shadows) if query.after is not None else query
    ranged, bounds = narrowed.ranges[0]
    if ranged is not field or bounds.low is None or bounds.high is None:
        return []
    low, high = _as_number(field, bounds.low, shadows), _as_number(field, bounds.high, shadows)
    if low is None or high is None or not low < high:
        return []
    whole = math.ceil if query.descending else math.floor  # a time's cut: whole microseconds
    out = []
    for share in WINDOWS:
        cut = high - (high - low) * share if query.descending else low + (high - low) * share
        if field.kind is FieldKind.TIME:
            cut = float(whole(cut))
        cut = min(high, max(low, cut))  # never past the range (float rounding)
        if query.descending:
            window = Range(_as_bound(field, cut), bounds.high)
        else:
            window = Range(bounds.low, _as_bound(field, cut))
        out.append(replace(query, ranges=((field, window),)))
    return out
