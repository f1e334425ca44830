"""OpenAPI of the batch create (app.batch): a collection's POST takes an object or an array
of up to ``MAX_BATCH`` objects, and answers the document or the array of documents."""

from __future__ import annotations

import copy
from typing import Any

from keyspace import MAX_BATCH, System

REF = "#/components/schemas/{model}"

BATCH_SCHEMAS: dict[str, Any] = {
    "BatchRefusal": {
        "type": "object",
        "description": "One refused item of a batch create (an array body): nothing was written.",
        "required": ["index", "status", "code", "message"],
        "properties": {
            "index": {"type": "integer", "minimum": 0, "description": "0-based, in the array"},
            "status": {"type": "integer", "description": "what a single create would answer"},
            "code": {"type": "string"},
            "field": {"type": "string"},
            "with_index": {
                "type": "integer",
                "description": "the other item of the batch it conflicts with (same id, same "
                "unique value, or a reference to a document the batch creates)",
            },
            "message": {"type": "string"},
            "details": {},
        },
    },
}


REFUSED = (403, 409, 422)
"""The statuses a batch is refused with per item (its first refusal's)."""


def is_create(system: System, method: str, path: str) -> bool:
    return method == "POST" and any(
        path == f"/api/{spec.collection}" for spec in system.schema.entities
    )


def batched(op: dict[str, Any]) -> None:
    """Widen a collection's create operation ``op`` to take an array too."""
    body = op["requestBody"]["content"]["application/json"]
    one = body["schema"]
    body["schema"] = {
        "oneOf": [
            one,
            {"type": "array", "items": copy.deepcopy(one), "minItems": 1, "maxItems": MAX_BATCH},
        ]
    }
    op["requestBody"]["description"] = (
        f"One document, or an array of 1 to {MAX_BATCH} created all or none in one script "
        "(more: 413, none: 400 empty_batch); a batch counts as one write against the rate limits"
    )
    created = op["responses"]["201"]
    content = created["content"]["application/json"]
    doc = content["schema"]
    content["schema"] = {"oneOf": [doc, {"type": "array", "items": copy.deepcopy(doc)}]}
    created["description"] = (
        "Created: the document (with ETag and Location), or for an array body the documents "
        "in the order sent (no ETag or Location: read each by its id)"
    )
    for status in REFUSED:
        response = op["responses"].get(str(status))
        if response is not None:
            response["description"] += (
                "; for an array body, details lists every refused item (BatchRefusal)"
            )


def schemas(components: dict[str, Any]) -> dict[str, Any]:
    """``components`` with BatchRefusal, and the Error's details saying when they hold it."""
    out = components | copy.deepcopy(BATCH_SCHEMAS)
    error = copy.deepcopy(out["Error"])
    error["properties"]["error"]["properties"]["details"] = {
        "description": "what the code concerns; for a batch create refused per item (an "
        "array body), one BatchRefusal per refused item",
        "anyOf": [{"type": "array", "items": {"$ref": REF.format(model="BatchRefusal")}}, {}],
    }
    out["Error"] = error
    return out
