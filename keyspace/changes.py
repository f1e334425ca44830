"""The change feed's pure half: event ids, entries as read from the stream, SSE framing and
the cap. commit.lua appends the entries (``event``/``eventid``/``trim`` ops, added by
keyspace.plan); app/changes.py serves them. docs/changes.md describes the format."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

OPS = ("create", "update", "delete")

MAX_PART = 2**64 - 1  # both halves of a stream id are unsigned 64-bit integers

_ID_RE = re.compile(r"([0-9]{1,20})(?:-([0-9]{1,20}))?")  # <ms> alone: <ms>-0, as Redis reads it

EventId = tuple[int, int]

HEARTBEAT = b": keep-alive\n\n"


@dataclass(frozen=True)
class ChangeCap:
    """How much of the feed the stream keeps: at most ``maxlen`` events (approximately, as
    ``XTRIM MAXLEN ~`` trims whole nodes) and none older than ``max_age`` seconds."""

    maxlen: int = 100_000
    max_age: int = 86_400

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ChangeCap:
        """From ``MULTIFRAME_CHANGES_MAXLEN`` (1 to 10^8 events) and
        ``MULTIFRAME_CHANGES_MAX_AGE`` (1 s to a year), as the service reads them, so every
        process that commits (the API, the admin CLI) trims the feed alike; ValueError naming
        a value that is not a whole number in range."""
        return cls(
            _bounded(env, MAXLEN_ENV, cls.maxlen, MAX_FEED, "events"),
            _bounded(env, MAX_AGE_ENV, cls.max_age, MAX_FEED_AGE, "seconds"),
        )

    def args(self) -> tuple[int, int]:
        """The ``trim`` op's arguments: the length and the age in milliseconds."""
        return self.maxlen, self.max_age * 1000


DEFAULT_CAP = ChangeCap()

MAXLEN_ENV = "MULTIFRAME_CHANGES_MAXLEN"
MAX_AGE_ENV = "MULTIFRAME_CHANGES_MAX_AGE"
MAX_FEED = 100_000_000  # events kept: a bound on a typo's memory
MAX_FEED_AGE = 366 * 86_400  # a year


def _bounded(env: Mapping[str, str], name: str, default: int, high: int, unit: str) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number of {unit}, got {raw!r}") from None
    if not 1 <= value <= high:
        raise ValueError(f"{name} must be 1 to {high} {unit}, got {value}")
    return value


def parse_id(text: str) -> EventId:
    """``<ms>-<seq>`` (or ``<ms>``, read as ``<ms>-0`` like Redis does: ``since=0`` is from the
    start) as a pair of integers, ValueError for anything else."""
    found = _ID_RE.fullmatch(text.strip())
    if found is None:
        raise ValueError("an event id is <milliseconds>-<sequence>, e.g. 1700000000000-0")
    ms, seq = int(found.group(1)), int(found.group(2) or 0)
    if ms > MAX_PART or seq > MAX_PART:
        raise ValueError("an event id's parts are 64-bit unsigned integers")
    return ms, seq


def format_id(event_id: EventId) -> str:
    return f"{event_id[0]}-{event_id[1]}"


def iso_ms(ms: int) -> str:
    """Milliseconds since the epoch as ISO-8601 UTC with milliseconds: ``...T10:30:00.123Z``."""
    moment = datetime.fromtimestamp(ms // 1000, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def event_of(entry_id: bytes | str, fields: Mapping[Any, Any] | Sequence[Any]) -> dict[str, Any]:
    """One stream entry (its id and fields, as a mapping or the flat list RESP2 gives) as the
    feed's event ``{id, op, collection, doc_id, revision, at}``."""
    if not isinstance(fields, Mapping):
        fields = dict(zip(fields[::2], fields[1::2], strict=True))
    got = {_text(k): _text(v) for k, v in fields.items()}
    return {
        "id": _text(entry_id),
        "op": got["op"],
        "collection": got["collection"],
        "doc_id": got["id"],
        "revision": got.get("rev") or None,
        "at": iso_ms(int(got["at"])),
    }


def sse(event: Mapping[str, Any]) -> bytes:
    """One Server-Sent Event: its id (what ``Last-Event-ID`` resumes from), type and data."""
    data = orjson.dumps(event).decode()
    return f"id: {event['id']}\nevent: change\ndata: {data}\n\n".encode()


def trimmed_past(since: EventId, info: Mapping[str, Any]) -> bool:
    """True when events after ``since`` were trimmed from the stream ``info`` describes
    (XINFO STREAM as a mapping of text keys).

    ``max-deleted-entry-id`` says it exactly: XTRIM leaves it alone, so every trim of the
    feed records the newest id it removed with XSETID (commit.lua's ``trim``, feed.restart).
    Where it reads 0-0 although entries were removed (a stream trimmed before that, a server
    without XSETID's MAXDELETEDID: fakeredis), an id before the first entry still kept counts
    as trimmed past, which may refuse a consumer that had read the very last trimmed event:
    a 410 too many, never a silent gap; and an emptied stream was trimmed up to its
    ``last-generated-id``."""
    added = int(info.get("entries-added") or 0)
    length = int(info.get("length") or 0)
    if added <= length:
        return False  # nothing was ever removed (or no stream yet)
    deleted = parse_id(_text(info.get("max-deleted-entry-id") or "0-0"))
    first = info.get("first-entry")
    if first:
        bound = parse_id(_text(first[0])) if deleted == (0, 0) else deleted
        return since < bound
    last = parse_id(_text(info.get("last-generated-id") or "0-0"))
    return since < max(deleted, last)


def oldest_id(info: Mapping[str, Any]) -> str | None:
    """The id of the oldest event the stream still keeps, None when it keeps none."""
    first = info.get("first-entry")
    return _text(first[0]) if first else None


def wanted(event: Mapping[str, Any], collections: frozenset[str]) -> bool:
    return event["collection"] in collections
