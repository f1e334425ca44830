"""OpenAPI of the aggregate routes (``GET /api/<collection>/aggregate``, app/aggregates.py;
keyspace.aggregate): their query parameters and answer schemas."""

from __future__ import annotations

from typing import Any

from keyspace import (
    MAX_COMMANDS,
    MAX_GROUP_FIELDS,
    MAX_GROUPS,
    MAX_METRICS,
    EntitySpec,
    FieldKind,
    Indexed,
    group_fields,
    metric_fields,
)

from .routing import aggregate_schema

_DECIMAL = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}


def parameters(spec: EntitySpec, listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``group_by``, ``metrics``, ``limit`` and ``order``, then the filters of the list's parameters
    ``listed`` (its sort, limit and cursor left out)."""
    filters = [p for p in listed if p["name"] not in ("sort", "limit", "cursor", "count")]
    groups = [f.name for f in group_fields(spec)]
    numbers = [f.name for f in metric_fields(spec)]
    return [
        {
            "name": "group_by",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": f"up to {MAX_GROUP_FIELDS} comma-separated fields of "
            f"{', '.join(groups) or 'none'}; groups are ordered by their key, field by field "
            "(see order; null or missing values form their own group); none: one group",
        },
        {
            "name": "metrics",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "default": "count"},
            "description": f"up to {MAX_METRICS} comma-separated metrics: count, "
            f"sum:<field>, min:<field>, max:<field>, avg:<field> for a field of "
            f"{', '.join(numbers) or 'none'}; exact (decimals as strings with their places); at "
            f"most {MAX_COMMANDS} index commands: 2^(decimal group fields) x (1 + measured "
            "fields)",
        },
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "description": f"groups answered; larger values are capped at {MAX_GROUPS}",
            "schema": {"type": "integer", "minimum": 1, "default": MAX_GROUPS},
        },
        {
            "name": "order",
            "in": "query",
            "required": False,
            "description": "asc: groups by key ascending, field by field, null first; desc: "
            "the exact reverse (null last), e.g. an order book's highest prices first. The "
            "first `limit` groups in that order are answered. Without group_by it has no "
            "effect",
            "schema": {"type": "string", "enum": ["asc", "desc"], "default": "asc"},
        },
        *filters,
    ]


def _key_schema(field: Indexed) -> dict[str, Any]:
    if field.kind is FieldKind.BOOL:
        return {"type": ["boolean", "null"]}
    if field.kind is FieldKind.NUMERIC:
        return {"type": ["integer", "null"]}
    if field.kind is FieldKind.DECIMAL:
        return {"anyOf": [_DECIMAL, {"type": "null"}]}
    return {"type": ["string", "null"]}


def component(spec: EntitySpec) -> dict[str, Any]:
    """The answer schema of ``spec``'s aggregate route."""
    keys = {f.name: _key_schema(f) for f in group_fields(spec)}
    metric = {
        "anyOf": [{"type": "number"}, _DECIMAL, {"type": "null"}],
        "description": "a metric named as asked (sum:<field>...): a NUMERIC's as a number, a "
        "decimal's as a string; null over no value",
    }
    title = aggregate_schema(spec)
    return {
        "title": title,
        "type": "object",
        "required": ["groups", "truncated"],
        "properties": {
            "groups": {
                "type": "array",
                "maxItems": MAX_GROUPS,
                "items": {
                    "type": "object",
                    "required": ["key"],
                    "properties": {
                        "key": {
                            "type": "object",
                            "properties": keys,
                            "additionalProperties": False,
                            "description": "the group's value of each group_by field",
                        },
                        "count": {"type": "integer", "minimum": 0},
                    },
                    "additionalProperties": metric,
                },
            },
            "truncated": {
                "type": "boolean",
                "description": "more groups exist than were answered",
            },
        },
    }
