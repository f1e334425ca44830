"""OpenAPI schemas of the admin routes (app/admin_routes.py), served by every system."""

from __future__ import annotations

from typing import Any

from .openapi_locks import integer

_FIELDS: dict[str, Any] = {
    "version": integer(1),
    "description": {"type": "string"},
    "collection": {"type": "string"},
    "kind": {"type": "string", "enum": ["index", "data"]},
}
_MIGRATION: dict[str, Any] = {"type": "object", "required": list(_FIELDS), "properties": _FIELDS}
_APPLIED: dict[str, Any] = {
    "type": "object",
    "required": [*_FIELDS, "applied_at", "documents"],
    "properties": {
        **_FIELDS,
        "applied_at": {"type": "string", "description": "UTC, the seed's naive form"},
        "documents": {**integer(0), "description": "documents the migration changed"},
    },
}

ADMIN_SCHEMAS: dict[str, Any] = {
    "MigrationStatus": {
        "type": "object",
        "required": ["applied", "pending", "unknown", "malformed", "running", "locked_by"],
        "properties": {
            "applied": {"type": "array", "items": _APPLIED},
            "pending": {"type": "array", "items": _MIGRATION, "description": "version order"},
            "unknown": {
                "type": "array",
                "items": _APPLIED,
                "description": "recorded but not declared by this release",
            },
            "malformed": {"type": "array", "items": {"type": "string"}},
            "running": {
                "type": "array",
                "description": "resume points of data migrations begun and not yet recorded",
                "items": {
                    "type": "object",
                    "properties": {
                        "version": integer(1),
                        "cursor": integer(0),
                        "examined": integer(0),
                        "converted": integer(0),
                        "scanned": {"type": "boolean"},
                    },
                },
            },
            "locked_by": {
                "type": ["string", "null"],
                "description": "who holds the migrate lock (a run in progress), if anyone",
            },
            "last_run": {
                "type": ["object", "null"],
                "description": "the last run this process started",
                "properties": {
                    "state": {"type": "string", "enum": ["running", "done", "failed"]},
                    "started_at": {"type": "string"},
                    "finished_at": {"type": ["string", "null"]},
                    "applied": {"type": "array", "items": integer(1)},
                    "error": {"type": ["string", "null"]},
                },
            },
        },
    },
    "SeedResult": {
        "type": "object",
        "required": ["created", "present", "differing"],
        "properties": {
            "created": integer(0),
            "present": integer(0),
            "differing": {
                "type": "array",
                "items": {"type": "string"},
                "description": "keys left as they are: they differ from the demo record",
            },
        },
    },
}
