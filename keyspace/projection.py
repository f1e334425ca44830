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

The projection is written in the same commit as its document and deleted with it.
The scan path evaluates queries on :func:`index_value` too, so both paths answer
from one definition. Entities without such fields index their documents directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .schema import EntitySpec, FieldKind, Indexed, get_path
from .text import fold, nfc, terms


def folds(field: Indexed) -> bool:
    """True when the index must not see the field's raw value."""
    return field.kind is FieldKind.TEXT or (
        field.kind is FieldKind.TAG and not field.case_sensitive
    )


def projected(spec: EntitySpec) -> bool:
    """True when ``spec`` is indexed through projections rather than its documents."""
    return any(folds(f) for f in spec.fields)


def _one(field: Indexed, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if field.kind is FieldKind.TEXT:
        return " ".join(terms(value))
    if field.kind is FieldKind.TAG and not field.case_sensitive:
        return fold(value)
    return value


def index_value(field: Indexed, value: Any) -> Any:
    """The value the index holds for ``field`` when the document holds ``value``."""
    if isinstance(value, list):
        return [_one(field, v) for v in value]
    return _one(field, value)


def query_value(field: Indexed, value: str) -> str:
    """An equality value as compared with :func:`index_value`: stored text is NFC, so the
    value is too; case-insensitive tags compare folded."""
    return fold(value) if field.kind is FieldKind.TAG and not field.case_sensitive else nfc(value)


def project(spec: EntitySpec, doc: Mapping[str, Any]) -> dict[str, Any]:
    """The projection of ``doc``: indexed fields by name, the id field first."""
    out: dict[str, Any] = {}
    for field in (spec.id_index, *spec.fields):
        value = get_path(doc, field.path)
        if value is not None and field.name not in out:
            out[field.name] = index_value(field, value)
    return out
