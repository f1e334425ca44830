"""The OpenAPI of ``GET /api/changes`` (app/changes.py): its parameters, the Last-Event-ID
header, and its two media types: ``text/event-stream`` and a JSON page."""

from __future__ import annotations

from typing import Any

from .changes import DEFAULT_LIMIT, EVENT_STREAM, JSON, MAX_LIMIT, MAX_WAIT, event_schema

PATH = "/api/changes"

EVENT_ID = {"type": "string", "pattern": r"^[0-9]{1,20}(-[0-9]{1,20})?$"}  # <ms> alone: <ms>-0


def components(out: dict[str, Any]) -> None:
    out["ChangeEvent"] = dict(event_schema())
    out["ChangePage"] = {
        "type": "object",
        "required": ["events", "last_id"],
        "properties": {
            "events": {"type": "array", "items": {"$ref": "#/components/schemas/ChangeEvent"}},
            "last_id": {
                "type": ["string", "null"],
                "description": "the id read up to (events of other collections included): "
                "send it back as since for the next page",
            },
        },
    }


PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "collections",
        "in": "query",
        "required": False,
        "description": "comma-separated collections (default: every one the caller may read); "
        "an unknown one is 400, one only admins read asked for by a member 403",
        "schema": {"type": "string"},
    },
    {
        "name": "since",
        "in": "query",
        "required": False,
        "description": "an event id: the events after it (Last-Event-ID wins when both are "
        "sent). Without either, a stream starts with new events and a JSON page with the "
        "oldest kept. 410 gone when events after it were trimmed, or when it is past the "
        "newest event the feed ever had (an id it never gave)",
        "schema": EVENT_ID,
    },
    {
        "name": "wait",
        "in": "query",
        "required": False,
        "description": f"JSON page only: seconds (0 to {MAX_WAIT}) to wait for an event when "
        "there is none yet (long poll)",
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_WAIT, "default": 0},
    },
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": "JSON page only: events per page",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    },
    {
        "name": "Last-Event-ID",
        "in": "header",
        "required": False,
        "description": "the id of the last event received: resume after it (EventSource sends "
        "it when it reconnects)",
        "schema": EVENT_ID,
    },
    {
        "name": "Accept",
        "in": "header",
        "required": False,
        "description": f"{JSON} for a JSON page; anything else ({EVENT_STREAM}) for a stream",
        "schema": {"type": "string"},
    },
]


def amend(op: dict[str, Any]) -> None:
    """Add the feed's parameters and media types to the operation built from its Route."""
    op["parameters"] = [*PARAMETERS, *op["parameters"]]
    ok = op["responses"]["200"]
    ok["description"] = (
        "Server-Sent Events (id: the event id, event: change, data: the event as JSON; "
        "': keep-alive' comments while idle), or a JSON page when asked for"
    )
    ok["content"] = {
        # Each server-sent event as its fields (``data``: one event of ChangePage, as JSON).
        EVENT_STREAM: {
            "schema": {
                "type": "object",
                "properties": {
                    "id": EVENT_ID,
                    "event": {"type": "string", "enum": ["change"]},
                    "data": {"type": "string", "contentMediaType": JSON},
                },
            }
        },
        JSON: {"schema": {"$ref": "#/components/schemas/ChangePage"}},
    }
    op["responses"]["410"]["description"] = (
        "Gone (code gone): events after since / Last-Event-ID were trimmed from the feed, or "
        "the id is past the newest event the feed ever had (details.newest_id: an id this "
        "feed never gave). Re-read what you mirror, then follow without since: a JSON page "
        "then starts with the oldest event kept (details.oldest_id, null when none is)"
    )
