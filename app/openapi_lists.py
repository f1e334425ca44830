"""OpenAPI of list queries (keyspace.query): the parameters every list of an entity takes,
shared by the list, relation, aggregate and view routes."""

from __future__ import annotations

from typing import Any

from keyspace import COUNTS, DEFAULT_LIMIT, MAX_LIMIT, EntitySpec, FieldKind

_KINDS: dict[FieldKind, dict[str, Any]] = {
    FieldKind.NUMERIC: {"type": "number"},
    # Exact decimals travel as strings, compared by value.
    FieldKind.DECIMAL: {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"},
}


def list_parameters(spec: EntitySpec) -> list[dict[str, Any]]:
    """The query parameters of ``spec``'s list: its filters, q, sort, limit, cursor and
    count."""
    params: list[dict[str, Any]] = []
    for f in spec.fields:
        if f.kind in (FieldKind.TEXT, FieldKind.VECTOR):  # q; a search's vector
            continue
        kind = _KINDS.get(f.kind, {"type": "string", "minLength": 1})
        params.append(
            {
                "name": f.name,
                "in": "query",
                "required": False,
                "description": "equals (repeat for any-of)",
                "schema": {"type": "array", "items": kind},
                "style": "form",
                "explode": True,
            }
        )
        if f.kind in (FieldKind.NUMERIC, FieldKind.DECIMAL, FieldKind.TIME):
            for bound in ("min", "max"):
                params.append(
                    {
                        "name": f"{f.name}_{bound}",
                        "in": "query",
                        "required": False,
                        "description": f"inclusive {bound}imum",
                        "schema": kind,
                    }
                )
    if spec.text_fields:
        params.append(
            {
                "name": "q",
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": "full-text terms, all required: "
                + ", ".join(f.path for f in spec.text_fields),
            }
        )
    sortable = [f.name for f in spec.fields if f.sortable]
    params += [
        {
            "name": "sort",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "enum": sortable + [f"-{n}" for n in sortable]},
        },
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "description": f"page size; larger values are capped at {MAX_LIMIT}",
            "schema": {"type": "integer", "minimum": 1, "default": DEFAULT_LIMIT},
        },
        {
            "name": "cursor",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "next_cursor of the previous page",
        },
        {
            "name": "count",
            "in": "query",
            "required": False,
            "description": "exact: total counts every match (a pass over all of them, on "
            "every page); none: total is null and the page costs only its own rows",
            "schema": {"type": "string", "enum": list(COUNTS), "default": "exact"},
        },
    ]
    return params
