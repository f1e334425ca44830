"""Every key the service owns, enumerated with SCAN (never KEYS)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from redis.asyncio import Redis

from . import keys
from .schema import Schema


def patterns(schema: Schema) -> list[str]:
    """SCAN patterns covering documents, singletons, counters and the reserved prefix."""
    out = [keys.doc_match(spec.prefix) for spec in schema.entities]
    out += [single.key for single in schema.singletons]
    out += [keys.counter_key(spec.prefix) for spec in schema.entities]
    return [*out, keys.RESERVED + "*"]


async def service_keys(client: Redis, schema: Schema, *, batch: int = 1000) -> AsyncIterator[bytes]:
    """Each service key once (SCAN can repeat keys; they are deduplicated per pattern)."""
    for pattern in patterns(schema):
        seen: set[bytes] = set()
        async for key in client.scan_iter(match=pattern, count=batch):
            if key not in seen:
                seen.add(key)
                yield key
