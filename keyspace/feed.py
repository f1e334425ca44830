"""Reading the change feed (keyspace.changes): its state, a page after an event id, and the
blocking read the API's fan-out runs. Reads go to the primary, which the commits wrote."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from .changes import MAX_PART, EventId, event_of, format_id, parse_id, trimmed_past
from .connection import call

PAGE = 500  # entries per XRANGE while paging through history


class Trimmed(Exception):
    """Events after the id a read started from were trimmed before it could read them: what
    it read does not follow on from there (the consumer is told 410, never given a gap)."""


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


async def _followed_on(client: Redis, key: str, since: EventId) -> None:
    """Trimmed when events after ``since`` are trimmed by now. Asked after a read from
    ``since``: a trim only ever removes more, so when none after ``since`` is gone now, none
    was when the read ran, and the read followed on (review 38: a trim between a check and
    the read let a page start past removed events and answer 200). A trim after the read
    makes a 410 its consumer might have done without: never a silent gap."""
    if trimmed_past(since, await info(client, key)):
        raise Trimmed(format_id(since))


async def after(
    client: Redis, key: str, since: EventId | None, count: int = PAGE
) -> list[dict[str, Any]]:
    """Up to ``count`` events after ``since`` (None: from the oldest kept), oldest first;
    Trimmed when events after ``since`` were trimmed."""
    if since == (MAX_PART, MAX_PART):
        return []  # no id follows it (and Redis refuses an exclusive range from it)
    start = "-" if since is None else "(" + format_id(since)
    events = _events(await call(client, "XRANGE", key, start, "+", "COUNT", count))
    if since is not None:
        await _followed_on(client, key, since)
    return events


async def read_new(
    client: Redis, key: str, since: EventId, block_ms: int, count: int = 1000
) -> list[dict[str, Any]]:
    """The events after ``since``, waiting up to ``block_ms`` for one to arrive (XREAD BLOCK:
    a pooled connection of its own for that long, never the pipelined one); Trimmed when
    events after ``since`` were trimmed (a burst past the feed's cap between two reads)."""
    reply = await call(
        client, "XREAD", "COUNT", count, "BLOCK", block_ms, "STREAMS", key, format_id(since)
    )
    await _followed_on(client, key, since)
    if not reply:
        return []
    streams = reply.items() if isinstance(reply, Mapping) else reply
    return [event for _, entries in streams for event in _events(entries)]


async def restart(client: Redis, key: str) -> None:
    """Begin the feed anew after a command rewrote the data it describes (reset, restore;
    they keep the stream itself): in one transaction, one entry appended past every id the
    stream ever gave, the stream trimmed to nothing, and its ``max-deleted-entry-id`` set to
    that entry (XTRIM leaves it alone). A consumer resuming from any id before is answered 410
    ``gone`` (re-read everything), never a silent gap, and no reader can see the entry (nor
    take its id as a position). Where the server cannot record it (fakeredis),
    keyspace.changes reads an emptied stream as trimmed up to its last id. The entry is shaped
    as an event of no collection. The command holds the pause: nothing appends meanwhile."""
    ms = int(time.time() * 1000)
    last = last_id(await info(client, key))
    # Past the last id even when the clock is behind it (an NTP step, a failover's primary
    # whose clock ran ahead): a consumer holding that id must still be told.
    entry = format_id((ms, 0) if (ms, 0) > last else (last[0], last[1] + 1))
    fields = ["op", "restart", "collection", "", "id", "", "rev", "", "at", str(ms)]
    for record in (True, False):
        try:
            async with client.pipeline(transaction=True) as pipe:
                pipe.execute_command("XADD", key, entry, *fields)
                pipe.execute_command("XTRIM", key, "MAXLEN", "0")
                if record:
                    pipe.execute_command("XSETID", key, entry, "MAXDELETEDID", entry)
                await pipe.execute()
            return
        except ResponseError as exc:  # a server without XSETID refuses the whole transaction
            if not record or "xsetid" not in str(exc).lower():
                raise
