"""Aggregations: groups of a collection's documents and their metrics, one model for the
index path (RediSearch FT.AGGREGATE) and the scan path (Python), which give the same answer.

An :class:`Aggregation` groups the documents passing a list query's filters by 0 to
:data:`MAX_GROUP_FIELDS` indexed TAG, BOOL, TIME, NUMERIC or DECIMAL fields and computes
``count`` and ``sum``/``min``/``max``/``avg`` of NUMERIC and DECIMAL fields per group.

Rules both paths follow:

- A null or missing group value forms its own group, ``null`` in the key. Groups are ordered
  by their key ascending, field by field, null first (strings by code point, booleans false
  first, numbers and decimals by value), or with ``descending`` in the exact reverse of that
  order (null last); the first ``limit`` (at most :data:`MAX_GROUPS`) in that order are
  answered, and ``truncated`` says whether more exist. Without ``group_by`` there is one
  group, key ``{}``, even when nothing matches.
- A metric skips documents whose field is null or missing; over no value at all it is
  ``null`` (``count`` counts every document of the group).
- Exact arithmetic. A decimal (declared with ``places``, at most 15 significant digits when
  indexed: keyspace.fieldtypes) is turned into its integer of units (value x 10^places): the
  index rounds the double it holds (``floor(x * 10^places + 0.5)``, exact within 15 digits)
  and splits each unit count into a high and a low part of 26 bits, whose sums stay exact
  doubles for up to 2^26 documents per group; more is refused. NUMERIC fields hold integers
  within 2^53 and are summed the same way. Sums, minima and maxima are then exact integers:
  a NUMERIC's as a JSON integer, a decimal's as its canonical string with exactly ``places``
  fractional digits, as documents carry it. ``avg`` is the exact sum over the count of
  values: a NUMERIC's the nearest double, a decimal's rounded half-even to ``places + 6``
  fractional digits, trailing zeros past ``places`` dropped.
- A decimal declared without ``places`` takes no part (its scale is unknown, so no exact sum
  or group key comes from the index's doubles); neither do arrays, text and vectors.

The index path's commands are keyspace.aggregate_index's; this module parses, evaluates
on documents (the scan path) and shapes the answer of both.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from .errors import ValidationFailed
from .projection import index_value
from .query import Query, matches, parse, sensitive_refusal
from .schema import EntitySpec, FieldKind, Indexed, Schema, get_path

MAX_GROUPS = 1000
MAX_GROUP_FIELDS = 3
MAX_METRICS = 8
AVG_EXTRA_PLACES = 6
# Each index command reads every matching document, and Redis serves no one else meanwhile:
# an aggregation is bounded to this many (the order book takes 6).
MAX_COMMANDS = 8
MAX_GROUP_DOCUMENTS = 2**26  # what the index path sums exactly (keyspace.aggregate_index)
OPS = ("sum", "min", "max", "avg")
GROUP_KINDS = (FieldKind.TAG, FieldKind.BOOL, FieldKind.TIME, FieldKind.NUMERIC, FieldKind.DECIMAL)
_OWN = ("group_by", "metrics", "limit", "order")
_REFUSED = ("sort", "cursor", "count")

Key = tuple[Any, ...]  # a group's values in group_by order: str, bool, int (units) or None


@dataclass(frozen=True)
class Metric:
    """``count``, or ``op`` (sum, min, max, avg) of one NUMERIC or DECIMAL field."""

    op: str
    field: Indexed | None = None

    @property
    def name(self) -> str:
        return "count" if self.field is None else f"{self.op}:{self.field.name}"


@dataclass(frozen=True)
class Aggregation:
    """A validated aggregation: groups, metrics, the list query's filters, a group limit,
    and the groups' order (``descending``: by key descending, the limit taken at that end)."""

    group_by: tuple[Indexed, ...] = ()
    metrics: tuple[Metric, ...] = (Metric("count"),)
    query: Query = field(default_factory=Query)
    limit: int = MAX_GROUPS
    descending: bool = False

    @property
    def measured(self) -> tuple[Indexed, ...]:
        """The distinct fields the metrics read, in order of first use."""
        found = {m.field.name: m.field for m in self.metrics if m.field is not None}
        return tuple(found.values())


@dataclass(frozen=True)
class Group:
    key: dict[str, Any]
    values: dict[str, Any]  # metric name -> value


@dataclass(frozen=True)
class Result:
    """The answer: groups in key order, and whether more groups than ``limit`` exist."""

    groups: tuple[Group, ...]
    truncated: bool

    def body(self) -> dict[str, Any]:
        """The API's JSON: ``{"groups": [{"key": {...}, "<metric>": value}], "truncated"}``."""
        return {
            "groups": [{"key": g.key, **g.values} for g in self.groups],
            "truncated": self.truncated,
        }


def _invalid(param: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{param}: {message}", details=[{"field": param, "message": message}])


NUMBER_KINDS = (FieldKind.NUMERIC, FieldKind.DECIMAL)


def _fits(field: Indexed, kinds: tuple[FieldKind, ...]) -> bool:
    # A decimal without places has no exact sums or keys from the index's doubles.
    scaled = field.kind is not FieldKind.DECIMAL or field.places is not None
    return field.kind in kinds and not field.array and scaled and not field.sensitive


def group_fields(spec: EntitySpec) -> list[Indexed]:
    """The fields ``spec``'s aggregations may group by."""
    return [f for f in spec.fields if _fits(f, GROUP_KINDS)]


def metric_fields(spec: EntitySpec) -> list[Indexed]:
    """The fields ``spec``'s aggregations may sum, average and take extremes of."""
    return [f for f in spec.fields if _fits(f, NUMBER_KINDS)]


def _usable(spec: EntitySpec, name: str, param: str, kinds: tuple[FieldKind, ...]) -> Indexed:
    target = spec.indexed(name)
    if target is not None and target.sensitive:
        raise sensitive_refusal(param, name)
    if target is not None and target.kind is FieldKind.DECIMAL and target.places is None:
        raise _invalid(param, f"{name} is a decimal declared without places: no exact result")
    if target is None or not _fits(target, kinds):
        names = sorted(f.name for f in spec.fields if _fits(f, kinds))
        raise _invalid(param, f"{name!r} is not one of {names}")
    return target


def _names(raw: str, param: str) -> list[str]:
    names = raw.split(",")
    if any(not re.fullmatch(r"[A-Za-z0-9_:]{1,100}", n) for n in names):
        raise _invalid(param, "must be a comma-separated list of names")
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise _invalid(param, f"names {duplicate} twice")
    return names


def _group_by(spec: EntitySpec, raw: str | None) -> tuple[Indexed, ...]:
    if raw is None:
        return ()
    names = _names(raw, "group_by")
    if len(names) > MAX_GROUP_FIELDS:
        raise _invalid("group_by", f"at most {MAX_GROUP_FIELDS} fields")
    return tuple(_usable(spec, n, "group_by", GROUP_KINDS) for n in names)


def _metrics(spec: EntitySpec, raw: str | None) -> tuple[Metric, ...]:
    if raw is None:
        return (Metric("count"),)
    out = []
    for name in _names(raw, "metrics"):
        if name == "count":
            out.append(Metric("count"))
            continue
        op, _, target = name.partition(":")
        if op not in OPS or not target:
            raise _invalid("metrics", f"{name!r} is not count or sum|min|max|avg:<field>")
        out.append(Metric(op, _usable(spec, target, "metrics", NUMBER_KINDS)))
    if len(out) > MAX_METRICS:
        raise _invalid("metrics", f"at most {MAX_METRICS} metrics")
    return tuple(out)


def _limit(raw: str | None) -> int:
    if raw is None:
        return MAX_GROUPS
    if not re.fullmatch(r"[0-9]{1,100}", raw) or int(raw) < 1:
        raise _invalid("limit", "must be a positive integer")
    return min(int(raw), MAX_GROUPS)  # as a list's limit: larger asks are capped


def _descending(raw: str | None) -> bool:
    # Accepted without group_by too: the one group is trivially in either order, and a
    # client (or a declaration) need not special-case an ungrouped ask.
    if raw is None or raw == "asc":
        return False
    if raw == "desc":
        return True
    raise _invalid("order", "must be asc or desc")


def _single(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = params.get(name)
    if values is None:
        return None
    if len(values) != 1:
        raise _invalid(name, "given more than once" if values else "must have a value")
    return values[0]


def parse_aggregation(spec: EntitySpec, params: Mapping[str, Sequence[str]]) -> Aggregation:
    """Validate ``group_by=<field>[,<field>]``, ``metrics=count,sum:<field>,...`` (default
    ``count``), ``limit`` (groups, capped at :data:`MAX_GROUPS`) and every filter a list takes
    (``q`` included; :func:`keyspace.query.parse`) and ``order=asc|desc`` (default asc; with
    no ``group_by`` accepted and without effect). ``sort`` and ``cursor`` are refused: groups
    are ordered by their key, and a truncated answer is narrowed by filters."""
    for name in _REFUSED:
        if name in params:
            raise _invalid(
                name, "an aggregation is ordered by its group keys (order) and has no pages"
            )
    filters = {k: v for k, v in params.items() if k not in _OWN}
    agg = Aggregation(
        group_by=_group_by(spec, _single(params, "group_by")),
        metrics=_metrics(spec, _single(params, "metrics")),
        query=parse(spec, filters),
        limit=_limit(_single(params, "limit")),
        descending=_descending(_single(params, "order")),
    )
    if (needed := commands(agg)) > MAX_COMMANDS:
        raise _invalid(
            "metrics",
            f"this aggregation takes {needed} index commands, each over every matching "
            f"document; at most {MAX_COMMANDS}: group by fewer decimal fields or measure "
            "fewer fields",
        )
    return agg


def commands(agg: Aggregation) -> int:
    """How many FT.AGGREGATE commands the index path sends (keyspace.aggregate_index): one
    per pattern of present and missing decimal group fields, times one for the counts and
    one per measured field."""
    decimals = sum(f.kind is FieldKind.DECIMAL for f in agg.group_by)
    return int(2**decimals * (1 + len(agg.measured)))


# --- values: one internal form per kind, on both paths ------------------------------------


def _units(field: Indexed, value: Any) -> int | None:
    """A stored number as the integer both paths sum: a NUMERIC's value, a decimal's
    units (value x 10^places, rounded as the index rounds its double); None: no value."""
    if field.kind is FieldKind.NUMERIC:
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if not isinstance(value, str) or field.places is None:
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    scaled = number.scaleb(field.places) + Decimal("0.5")
    return int(scaled.to_integral_value(rounding=ROUND_FLOOR))


def _group_value(field: Indexed, value: Any) -> Any:
    """A document's group value in its internal form (None: the null group)."""
    if field.kind in (FieldKind.NUMERIC, FieldKind.DECIMAL):
        return _units(field, value)
    if field.kind is FieldKind.BOOL:
        return value if isinstance(value, bool) else None
    return index_value(field, value) if isinstance(value, str) else None


def _order(key: Key) -> tuple[tuple[int, Any], ...]:
    return tuple((0, 0) if v is None else (1, v) for v in key)


def _decimal_text(units: int, places: int) -> str:
    digits = str(abs(units)).rjust(places + 1, "0")
    text = f"{digits[:-places]}.{digits[-places:]}" if places else digits
    return "-" + text if units < 0 else text


def _shown(field: Indexed, value: Any) -> Any:
    if value is None or field.kind is not FieldKind.DECIMAL:
        return value
    assert field.places is not None
    return _decimal_text(value, field.places)


@dataclass
class Acc:
    """One group's values of one field: how many, their exact sum, least and greatest."""

    n: int = 0
    total: int = 0
    low: int | None = None
    high: int | None = None

    def add(self, units: int) -> None:
        self.n += 1
        self.total += units
        self.low = units if self.low is None else min(self.low, units)
        self.high = units if self.high is None else max(self.high, units)


def _average(field: Indexed, acc: Acc) -> Any:
    if field.kind is FieldKind.NUMERIC:
        return acc.total / acc.n  # int / int: the double nearest the exact mean
    assert field.places is not None
    digits = field.places + AVG_EXTRA_PLACES
    rounded = round(Fraction(acc.total * 10**AVG_EXTRA_PLACES, acc.n))  # half-even
    whole, _, fraction = _decimal_text(rounded, digits).partition(".")
    fraction = fraction.rstrip("0").ljust(field.places, "0")
    return f"{whole}.{fraction}" if fraction else whole


def _metric(metric: Metric, count: int, acc: Acc | None) -> Any:
    if metric.field is None:
        return count
    if acc is None or acc.n == 0:
        return None
    if acc.n > MAX_GROUP_DOCUMENTS:
        raise ValidationFailed(
            f"{metric.name}: more than {MAX_GROUP_DOCUMENTS} values in one group, past what "
            "an exact sum is computed for; narrow the filters or group further"
        )
    if metric.op == "avg":
        return _average(metric.field, acc)
    units = {"sum": acc.total, "min": acc.low, "max": acc.high}[metric.op]
    return _shown(metric.field, units)


def finish(agg: Aggregation, counts: dict[Key, int], accs: dict[tuple[Key, str], Acc]) -> Result:
    """The answer from each group's count and each (group, measured field)'s values."""
    if not agg.group_by and not counts:
        counts = {(): 0}  # no groups asked for: one answer, even over nothing
    # Keys are distinct, so the reversed sort is the exact reverse order (null last).
    keys = sorted(counts, key=_order, reverse=agg.descending)
    groups = []
    for key in keys[: agg.limit]:
        shown = {f.name: _shown(f, v) for f, v in zip(agg.group_by, key, strict=True)}
        values = {
            m.name: _metric(m, counts[key], accs.get((key, m.field.name)) if m.field else None)
            for m in agg.metrics
        }
        groups.append(Group(shown, values))
    return Result(tuple(groups), truncated=len(keys) > agg.limit)


# --- the scan path ------------------------------------------------------------------------


def evaluate(spec: EntitySpec, agg: Aggregation, docs: Iterable[Mapping[str, Any]]) -> Result:
    """The aggregation computed in Python from ``docs`` (every document of the entity)."""
    counts: dict[Key, int] = {}
    accs: dict[tuple[Key, str], Acc] = {}
    for doc in docs:
        if not matches(spec, agg.query, doc):
            continue
        key = tuple(_group_value(f, get_path(doc, f.path)) for f in agg.group_by)
        counts[key] = counts.get(key, 0) + 1
        for target in agg.measured:
            units = _units(target, get_path(doc, target.path))
            if units is not None:
                accs.setdefault((key, target.name), Acc()).add(units)
    return finish(agg, counts, accs)


# --- declared aggregations ----------------------------------------------------------------


@dataclass(frozen=True)
class Aggregate:
    """A named aggregation a system declares (``System.aggregates``) for a route to serve:
    ``group_by`` and ``metrics`` as the query parameters spell them, ``descending`` as
    ``order=desc`` (an order book's bids: the highest prices first), and ``filters`` fixed
    (name, value) pairs; :meth:`compile` adds the filters a request fixes (an id from its
    path, e.g. ``proposal_id``). Several values of one name are any-of, as in lists."""

    name: str
    collection: str
    group_by: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ("count",)
    filters: tuple[tuple[str, str], ...] = ()
    limit: int = MAX_GROUPS
    descending: bool = False

    def params(self, extra: Mapping[str, str | Sequence[str]]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {"metrics": [",".join(self.metrics)]}
        if self.group_by:
            out["group_by"] = [",".join(self.group_by)]
        out["limit"] = [str(self.limit)]
        out["order"] = ["desc" if self.descending else "asc"]  # fixed, as the limit is
        for name, value in self.filters:
            out.setdefault(name, []).append(value)
        for name, values in extra.items():
            if name in out or name in _REFUSED:
                raise ValueError(f"{self.name}: {name} is fixed by the declaration")
            out[name] = [values] if isinstance(values, str) else list(values)
        return out

    def compile(
        self, schema: Schema, extra: Mapping[str, str | Sequence[str]] | None = None
    ) -> tuple[EntitySpec, Aggregation]:
        """The entity and the validated aggregation; ValidationFailed for an extra filter
        value that is not valid (a client's), ValueError for a name the declaration fixes."""
        spec = next((e for e in schema.entities if e.collection == self.collection), None)
        if spec is None:
            raise ValueError(f"{self.name}: no collection {self.collection!r}")
        return spec, parse_aggregation(spec, self.params(extra or {}))

    def check(self, schema: Schema) -> None:
        """Refuse a declaration naming what ``schema`` does not have (at declaration time)."""
        try:
            self.compile(schema)
        except ValidationFailed as exc:
            raise ValueError(f"aggregate {self.name}: {exc.message}") from None
