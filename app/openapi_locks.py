"""OpenAPI schemas of the lock and operation-log routes (app/routes.py ``lock_routes`` and
``oplog_routes``; keyspace.locks and keyspace.oplog), added for systems that declare them."""

from __future__ import annotations

from typing import Any

REF = "#/components/schemas/{model}"


def integer(minimum: int) -> dict[str, Any]:
    """An integer from ``minimum`` to 2^53 - 1 (exact in every JSON client)."""
    return {"type": "integer", "minimum": minimum, "maximum": 2**53 - 1}


LOCK_SCHEMAS: dict[str, Any] = {
    "LockRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "operation": {
                "type": "string",
                "pattern": r"^[A-Za-z][A-Za-z0-9_.\-]{0,63}$",
                "default": "editing",
            }
        },
    },
    "LockRefresh": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"fencing_token": integer(1)},
    },
    "Lock": {
        "type": "object",
        "required": ["holder", "fencing_token", "expires_in", "operation", "locked_at"],
        "properties": {
            "holder": {"type": "string", "description": "the user id holding the lock"},
            "fencing_token": {
                **integer(1),
                "description": "larger than every earlier lock's of this document",
            },
            "expires_in": {
                "type": ["integer", "null"],
                "description": "seconds left, rounded up",
            },
            "operation": {"type": "string"},
            "locked_at": {"type": "string", "format": "date-time"},
        },
    },
}
OP_INPUT: dict[str, Any] = {
    "type": "object",
    "required": ["operation", "position"],
    "additionalProperties": False,
    "properties": {
        "operation": {"type": "string", "enum": ["insert", "delete", "retain"]},
        "position": integer(0),
        "content": {
            "type": ["string", "null"],
            "maxLength": 65536,
            "description": "required (not empty) for an insert",
        },
        "user_id": {"type": "string", "description": "the caller's id (set by the server)"},
    },
}
OP_SCHEMAS: dict[str, Any] = {
    "OpInput": OP_INPUT,
    "OpAppend": {
        "oneOf": [
            {
                **OP_INPUT,
                "properties": {**OP_INPUT["properties"], "fencing_token": integer(1)},
            },
            {"type": "array", "items": {"$ref": REF.format(model="OpInput")}, "minItems": 1},
            {
                "type": "object",
                "required": ["ops"],
                "additionalProperties": False,
                "properties": {
                    "ops": {
                        "type": "array",
                        "items": {"$ref": REF.format(model="OpInput")},
                        "minItems": 1,
                        "maxItems": 1000,
                    },
                    "fencing_token": integer(1),
                },
            },
        ]
    },
    "OpAppended": {
        "type": "object",
        "required": ["seqs", "timestamp"],
        "properties": {
            "seqs": {"type": "array", "items": integer(1)},
            "timestamp": {"type": "string", "format": "date-time"},
        },
    },
    "Op": {
        "type": "object",
        "required": ["seq", "user_id", "operation", "position", "content", "timestamp"],
        "properties": {
            "seq": integer(1),
            "user_id": {"type": "string"},
            "operation": {"type": "string", "enum": ["insert", "delete", "retain"]},
            "position": integer(0),
            "content": {"type": ["string", "null"]},
            "timestamp": {"type": "string", "format": "date-time"},
        },
    },
    "OpPage": {
        "type": "object",
        "required": ["items", "oldest_seq", "latest_seq"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": REF.format(model="Op")}},
            "oldest_seq": {
                **integer(1),
                "description": "the oldest kept entry's number (latest_seq + 1: none kept)",
            },
            "latest_seq": integer(0),
        },
    },
}
