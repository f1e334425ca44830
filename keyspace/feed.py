"""Reading the change feed (keyspace.changes): its state, a page after an event id, and the
blocking read the API's fan-out runs. Reads go to the primary, which the commits wrote."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from .changes import MAX_PART, EventId, event_of, format_id, parse_id
from .connection import call

PAGE = 500  # entries per XRANGE while paging through history


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(reply: Any) -> dict[str, Any]:
    if isinstance(reply, Mapping):
        return {_text(k): v for k, v in reply.items()}
    return {_text(k): v for k, v in zip(reply[::2], reply[1::2], strict=True)}


async def info(client: Redis, key: str) -> dict[str, Any]:
    """XINFO STREAM of the feed as text keys; empty when the feed has no stream yet."""
    try:
        reply = await call(client, "XINFO", "STREAM", key)
    except ResponseError as exc:
        if "no such key" in str(exc).lower():
            return {}
        raise
    return _pairs(reply)


def last_id(state: Mapping[str, Any]) -> EventId:
    """The id of the newest event ever appended (0-0 for none), from :func:`info`."""
    return parse_id(_text(state.get("last-generated-id") or "0-0"))


def _events(entries: Sequence[Any]) -> list[dict[str, Any]]:
    return [event_of(entry[0], entry[1]) for entry in entries]


async def after(
    client: Redis, key: str, since: EventId | None, count: int = PAGE
) -> list[dict[str, Any]]:
    """Up to ``count`` events after ``since`` (None: from the oldest kept), oldest first."""
    if since == (MAX_PART, MAX_PART):
        return []  # no id follows it (and Redis refuses an exclusive range from it)
    start = "-" if since is None else "(" + format_id(since)
    return _events(await call(client, "XRANGE", key, start, "+", "COUNT", count))


async def read_new(
    client: Redis, key: str, since: EventId, block_ms: int, count: int = 1000
) -> list[dict[str, Any]]:
    """The events after ``since``, waiting up to ``block_ms`` for one to arrive (XREAD BLOCK:
    a pooled connection of its own for that long, never the pipelined one)."""
    reply = await call(
        client, "XREAD", "COUNT", count, "BLOCK", block_ms, "STREAMS", key, format_id(since)
    )
    if not reply:
        return []
    streams = reply.items() if isinstance(reply, Mapping) else reply
    return [event for _, entries in streams for event in _events(entries)]


async def restart(client: Redis, key: str) -> None:
    """Begin the feed anew after a command rewrote the data it describes (reset, restore):
    one entry appended, then the stream trimmed to nothing with its ``max-deleted-entry-id``
    set to that entry (XTRIM leaves it alone), so a consumer resuming from any id before is
    answered 410 ``gone`` (re-read everything), never a silent gap; keyspace.changes reads an
    emptied stream as trimmed up to its last id where the server cannot record it. The entry
    is shaped as an event of no collection, so nothing that meets it can mistake it for a
    change. The command holds the pause meanwhile: no commit appends between the steps."""
    fields = {"op": "restart", "collection": "", "id": "", "rev": "", "at": ""}
    fields["at"] = str(int(time.time() * 1000))
    added = await client.xadd(key, fields)  # type: ignore[arg-type]
    await call(client, "XTRIM", key, "MAXLEN", "0")
    with contextlib.suppress(ResponseError):  # no MAXDELETEDID (fakeredis): the fallback rule
        await call(client, "XSETID", key, added, "MAXDELETEDID", added)
