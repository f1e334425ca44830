"""Nearness searches over an entity's vector field (pure): the k documents nearest a query
vector by cosine distance, among those passing a list filter.

Both paths give one answer. The score is the cosine distance ``1 - cos`` computed here in
float64 from the stored values, rounded to :data:`DIGITS` decimal places, and the order is
(score, id). The scan path ranks every document that passes :func:`keyspace.query.matches`
with it; the RediSearch path lets a FLAT (exact) index pick the candidates, the filter applied
inside the same query (``(<filter>)=>[KNN ...]``, a pre-filter, so the k nearest are the k
nearest that pass), fetches them and ranks them with the same function. The index computes
in float32 (its distance is off by about 1e-7), so it asks for one candidate more than k:
when that one lies within :data:`BAND` of the k-th (near ties, duplicate vectors, which the
index orders arbitrarily), it asks again for everything within the band, in (distance, id)
order, and ranks that. The answers then differ only where more than :data:`MARGIN` distinct
vectors lie within float32 rounding of the k-th place.

A vector without direction (all zeros) has no cosine: as a query it is refused, stored it is
never a result (its projection leaves it out; keyspace.projection).
"""

from __future__ import annotations

import heapq
import math
import operator
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ValidationFailed
from .fieldtypes import check_vector, direction
from .query import Query, compile_search, parse
from .schema import EntitySpec, FieldKind, Indexed, get_path

DEFAULT_K = 10
MAX_K = 1000
DIGITS = 6
"""Decimal places of a score: float32, the index's type, holds about 7 significant digits."""
BAND = 1e-4
"""How far past the k-th the index's distances are checked for contenders: a thousand times
the float32 error measured on the embedded server (1e-7 at 8, 384 and 4096 dimensions)."""
MARGIN = 16
"""Candidates past k that a crowded band may add."""
SCORE = "__score"  # no declared field starts with "_" (keyspace.declare)
NOT_FILTERS = ("sort", "limit", "cursor", "count")
DIALECT = ("DIALECT", "2")

Scored = tuple[dict[str, Any], float]


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", details=[{"field": field, "message": message}])


# --- a search's parts, validated -------------------------------------------------------------


def query_direction(value: object, dim: int) -> tuple[float, ...]:
    """The unit vector of a query ``value``; ValidationFailed for anything but ``dim`` finite
    numbers, or for all zeros (no direction, so no cosine)."""
    try:
        check_vector(value, dim)
    except ValueError as exc:
        raise _invalid("vector", str(exc)) from None
    unit = direction(value, dim)
    if unit is None:
        raise _invalid("vector", "is all zeros: it has no direction, so no cosine distance")
    return unit


def parse_k(value: object) -> int:
    """How many neighbours a search asks for: an integer from 1 to :data:`MAX_K`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_K:
        raise _invalid("k", f"must be an integer from 1 to {MAX_K}")
    return value


def _param(name: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return value
    raise _invalid(f"filter.{name}", "must be a string, a number, a boolean or an array of them")


def filter_params(raw: object) -> dict[str, list[str]]:
    """A JSON filter (``{"status": "active", "year_min": 2020, "tags": ["a", "b"]}``) as the
    list query parameters it stands for: an array is any-of, like a repeated parameter."""
    if not isinstance(raw, Mapping):
        raise _invalid("filter", "must be an object of list filters")
    params: dict[str, list[str]] = {}
    for name, value in raw.items():
        if name in NOT_FILTERS:
            raise _invalid(f"filter.{name}", "is not a filter (a search answers k, nearest first)")
        members = value if isinstance(value, list) else [value]
        params[name] = [_param(name, v) for v in members]
    return params


def check_filter(query: Query) -> None:
    """Refuse what no pre-filter can hold: a time range is a FILTER step of the index, which
    would run after the k nearest were chosen (and leave fewer than k)."""
    for field, _ in query.ranges:
        if field.kind is FieldKind.TIME:
            raise _invalid(
                f"filter.{field.name}_min/_max",
                "time ranges cannot filter a nearness search; filter by equality instead",
            )


def parse_filter(spec: EntitySpec, raw: object) -> Query:
    """The list query a search's ``filter`` stands for (the list parameters' vocabulary and
    validation: keyspace.query.parse), or ValidationFailed naming ``filter.<parameter>``."""
    params = filter_params(raw)
    try:
        query = parse(spec, params)
    except ValidationFailed as exc:
        details = [{**d, "field": f"filter.{d['field']}"} for d in exc.details or []]
        raise ValidationFailed(f"filter.{exc.message}", details=details) from None
    check_filter(query)
    return query


# --- scores ----------------------------------------------------------------------------------


def distance(a: Sequence[float], b: Sequence[float]) -> float:
    """The cosine distance of two unit vectors, rounded to :data:`DIGITS` places."""
    dot = math.fsum(map(operator.mul, a, b))  # correctly rounded: one value on every path
    return round(min(2.0, max(0.0, 1.0 - dot)), DIGITS)


def rank(
    spec: EntitySpec, field: Indexed, unit: Sequence[float], docs: Iterable[dict[str, Any]], k: int
) -> list[Scored]:
    """The ``k`` of ``docs`` nearest ``unit`` with their scores, by (score, id); documents
    whose vector has no direction are skipped."""
    scored = []
    for doc in docs:
        other = direction(get_path(doc, field.path), field.dim)
        if other is not None:
            scored.append((distance(unit, other), str(doc[spec.id_field]), doc))
    return [(doc, score) for score, _, doc in heapq.nsmallest(k, scored, key=lambda s: s[:2])]


# --- the index's candidates ------------------------------------------------------------------


def pack(unit: Sequence[float]) -> bytes:
    """A query vector as the index takes it: little-endian float32."""
    return struct.pack(f"<{len(unit)}f", *unit)


def _prefilter(spec: EntitySpec, query: Query) -> str:
    text, filters = compile_search(spec, query)
    assert not filters, "check_filter refuses what a pre-filter cannot hold"
    return text


def _ordered(spec: EntitySpec, count: int) -> list[str | bytes]:
    by = spec.id_index.name
    return ["SORTBY", "4", f"@{SCORE}", "ASC", f"@{by}", "ASC", "MAX", str(count)]


def knn_args(
    index: str, spec: EntitySpec, field: Indexed, query: Query, count: int, blob: bytes
) -> list[str | bytes]:
    """FT.AGGREGATE arguments: the ``count`` nearest that pass ``query``'s filters, by
    (distance, id), each row holding its id and distance."""
    text = _prefilter(spec, query)
    where = "*" if text == "*" else f"({text})"
    knn = f"{where}=>[KNN $k @{field.name} $vec AS {SCORE}]"
    params: list[str | bytes] = ["PARAMS", "4", "k", str(count), "vec", blob]
    return ["FT.AGGREGATE", index, knn, "VERBATIM", *params, *_ordered(spec, count), *DIALECT]


def range_args(
    index: str,
    spec: EntitySpec,
    field: Indexed,
    query: Query,
    radius: float,
    blob: bytes,
    count: int,
) -> list[str | bytes]:
    """FT.AGGREGATE arguments: the first ``count`` by (distance, id) of those that pass
    ``query``'s filters within ``radius``."""
    text = _prefilter(spec, query)
    where = "" if text == "*" else f"({text}) "
    near = f"{where}@{field.name}:[VECTOR_RANGE $r $vec]=>{{$YIELD_DISTANCE_AS: {SCORE}}}"
    params: list[str | bytes] = ["PARAMS", "4", "r", repr(radius), "vec", blob]
    return ["FT.AGGREGATE", index, near, "VERBATIM", *params, *_ordered(spec, count), *DIALECT]


@dataclass(frozen=True)
class Hit:
    """One row of the index's answer: an id and the index's (float32) distance."""

    doc_id: str
    distance: float


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def hits(spec: EntitySpec, reply: Sequence[Any]) -> list[Hit]:
    """The rows of :func:`knn_args`' or :func:`range_args`' reply, in order."""
    out = []
    for row in reply[1:]:
        fields = [_text(v) for v in row]
        found = dict(zip(fields[::2], fields[1::2], strict=True))
        doc_id, value = found.get(spec.id_index.name), found.get(SCORE)
        if doc_id is None or value is None:
            continue
        number = float(value)
        if math.isfinite(number):
            out.append(Hit(doc_id, number))
    return out


def contenders(found: Sequence[Hit], k: int) -> list[Hit]:
    """Of the index's nearest (in its order), those that may be among the exact ``k``
    nearest: up to the k-th, and any within :data:`BAND` past it. More than ``k`` of them
    from a k + 1 query means the band may hold more (:func:`crowded`)."""
    if len(found) <= k:
        return list(found)
    edge = found[k - 1].distance + BAND
    return [h for h in found if h.distance <= edge]


def crowded(found: Sequence[Hit], k: int) -> float | None:
    """The radius to ask for everything near the k-th place, when the index's k + 1 nearest
    put the last within :data:`BAND` of the k-th; else None (the k are the contenders)."""
    if len(found) <= k or found[k].distance > found[k - 1].distance + BAND:
        return None
    return found[k - 1].distance + BAND
