"""One query model for every entity, and its two compilations.

:func:`parse` turns request parameters into a validated :class:`Query` using
field names from the declarations only. :func:`compile_search` turns it into
RediSearch FT.AGGREGATE arguments (DIALECT 2, every value through one escaper),
and :func:`matches` / :func:`sort_key` evaluate the same query in Python for the
path without the search module. Both orderings are (sort field, id) so pages are
keyset-paginated by a cursor holding the last row's (value, id).

Booleans filter as ``true``/``false`` and compare as those tags on both paths. Decimals are
compared exactly (:class:`decimal.Decimal`) in Python and by their doubles in RediSearch,
which agree: an indexed decimal and a decimal filter value have at most 15 significant digits
(keyspace.fieldtypes), and the listing re-checks every index hit with :func:`matches`. A
decimal cursor holds the value's shortest canonical text, whichever path read it.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from . import codec, keys
from .errors import ValidationFailed
from .fieldtypes import INDEX_DIGITS, MAX_DIGITS, canonical_decimal
from .projection import SHADOW, epoch_micros, exact, index_value, query_value, shadowed
from .schema import EntitySpec, FieldKind, Indexed, get_path
from .text import terms

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
COUNTS = ("exact", "none")  # the count parameter's values; exact is the default
PAGING = ("q", "sort", "limit", "cursor", "count")  # list parameters that are not filters
LITERAL = r"[0-9A-Za-z_.:\-]*"  # what TIME values and ids are validated to: no quoting needed
MAX_VALUE_LENGTH = 512
BOOLEANS = ("false", "true")  # a boolean's query values and index tags, in sort order

Scalar = str | float
_NUMBERS = (FieldKind.NUMERIC, FieldKind.DECIMAL)  # compiled to numeric ranges
_RANGED = (FieldKind.NUMERIC, FieldKind.DECIMAL, FieldKind.TIME)
_NOT_EQUALS = (FieldKind.TEXT, FieldKind.VECTOR)  # searched through q; through keyspace.vectors


@dataclass(frozen=True)
class Range:
    low: Scalar | None = None
    high: Scalar | None = None


@dataclass(frozen=True)
class Cursor:
    """Position after the last row of a page: its sort value and its id."""

    value: Scalar
    doc_id: str


@dataclass(frozen=True)
class Query:
    """A validated list query. Equality values of one field are alternatives (any-of)."""

    equals: tuple[tuple[Indexed, tuple[Scalar, ...]], ...] = ()
    ranges: tuple[tuple[Indexed, Range], ...] = ()
    terms: tuple[str, ...] | None = None
    sort: Indexed | None = None
    descending: bool = False
    limit: int = DEFAULT_LIMIT
    after: Cursor | None = None
    counted: bool = True  # count=none: the page's total is not computed (null)


_ESCAPE = re.compile(r"([^A-Za-z0-9_\x80-\U0010ffff])")


def tokenize(text: str) -> list[str]:
    """The folded words of ``text``, as the index holds them (:func:`keyspace.text.terms`)."""
    return terms(text)


def escape(value: str) -> str:
    """Make any value a literal in a RediSearch query (tag values and terms)."""
    if value == "_":  # RediSearch's parser rejects a lone '_' ({_} is a syntax error)
        return "\\_"
    return _ESCAPE.sub(r"\\\1", value)


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", details=[{"field": field, "message": message}])


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _text_value(raw: str, param: str) -> str:
    if len(raw) > MAX_VALUE_LENGTH:
        raise _invalid(param, f"longer than {MAX_VALUE_LENGTH} characters")
    if _CONTROL.search(raw):
        raise _invalid(param, "must not contain control characters")
    return raw


def _value(spec_field: Indexed, raw: str, param: str) -> Scalar:
    raw = _text_value(raw, param)
    if spec_field.kind is FieldKind.NUMERIC:
        try:
            number = float(raw)
        except ValueError:
            raise _invalid(param, "must be a number") from None
        if not math.isfinite(number):
            raise _invalid(param, "must be a finite number")
        return number
    if spec_field.kind is FieldKind.TIME:
        try:
            return codec.normalize_iso(raw)
        except ValueError:
            raise _invalid(param, "must be an ISO-8601 timestamp") from None
    if spec_field.kind is FieldKind.BOOL:
        if raw not in BOOLEANS:
            raise _invalid(param, "must be true or false")
        return raw
    if spec_field.kind is FieldKind.DECIMAL:
        try:
            return canonical_decimal(raw, max_digits=INDEX_DIGITS)
        except ValueError as exc:
            raise _invalid(param, str(exc)) from None
    if raw == "":
        raise _invalid(param, "must not be empty")
    compared = query_value(spec_field, raw)
    if compared == "":  # e.g. only invisible characters, which folding drops
        raise _invalid(param, "must not be empty once case and invisible characters are folded")
    return compared


def _single(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise _invalid(name, "given more than once")
    return values[0]


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not re.fullmatch(r"[0-9]{1,100}", raw) or int(raw) < 1:
        raise _invalid("limit", "must be a positive integer")
    return min(int(raw), MAX_LIMIT)  # larger asks are capped, not refused


def _counted(raw: str | None) -> bool:
    if raw is not None and raw not in COUNTS:
        raise _invalid("count", f"must be one of {list(COUNTS)}")
    return raw != "none"


def sensitive_refusal(param: str, name: str) -> ValidationFailed:
    """The 400 for anything but equality over a sensitive field (keyspace.sealing)."""
    return _invalid(
        param,
        f"{name} is a sensitive field, stored encrypted: only exact equality filters "
        f"({name}=value) are served on it; ranges, sorting, grouping and full text are not",
    )


def _sort(spec: EntitySpec, raw: str | None) -> tuple[Indexed | None, bool]:
    if raw is None:
        return None, False
    descending = raw.startswith("-")
    target = spec.indexed(raw.lstrip("-+"))
    if target is not None and target.sensitive:
        raise sensitive_refusal("sort", target.name)
    if target is None or not target.sortable:
        allowed = sorted(f.name for f in spec.fields if f.sortable)
        raise _invalid("sort", f"must be one of {allowed}, optionally prefixed with '-'")
    return target, descending


def parse(spec: EntitySpec, params: Mapping[str, Sequence[str]]) -> Query:
    """Validate list parameters against the entity's declaration.

    Known parameters: every indexed non-text field (equality, repeatable as
    any-of), ``<numeric, decimal or time field>_min`` / ``_max``, ``q`` (full text),
    ``sort`` (``field`` or ``-field``), ``limit``, ``cursor`` and ``count`` (``exact``,
    the default, or ``none``: no total). Anything else is rejected, so a typo never
    silently widens a result.
    """
    equals: list[tuple[Indexed, tuple[Scalar, ...]]] = []
    ranges: dict[str, tuple[Indexed, dict[str, Scalar]]] = {}
    for name, values in params.items():
        if name in PAGING:
            continue
        if not values:
            raise _invalid(name, "must have a value")
        target = spec.indexed(name)
        if target is not None and target.kind not in _NOT_EQUALS:
            equals.append((target, tuple(_value(target, v, name) for v in values)))
            continue
        base, _, bound = name.rpartition("_")
        target = spec.indexed(base)
        if bound in ("min", "max") and target is not None and target.sensitive:
            raise sensitive_refusal(name, target.name)
        if bound in ("min", "max") and target is not None and target.kind in _RANGED:
            raw = _single(params, name)
            assert raw is not None
            ranges.setdefault(base, (target, {}))[1][bound] = _value(target, raw, name)
            continue
        raise _invalid(name, "unknown query parameter")
    q = _single(params, "q")
    if q is not None and not spec.text_fields:
        raise _invalid("q", f"{spec.collection} have no full-text fields")
    if q is not None:
        q = _text_value(q, "q")
    sort, descending = _sort(spec, _single(params, "sort"))
    query = Query(
        equals=tuple(equals),
        ranges=tuple((f, Range(b.get("min"), b.get("max"))) for f, b in ranges.values()),
        terms=None if q is None else tuple(dict.fromkeys(tokenize(q))),
        sort=sort,
        descending=descending,
        limit=_limit(_single(params, "limit")),
        counted=_counted(_single(params, "count")),
    )
    cursor = _single(params, "cursor")
    return query if cursor is None else _with_cursor(spec, query, cursor)


def sort_field(spec: EntitySpec, query: Query) -> Indexed:
    return query.sort or spec.id_index


def encode_cursor(spec: EntitySpec, query: Query, doc: Mapping[str, Any]) -> str:
    """The cursor that continues after ``doc``."""
    return cursor_at(spec, query, get_path(doc, sort_field(spec, query).path), doc[spec.id_field])


def cursor_at(spec: EntitySpec, query: Query, value: Any, doc_id: str) -> str:
    """The cursor that continues after the row at (``value``, ``doc_id``) of the sort order:
    a document's, or an index hit's (whose numbers arrive as floats)."""
    field = sort_field(spec, query)
    if isinstance(value, float) and value.is_integer() and field.kind is FieldKind.NUMERIC:
        value = int(value)  # one spelling whichever path read it: 128, never 128.0
    payload = [field.name, query.descending, _cursor_value(field, value), doc_id]
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


def _cursor_value(field: Indexed, value: Any) -> Any:
    """One spelling of a sort value, whichever path read it: a decimal's shortest canonical
    text ("12.50" in a document, "12.5" or "1e-07" from the index), a boolean's tag."""
    if field.kind is FieldKind.BOOL and isinstance(value, bool):
        return BOOLEANS[value]
    if field.kind is FieldKind.DECIMAL and not isinstance(value, bool):
        try:
            return canonical_decimal(value, max_digits=MAX_DIGITS)
        except ValueError:
            return value  # not a decimal: the cursor is refused when it comes back
    return value


def _with_cursor(spec: EntitySpec, query: Query, raw: str) -> Query:
    try:
        padded = raw + "=" * (-len(raw) % 4)
        name, descending, value, doc_id = orjson.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, TypeError, binascii.Error):
        raise _invalid("cursor", "is not a cursor this service issued") from None
    field = sort_field(spec, query)
    valid_value = isinstance(value, float | int | str) and not isinstance(value, bool)
    if name != field.name or descending != query.descending or not valid_value:
        raise _invalid("cursor", "belongs to a different sort order")
    if not isinstance(doc_id, str) or not keys.is_lookup_id(doc_id):
        raise _invalid("cursor", "is not a cursor this service issued")
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if numeric != (field.kind is FieldKind.NUMERIC) or (numeric and not math.isfinite(value)):
        raise _invalid("cursor", "is not a cursor this service issued")
    if not numeric and not re.fullmatch(LITERAL, str(value)):  # cf. literal
        raise _invalid("cursor", "is not a cursor this service issued")
    if field.kind is FieldKind.BOOL and value not in BOOLEANS:
        raise _invalid("cursor", "is not a cursor this service issued")
    if field.kind is FieldKind.DECIMAL and _cursor_value(field, value) != value:
        raise _invalid("cursor", "is not a cursor this service issued")
    return Query(**{**query.__dict__, "after": Cursor(value, doc_id)})


# --- RediSearch compilation -------------------------------------------------------------


def number(value: Scalar) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def literal(value: Scalar) -> str:
    # Only TIME values and ids reach FILTER string literals; both are validated to
    # characters that need no quoting ([0-9A-Za-z_.:-]), which this re-checks.
    text = str(value)
    if not re.fullmatch(LITERAL, text):
        raise _invalid("cursor", "holds a value that cannot be compared")
    return f"'{text}'"


def _equality(field: Indexed, values: tuple[Scalar, ...]) -> str:
    if field.kind in _NUMBERS:
        parts = [f"@{field.name}:[{number(v)} {number(v)}]" for v in values]
        return parts[0] if len(parts) == 1 else "(" + " | ".join(parts) + ")"
    return f"@{field.name}:{{{' | '.join(escape(str(v)) for v in values)}}}"


def _keyset(field: Indexed, id_field: Indexed, query: Query) -> tuple[str | None, str]:
    """Query clause and FILTER expression selecting rows after the cursor."""
    assert query.after is not None
    after, op = query.after, "<" if query.descending else ">"
    tie = f"@{id_field.name} {op} {literal(after.doc_id)}"
    if field.kind in _NUMBERS:
        bound = number(after.value)
        clause = (
            f"@{field.name}:[-inf {bound}]" if query.descending else f"@{field.name}:[{bound} +inf]"
        )
        return clause, f"@{field.name} {op} {bound} || {tie}"
    if field is id_field:
        return None, tie
    value = literal(after.value)
    return None, f"@{field.name} {op} {value} || (@{field.name} == {value} && {tie})"


def compile_search(
    spec: EntitySpec, query: Query, *, shadows: bool = False
) -> tuple[str, list[str]]:
    """The query string and FILTER expressions, with and without the cursor condition.

    Returns ``(query_string, filters)`` for the count; :func:`page_args` adds
    the keyset part for one page. With ``shadows`` a time range is a numeric range on the
    field's shadow (keyspace.projection), which only the caller can tell is exact: when no
    document of the entity is marked odd for it (keyspace.pages)."""
    clauses = [_equality(f, vs) for f, vs in query.equals]
    filters: list[str] = []
    for field, bounds in query.ranges:
        if field.kind in _NUMBERS:
            low = "-inf" if bounds.low is None else number(bounds.low)
            high = "+inf" if bounds.high is None else number(bounds.high)
            clauses.append(f"@{field.name}:[{low} {high}]")
        elif shadows and shadowed(field) and _exact_bounds(bounds):
            # Bounds are canonical (parse normalizes them): text order is micros order.
            low = "-inf" if bounds.low is None else str(epoch_micros(str(bounds.low)))
            high = "+inf" if bounds.high is None else str(epoch_micros(str(bounds.high)))
            clauses.append(f"@{SHADOW}{field.name}:[{low} {high}]")
        else:
            # A FILTER on a document without the attribute (a null, or a value a projection
            # lost outside the service) is an error for the whole read, not false (review 31).
            has = f"exists(@{field.name}) && "
            if bounds.low is not None:
                filters.append(f"{has}@{field.name} >= {literal(bounds.low)}")
            if bounds.high is not None:
                filters.append(f"{has}@{field.name} <= {literal(bounds.high)}")
    if query.terms is not None:
        names = "|".join(f.name for f in spec.text_fields)
        # No terms at all (q was only punctuation) must match nothing, not everything.
        words = " ".join(escape(t) for t in query.terms) or "\\-"
        clauses.append(f"@{names}:({words})")
    return " ".join(clauses) or "*", filters


def _exact_bounds(bounds: Range) -> bool:
    # A bound past 2255 (or before 1685) is compared as text: shadows there are rounded.
    return all(b is None or exact(epoch_micros(str(b))) for b in (bounds.low, bounds.high))


def count_args(index: str, spec: EntitySpec, query: Query) -> list[str]:
    """FT.AGGREGATE arguments counting every match (the cursor does not apply)."""
    text, filters = compile_search(spec, query)
    args = ["FT.AGGREGATE", index, text, "VERBATIM"]
    for expr in filters:
        args += ["FILTER", expr]
    return [*args, "GROUPBY", "0", "REDUCE", "COUNT", "0", "AS", "n", "DIALECT", "2"]


def page_args(index: str, spec: EntitySpec, query: Query) -> list[str]:
    """FT.AGGREGATE arguments returning the hits of one page, plus one to detect more.

    Each row holds the sort attribute and the id attribute as the index has them (SORTBY
    returns the attributes it sorts by), so the page's continuation is decided and its cursor
    built from the index, not from documents fetched afterwards."""
    text, filters = compile_search(spec, query)
    field, id_field = sort_field(spec, query), spec.id_index
    if query.after is not None:
        clause, expr = _keyset(field, id_field, query)
        text = text if clause is None else (clause if text == "*" else f"{text} {clause}")
        filters = [*filters, expr]
    args = ["FT.AGGREGATE", index, text, "VERBATIM"]
    for expr in filters:
        args += ["FILTER", expr]
    order = "DESC" if query.descending else "ASC"
    by = (
        [f"@{field.name}", order]
        if field is id_field
        else [f"@{field.name}", order, f"@{id_field.name}", order]
    )
    return [
        *args,
        "SORTBY",
        str(len(by)),
        *by,
        "MAX",
        str(query.limit + 1),
        "DIALECT",
        "2",
    ]


# --- Python evaluation (no search module) -------------------------------------------------


def _values(doc: Mapping[str, Any], field: Indexed) -> list[Any]:
    value = get_path(doc, field.path)
    return value if isinstance(value, list) else [value]


def _tag_equal(field: Indexed, stored: Any, wanted: Scalar) -> bool:
    return isinstance(stored, str) and index_value(field, stored) == wanted


def _comparable(field: Indexed, value: Any) -> Any:
    """A stored value as both paths compare and order it; None for a value that matches no
    filter (null, or the wrong type)."""
    if field.kind is FieldKind.NUMERIC:
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if field.kind is FieldKind.BOOL:
        return BOOLEANS[value] if isinstance(value, bool) else None
    if not isinstance(value, str):
        return None
    return _decimal(value) if field.kind is FieldKind.DECIMAL else value


def _decimal(text: str) -> Decimal | None:
    try:
        return Decimal(text)  # never a float: the scan path compares decimals exactly
    except InvalidOperation:
        return None


def _mark(field: Indexed, value: Scalar) -> Any:
    """A query value (filter, bound or cursor) as :func:`_comparable` orders stored values."""
    return _decimal(str(value)) if field.kind is FieldKind.DECIMAL else value


def _equal(field: Indexed, stored: Any, wanted: Scalar) -> bool:
    if field.kind in (FieldKind.TAG, FieldKind.TIME, FieldKind.TEXT):
        return _tag_equal(field, stored, wanted)
    value = _comparable(field, stored)
    return value is not None and value == _mark(field, wanted)


def _in_range(field: Indexed, stored: Any, bounds: Range) -> bool:
    value = _comparable(field, stored)
    if value is None:
        return False
    if bounds.low is not None and value < _mark(field, bounds.low):
        return False
    return not (bounds.high is not None and value > _mark(field, bounds.high))


def matches(spec: EntitySpec, query: Query, doc: Mapping[str, Any]) -> bool:
    """True when ``doc`` satisfies the query's filters (the cursor is not applied)."""
    for field, wanted in query.equals:
        stored = _values(doc, field)
        if not any(_equal(field, s, w) for s in stored for w in wanted):
            return False
    for field, bounds in query.ranges:
        if not _in_range(field, get_path(doc, field.path), bounds):
            return False
    if query.terms is not None:
        words = {
            t
            for f in spec.text_fields
            for v in _values(doc, f)
            if isinstance(v, str)
            for t in tokenize(v)
        }
        if not query.terms or not set(query.terms) <= words:
            return False
    return True


def sort_key(spec: EntitySpec, query: Query, doc: Mapping[str, Any]) -> tuple[Any, str]:
    field = sort_field(spec, query)
    return _comparable(field, get_path(doc, field.path)), str(doc[spec.id_field])


def after_cursor(spec: EntitySpec, query: Query, doc: Mapping[str, Any]) -> bool:
    if query.after is None:
        return True
    key = sort_key(spec, query, doc)
    mark = (_mark(sort_field(spec, query), query.after.value), query.after.doc_id)
    return key < mark if query.descending else key > mark
