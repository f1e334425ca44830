"""Reading the whole state of a test server, for before/after comparisons."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from keyspace.connection import call

FEED = b"mf:changes"
"""The change feed (keyspace.changes), any system's: left out of snapshots. A backup leaves it
out and a restore's wipe deletes it (docs/changes.md); its own tests assert what it holds."""


async def snapshot(client: Redis) -> dict[bytes, object]:
    """Every key but the change feed with its raw value: JSON.GET bytes, string bytes, sorted
    set members, a hash as a dict, a sorted set's members with scores; other types by their
    type name."""
    out: dict[bytes, object] = {}
    async for key in client.scan_iter(count=1000):
        if key.endswith(FEED):
            continue
        kind = await client.type(key)
        if kind == b"ReJSON-RL":
            out[key] = await call(client, "JSON.GET", key, ".")
        elif kind == b"string":
            out[key] = await client.get(key)
        elif kind == b"set":
            out[key] = sorted(await client.smembers(key))
        elif kind == b"hash":
            out[key] = await client.hgetall(key)
        elif kind == b"zset":
            out[key] = await client.zrange(key, 0, -1, withscores=True)
        else:
            out[key] = kind
    return out


async def snapshot_by_reads(client: Redis) -> dict[bytes, object]:
    """Every key and its value, found by trying reads in turn: fakeredis cannot TYPE a JSON
    key, so :func:`snapshot` does not run there."""
    out: dict[bytes, object] = {}
    async for key in client.scan_iter(count=1000):
        for read in (
            lambda k: call(client, "JSON.GET", k, "."),
            client.get,
            client.smembers,
            client.hgetall,
        ):
            try:
                out[key] = await read(key)
                break
            except ResponseError:
                continue
    return out
