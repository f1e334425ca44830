"""The index path of aggregations (keyspace.aggregate): the FT.AGGREGATE commands answering
an :class:`Aggregation`, and their replies merged into the scan path's :class:`Result`.

RediSearch sums doubles and refuses arithmetic on a missing value (``has no value``), so an
aggregation is one command per pattern of present and missing DECIMAL group fields, each once
for the counts and once per measured field, restricted to documents holding it. Units are
split in 26-bit halves (:data:`SPLIT`) whose sums stay exact doubles; RediSearch prints
integral doubles as digits, so every number read back is an integer.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .aggregate import Acc, Aggregation, Key, Result, finish
from .query import compile_search
from .schema import EntitySpec, FieldKind, Indexed

SPLIT = 2**26  # a unit count's low part; sums of 2^26 parts stay below 2^53


@dataclass(frozen=True)
class Part:
    """One FT.AGGREGATE of the index path: its decimal group fields present (the others are
    missing in every row it reads), and the metric field it reduces (None: it counts)."""

    present: frozenset[str]
    measured: Indexed | None
    args: list[str] = field(default_factory=list)


def _unit_expr(target: Indexed) -> str:
    if target.kind is FieldKind.NUMERIC:
        return f"@{target.name}"
    assert target.places is not None
    return f"floor(@{target.name}*{10**target.places}+0.5)"


def _part_args(
    index: str,
    agg: Aggregation,
    search: tuple[str, list[str]],
    present: frozenset[str],
    measured: Indexed | None,
) -> list[str]:
    text, filters = search
    clauses = [] if text == "*" else [text]
    keys: list[str] = []
    applies: list[str] = []
    for f in agg.group_by:
        if f.kind is not FieldKind.DECIMAL:
            keys.append(f"@{f.name}")
        elif f.name in present:
            clauses.append(f"@{f.name}:[-inf +inf]")
            applies += ["APPLY", _unit_expr(f), "AS", f"_g_{f.name}"]
            keys.append(f"@_g_{f.name}")
        else:
            clauses.append(f"-@{f.name}:[-inf +inf]")
    reducers = ["REDUCE", "COUNT", "0", "AS", "_count"]
    if measured is not None:
        clauses.append(f"@{measured.name}:[-inf +inf]")  # arithmetic on a missing value fails
        applies += ["APPLY", _unit_expr(measured), "AS", "_u"]
        applies += ["APPLY", f"floor(@_u/{SPLIT})", "AS", "_hi", "APPLY", f"@_u-@_hi*{SPLIT}"]
        applies += ["AS", "_lo"]
        reducers += ["REDUCE", "SUM", "1", "@_hi", "AS", "_hi", "REDUCE", "SUM", "1", "@_lo"]
        reducers += ["AS", "_lo", "REDUCE", "MIN", "1", "@_u", "AS", "_min"]
        reducers += ["REDUCE", "MAX", "1", "@_u", "AS", "_max"]
    read = {f.name: f for f in (*agg.group_by, measured) if f is not None and not f.sortable}
    args = ["FT.AGGREGATE", index, " ".join(clauses) or "*", "VERBATIM"]
    if read:
        args += ["LOAD", str(len(read)), *(f"@{name}" for name in read)]
    for expr in filters:
        args += ["FILTER", expr]
    args += [*applies, "GROUPBY", str(len(keys)), *keys, *reducers]
    if keys:
        # RediSearch orders a group's null key below every value and reverses the whole
        # comparison under DESC (null last), as finish's sort does (measured: the behaviour
        # and property tests of aggregations on the real server).
        direction = "DESC" if agg.descending else "ASC"
        order = [part for k in keys for part in (k, direction)]
        args += ["SORTBY", str(len(order)), *order, "MAX", str(agg.limit + 1)]
    return [*args, "DIALECT", "2"]


def compile_aggregate(index: str, spec: EntitySpec, agg: Aggregation) -> list[Part]:
    """The FT.AGGREGATE commands answering ``agg`` on ``index``, every filter through the
    lists' compiler (:func:`keyspace.query.compile_search`) and so its one escaper."""
    search = compile_search(spec, agg.query)
    decimals = [f.name for f in agg.group_by if f.kind is FieldKind.DECIMAL]
    parts = []
    for pattern in itertools.product((True, False), repeat=len(decimals)):
        present = frozenset(n for n, there in zip(decimals, pattern, strict=True) if there)
        for measured in (None, *agg.measured):
            parts.append(Part(present, measured, _part_args(index, agg, search, present, measured)))
    return parts


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _integer(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        number = Decimal(text)  # an integral double past what RediSearch prints as digits
        if number != number.to_integral_value():
            raise ValueError(f"the index answered {text!r} where an integer belongs") from None
        return int(number)


def _reply_value(target: Indexed, part: Part, row: Mapping[str, str | None]) -> Any:
    if target.kind is FieldKind.DECIMAL:
        return _integer(row.get(f"_g_{target.name}")) if target.name in part.present else None
    text = row.get(target.name)
    if target.kind is FieldKind.NUMERIC:
        return _integer(text)
    if target.kind is FieldKind.BOOL:
        return None if text is None else text == "true"
    return text


def combine(agg: Aggregation, parts: Sequence[Part], replies: Sequence[Any]) -> Result:
    """The answer from the replies to :func:`compile_aggregate`'s commands, in order."""
    counts: dict[Key, int] = {}
    accs: dict[tuple[Key, str], Acc] = {}
    for part, reply in zip(parts, replies, strict=True):
        for raw in reply[1:]:
            texts = [_text(v) for v in raw]
            row = {str(k): v for k, v in zip(texts[::2], texts[1::2], strict=True)}
            key = tuple(_reply_value(f, part, row) for f in agg.group_by)
            if part.measured is None:
                counts[key] = _integer(row.get("_count")) or 0
                continue
            high, low = _integer(row.get("_hi")) or 0, _integer(row.get("_lo")) or 0
            accs[(key, part.measured.name)] = Acc(
                n=_integer(row.get("_count")) or 0,
                total=high * SPLIT + low,
                low=_integer(row.get("_min")),
                high=_integer(row.get("_max")),
            )
    return finish(agg, counts, accs)
