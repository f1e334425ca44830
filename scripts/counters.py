"""Reading the seed's INCR counters (``user_counter``, ...) the way ``commit.lua`` can use them.

A counter is usable only when it holds ``0`` or a plain decimal without a sign or leading
zeros, at most ``keys.MAX_COUNTER``: INCR refuses other spellings (``007``, `` 7``), and Lua
numbers are doubles, so past 2^53 - 1 a generated id would come out as ``user_9.0e+15``.
``int()`` accepts all of those, which is why every CLI command reads counters through here.
"""

from __future__ import annotations

import re

from redis.asyncio import Redis

from keyspace import keys
from keyspace.connection import call

_DECIMAL = re.compile(rb"0|[1-9][0-9]*")
_SHOWN = 40  # characters of a bad value quoted in a reason


class InvalidCounter(ValueError):
    """A counter that no create can draw from; the message says why.

    ``raw`` is the string it holds (None when the key is of another type), and
    ``out_of_range`` tells a number past ``keys.MAX_COUNTER`` from anything else."""

    def __init__(self, reason: str, raw: bytes | None, *, out_of_range: bool = False) -> None:
        super().__init__(reason)
        self.raw = raw
        self.out_of_range = out_of_range


def parse(raw: bytes) -> int:
    """The value of a counter holding ``raw``; InvalidCounter when no create can use it."""
    if not _DECIMAL.fullmatch(raw):
        shown = raw[:_SHOWN].decode("utf-8", "backslashreplace")
        more = "..." if len(raw) > _SHOWN else ""
        raise InvalidCounter(f"{shown!r}{more} is not a whole number of at least 0", raw)
    if len(raw) > len(str(keys.MAX_COUNTER)) or int(raw) > keys.MAX_COUNTER:
        shown = raw[:_SHOWN].decode()
        raise InvalidCounter(f"{shown} is past {keys.MAX_COUNTER}", raw, out_of_range=True)
    return int(raw)


async def read(client: Redis, key: str) -> int | None:
    """The value of counter ``key``, None when it does not exist; InvalidCounter otherwise."""
    kind: bytes = await call(client, "TYPE", key)
    if kind == b"none":
        return None
    if kind != b"string":
        raise InvalidCounter(f"holds a {kind.decode(errors='replace')}, not a number", None)
    raw: bytes | None = await call(client, "GET", key)
    return None if raw is None else parse(raw)  # None: deleted since the TYPE
