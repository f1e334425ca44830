"""Reading the legacy keyspace's values from the source (``--source URL``, or in place)
within a memory budget: the types and sizes of a batch of keys first, then their string
values in groups totalling at most ``--batch-bytes`` (a larger value alone), so what
``import-legacy`` holds follows that budget, not the batch's key count.

Apart from scripts/legacy.py, which converts, writes and counts what is read here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis

MAX_VALUE = 64 * 2**20  # larger values are skipped unread: a valid record is under 1 MiB
TOO_LARGE = b"\0too large"  # TYPE stand-in of a value skipped unread (its GET is its length)
Read = tuple[str, bytes, Any]  # key, TYPE, GET reply (bytes, None, or an error for a non-string)


async def read(source: Redis, names: list[str], budget: int) -> AsyncIterator[list[Read]]:
    """(key, TYPE, GET) of each source key, in groups whose string values total at most
    ``budget`` bytes (STRLEN first; a larger value comes alone), so only one group's
    values are held at once. Other types are never fetched (their GET is None)."""
    async with source.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.type(name)
            pipe.strlen(name)
        replies = await pipe.execute(raise_on_error=False)
    group: list[tuple[str, bytes]] = []
    size = 0
    for name, kind, length in zip(names, replies[::2], replies[1::2], strict=True):
        length = length if kind == b"string" and isinstance(length, int) else 0
        if length > MAX_VALUE:
            group.append((name, TOO_LARGE))
            continue
        if group and size + length > budget:
            yield await _fetch(source, group)
            group, size = [], 0
        group.append((name, kind))
        size += length
    if group:
        yield await _fetch(source, group)


async def _fetch(source: Redis, group: list[tuple[str, bytes]]) -> list[Read]:
    strings = [name for name, kind in group if kind == b"string"]
    async with source.pipeline(transaction=False) as pipe:
        for name in strings:
            pipe.get(name)
        values = dict(zip(strings, await pipe.execute(raise_on_error=False), strict=True))
    # A string gone since its TYPE reads as a key that is not there.
    gone = {name for name in strings if values[name] is None}
    return [(name, b"none" if name in gone else kind, values.get(name)) for name, kind in group]


async def one(source: Redis, name: str, budget: int) -> tuple[bytes, Any]:
    """(TYPE, GET) of one source key, read as :func:`read` reads a group."""
    async for group in read(source, [name], budget):
        return group[0][1:]
    raise AssertionError("read() yields every key")


def unread(kind: bytes) -> str:
    """Why a key that is not a legacy string, or one too large to read, is skipped."""
    if kind == TOO_LARGE:
        return f"value over {MAX_VALUE} bytes, far more than a valid record; not read"
    return f"not a legacy string value ({shown(kind)})"


def shown(name: bytes) -> str:
    """A key name for a reason or the report, also when it is not UTF-8 (``\\xff``)."""
    return name.decode("utf-8", "backslashreplace")
