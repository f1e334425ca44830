"""OpenAPI of the nearness search routes (``POST /api/<collection>/search``,
app.resources.Nearest; keyspace.vectors): the request body, whose filters mirror the list's,
and the answer with its scores. One route kind's schemas apart, as openapi_aggregate.py's:
app/openapi.py composes the kinds."""

from __future__ import annotations

from typing import Any

from keyspace import EntitySpec, FieldKind, vectors

from .routing import search_body

REF = "#/components/schemas/{model}"  # app.openapi's too, which imports this module

_FILTER_VALUE: dict[str, Any] = {"type": ["string", "number", "boolean"]}


def components(spec: EntitySpec, out: dict[str, Any]) -> None:
    """Into ``out``, the request and response of ``spec``'s nearness search; nothing for an
    entity without a vector field."""
    field = spec.vector_field
    if field is None:
        return
    name = spec.model.__name__
    filters: dict[str, Any] = {}
    for f in spec.fields:
        if f.kind in (FieldKind.TEXT, FieldKind.VECTOR):
            continue
        filters[f.name] = {
            "anyOf": [_FILTER_VALUE, {"type": "array", "items": _FILTER_VALUE, "minItems": 1}],
            "description": "equals (an array: any of)",
        }
        if f.kind in (FieldKind.NUMERIC, FieldKind.DECIMAL):
            for bound in ("min", "max"):
                filters[f"{f.name}_{bound}"] = {
                    **_FILTER_VALUE,
                    "description": f"inclusive {bound}imum",
                }
    if spec.text_fields:
        filters["q"] = {"type": "string", "description": "full-text terms, all required"}
    out[search_body(spec)] = {
        "type": "object",
        "required": ["vector"],
        "additionalProperties": False,
        "properties": {
            "vector": {
                "type": "array",
                "items": {"type": "number"},
                "minItems": field.dim,
                "maxItems": field.dim,
                "description": f"{field.dim} finite numbers, not all zero, compared with "
                f"{field.name} by cosine distance",
            },
            "k": {
                "type": "integer",
                "minimum": 1,
                "maximum": vectors.MAX_K,
                "default": vectors.DEFAULT_K,
            },
            "filter": {
                "type": "object",
                "additionalProperties": False,
                "properties": filters,
                "description": "the list's filters (the same names, values and validation), "
                "applied before the nearest are chosen; time ranges are refused",
            },
        },
    }
    out[f"{name}Neighbours"] = {
        "type": "object",
        "required": ["items", "scores"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": REF.format(model=name)}},
            "scores": {
                "type": "array",
                "items": {"type": "number", "minimum": 0, "maximum": 2},
                "description": f"scores[i] is the cosine distance (1 - cos) of items[i], rounded "
                f"to {vectors.DIGITS} decimal places; nearest first, ties by id",
            },
        },
    }
