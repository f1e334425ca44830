"""Search projections: what the index sees of a document, computed by the service.

RediSearch tokenizes text on ASCII punctuation, spaces and tabs only and lower-cases
only ASCII letters, so indexing raw text would make a word next to a line break or
a non-breaking space unfindable, and most non-ASCII words case-sensitive. An entity
with full-text or case-insensitive fields is therefore indexed through a projection:
a small JSON document under its own key (:func:`keyspace.keys.projection_key`)
holding every indexed field by name, text already split into folded words
(:func:`keyspace.text.terms`) and case-insensitive tags folded
(:func:`keyspace.text.fold`). The search module then only has to split on spaces,
which every version does alike.

Booleans and decimals are projected too: a boolean as the tag ``"true"``/``"false"``, a
decimal (stored as a canonical string, which a NUMERIC attribute cannot index: the server
skips the whole document) as its double, exact in order within 15 significant digits
(:data:`keyspace.fieldtypes.INDEX_DIGITS`). So is every entity with a nullable indexed field,
and a projection leaves nulls out. (The embedded server's RediSearch 2.10 skips a JSON null
attribute and keeps the document; releases before RediSearch PR 2645, 2022, refused the whole
document, and until PR 3488, 2023, a null could be indexed as the number 0.)

A vector is projected as its unit vector (:func:`keyspace.fieldtypes.direction`), each member
to 9 significant digits (what a float32, the index's type, holds), and left out when it has
no direction (all zeros): RediSearch would give such a vector a NaN cosine distance, which
takes a place among the k nearest. So every entity with an indexed vector is projected.

A sensitive field (keyspace.sealing) is projected too: a sealed value as its blind token
(``enc:<hex>``, from the stored string: no key needed), a plaintext one (a keyspace without
a key, or not yet converted) as any tag of its kind. So every entity with an indexed
sensitive field is projected, and the index never holds its plaintext once it is sealed.

A time field (one value, not an array) is projected with a numeric shadow beside its text:
``_us_<name>``, microseconds since 1970-01-01 of the stored naive-UTC timestamp, so a time
range is a numeric range the index answers from its range tree rather than a string FILTER
evaluated on every candidate (keyspace.pages). Every canonical value (exactly what
:func:`keyspace.codec.normalize_iso` makes of it: what the service stores) has one. Within
2^53 microseconds of 1970 (years 1685 to 2255) the index's double holds it exactly, so text
order and numeric order agree exactly; beyond, the double rounds it by a few microseconds,
never across 2^53 and never out of order, so a range whose bounds lie within those years
still selects exactly (a bound outside them is compared as text, keyspace.query). Any
other stored value (written around the service) is marked ``_odd_<name>: "1"`` instead,
and a query that meets such a mark falls back to the string FILTER, so it lists exactly as
before. So every entity with a time field is projected.

An entity with a ranked field (keyspace.ranks) is projected too, so the reprojection that
an upgrade and ``check --repair`` run brings its rankings in line as well.

The projection is written in the same commit as its document and deleted with it.
The scan path evaluates queries on :func:`index_value` too, so both paths answer
from one definition. Entities without such fields index their documents directly.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from .codec import normalize_iso
from .crypto import parse_sealed
from .fieldtypes import direction
from .schema import EntitySpec, FieldKind, Indexed, get_path
from .text import fold, nfc, terms


def folds(field: Indexed) -> bool:
    """True when the index must not see the field's raw value."""
    return field.kind is FieldKind.TEXT or (
        field.kind is FieldKind.TAG and not field.case_sensitive
    )


_CONVERTED = (FieldKind.BOOL, FieldKind.DECIMAL, FieldKind.VECTOR)
SHADOW = "_us_"  # a time field's numeric shadow; no declared field starts with "_"
ODD = "_odd_"  # marks a stored time value without a shadow
_EPOCH = datetime(1970, 1, 1)
_EXACT = 2**53  # integers a double holds exactly: the index compares shadows as doubles


def shadowed(field: Indexed) -> bool:
    """True when ``field`` has a numeric shadow in the projection (a one-valued time)."""
    return field.kind is FieldKind.TIME and not field.array


def epoch_micros(canonical: str) -> int:
    """Microseconds since 1970 of a timestamp in the stored naive-UTC form."""
    delta = datetime.fromisoformat(canonical) - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def micros_time(micros: int) -> str:
    """The canonical timestamp ``micros`` microseconds after 1970 (:func:`epoch_micros`'s
    inverse)."""
    return normalize_iso((_EPOCH + timedelta(microseconds=micros)).isoformat())


def shadow(value: Any) -> int | None:
    """The shadow of a stored time value; None for one that is not canonical (it is marked
    odd instead). A valid far date (2300) has one too: one such document must not send
    every time range of its entity to the string FILTERs (review 19b)."""
    if not isinstance(value, str):
        return None
    try:
        if normalize_iso(value) != value:
            return None
    except ValueError:
        return None
    return epoch_micros(value)


def exact(micros: int) -> bool:
    """True when the index's double holds ``micros`` exactly (years 1685 to 2255)."""
    return -_EXACT < micros < _EXACT


_T = TypeVar("_T")
_PerSpec = dict[int, tuple[weakref.ref[EntitySpec], _T]]


def _per_spec(cache: _PerSpec[_T], spec: EntitySpec, make: Callable[[EntitySpec], _T]) -> _T:
    """``make(spec)``, kept while ``spec`` lives: every write asks, and a declaration never
    changes. Entries go with their specs (one built at run time, a test's), review 37."""
    known = cache.get(id(spec))
    if known is not None and known[0]() is spec:
        return known[1]
    value = make(spec)
    cache[id(spec)] = (weakref.ref(spec), value)
    weakref.finalize(spec, cache.pop, id(spec), None)
    return value


def _projected(spec: EntitySpec) -> bool:
    return any(
        folds(f) or f.kind in _CONVERTED or f.nullable or f.sensitive or shadowed(f) or f.ranked
        for f in spec.fields
    )


_PROJECTED: _PerSpec[bool] = {}


def projected(spec: EntitySpec) -> bool:
    """True when ``spec`` is indexed through projections rather than its documents."""
    return _per_spec(_PROJECTED, spec, _projected)


def _one(field: Indexed, value: Any) -> Any:
    if field.sensitive and (sealed := parse_sealed(value)) is not None:
        return sealed.token
    if field.kind is FieldKind.BOOL and isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, str):
        return value
    if field.kind is FieldKind.DECIMAL:
        # The only place a decimal becomes a float: the index orders numbers as doubles.
        return float(value)
    if field.kind is FieldKind.TEXT:
        return " ".join(terms(value))
    if field.kind is FieldKind.TAG and not field.case_sensitive:
        return fold(value)
    return value


def _vector(field: Indexed, value: Any) -> list[float] | None:
    unit = direction(value, field.dim)
    return None if unit is None else [float(f"{v:.9g}") for v in unit]


def index_value(field: Indexed, value: Any) -> Any:
    """The value the index holds for ``field`` when the document holds ``value`` (None:
    nothing, a vector without direction)."""
    if field.kind is FieldKind.VECTOR:
        return _vector(field, value)
    if isinstance(value, list):
        return [_one(field, v) for v in value]
    return _one(field, value)


def query_value(field: Indexed, value: str) -> str:
    """An equality value as compared with :func:`index_value`: stored text is NFC, so the
    value is too; case-insensitive tags compare folded."""
    return fold(value) if field.kind is FieldKind.TAG and not field.case_sensitive else nfc(value)


def _kept(field: Indexed) -> bool:
    """True when :func:`index_value` holds every value of ``field`` as stored (a list as a
    copy): the case-sensitive tags, numbers and times that most fields are."""
    if field.sensitive:
        return False
    kind = field.kind
    return (
        kind is FieldKind.NUMERIC
        or kind is FieldKind.TIME
        or (kind is FieldKind.TAG and field.case_sensitive)
    )


# One step of a projection: the field's name, its path, whether the path has a dot, the field
# when its value needs index_value (None: kept as stored) and whether it has a time shadow.
_Step = tuple[str, str, bool, Indexed | None, bool]


def _compile(spec: EntitySpec) -> tuple[_Step, ...]:
    # Shadows of the declared fields (not of the id entry first), each one's however its
    # name repeats.
    return tuple(
        (f.name, f.path, "." in f.path, None if _kept(f) else f, bool(at) and shadowed(f))
        for at, f in enumerate((spec.id_index, *spec.fields))
    )


_STEPS: _PerSpec[tuple[_Step, ...]] = {}


def project(spec: EntitySpec, doc: Mapping[str, Any]) -> dict[str, Any]:
    """The projection of ``doc``: indexed fields by name, the id field first, then the time
    shadows and odd marks."""
    out: dict[str, Any] = {}
    marks: dict[str, Any] = {}
    plain = type(doc) is dict
    for name, path, dotted, converted, shadows in _per_spec(_STEPS, spec, _compile):
        value = doc.get(path) if plain and not dotted else get_path(doc, path)
        if value is None:
            continue
        if shadows:
            micros = shadow(value)
            if micros is None:
                marks[ODD + name] = "1"
            else:
                marks[SHADOW + name] = micros
        if name in out:
            continue
        if converted is None:
            out[name] = list(value) if isinstance(value, list) else value
        elif (shown := index_value(converted, value)) is not None:
            out[name] = shown
    if marks:
        out.update(marks)
    return out
