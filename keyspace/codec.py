"""Encoding, revisions and timestamps: pure functions shared by every layer."""

from __future__ import annotations

import functools
import hashlib
import time
from datetime import UTC, datetime
from typing import Any

import orjson


def dumps(value: Any) -> bytes:
    """Compact JSON, as stored and as served."""
    return orjson.dumps(value)


def loads(raw: bytes | str) -> Any:
    return orjson.loads(raw)


def revision(raw: bytes) -> str:
    """The revision tag of a stored document: a hash of its bytes as the server returns them.

    SHA-1 because commit.lua computes the same tag (``redis.sha1hex``) for the change feed's
    events; it names a revision, it guards nothing against an adversary."""
    return hashlib.sha1(raw, usedforsecurity=False).hexdigest()


_clock: tuple[int, str] = (0, "")


def now_iso() -> str:
    """The current UTC time in the seed's format (``2025-09-29T10:30:00``)."""
    global _clock
    second = int(time.time())
    if _clock[0] != second:  # formatting is most of a create's timestamp cost
        text = datetime.fromtimestamp(second, UTC).replace(tzinfo=None).isoformat()
        _clock = (second, text)
    return _clock[1]


# A create normalizes the same text twice in a row (validation, then the projection's time
# shadow), and the server's own time (now_iso) is the same text for a second's creates. A few
# answers are enough: more would hold memory for texts never asked again (generate's flat
# memory, tests/integration/test_generate_memory.py).
@functools.lru_cache(maxsize=16)
def normalize_iso(value: str) -> str:
    """Parse an ISO-8601 timestamp and return it in the seed's naive-UTC format.

    Aware times are converted to UTC; fractions of a second are kept. One format
    for every stored time is what makes text comparison order them correctly.
    """
    if len(value) > 40:
        raise ValueError("timestamp too long")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:
            raise ValueError("timestamp out of range") from None
    spec = "microseconds" if parsed.microsecond else "seconds"
    return parsed.isoformat(timespec=spec)
