"""Every key the service owns, enumerated with SCAN (never KEYS)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from redis.asyncio import Redis

from .schema import EntitySpec, Schema


def patterns(schema: Schema) -> list[str]:
    """SCAN patterns covering documents, singletons, counters and the reserved prefix: the
    whole namespace for a namespaced system, the seed's exact patterns for MultiFrame."""
    names = schema.names
    if names.namespace:
        return [names.namespace + "*"]
    out = [names.doc_match(spec.prefix) for spec in schema.entities]
    # Document locks and operation logs (keyspace.locks, keyspace.oplog) under the seed's
    # own names, e.g. doc:lock:<id>; their counters are under the reserved prefix.
    out += [names.lock_key_of(s.lock.key, "*") for s in schema.entities if s.lock is not None]
    out += [names.oplog_key(s.oplog.key, "*") for s in schema.entities if s.oplog is not None]
    # Cached profiles (keyspace.profiles), e.g. user:profile:<id>.
    out += [names.profile_key(s.profile.key, "*") for s in schema.entities if s.profile]
    out += [single.key for single in schema.singletons]
    out += [names.counter_key(spec.prefix) for spec in schema.entities]
    # The seed's cached answers and per-endpoint rate limits (keyspace.cache, tokens).
    if any(spec.cached for spec in schema.entities):
        out.append(names.cache_prefix("*").removesuffix(":"))
    if schema.endpoint_limited:
        out.append(names.endpoint_rate_match())
    return [*out, names.reserved + "*"]


async def service_keys(client: Redis, schema: Schema, *, batch: int = 1000) -> AsyncIterator[bytes]:
    """Each service key once (SCAN can repeat keys; they are deduplicated per pattern)."""
    for pattern in patterns(schema):
        seen: set[bytes] = set()
        async for key in client.scan_iter(match=pattern, count=batch):
            if key not in seen:
                seen.add(key)
                yield key


async def any_document(client: Redis, spec: EntitySpec, *, batch: int = 1000) -> bool:
    """Whether at least one JSON document of ``spec`` exists, from the keys themselves (SCAN,
    stopping at the first hit), so the answer never waits for an index. A key of another
    type (a MultiFrame 11.0 string) is not a document."""
    cursor = 0
    while True:
        cursor, found = await client.scan(
            cursor, match=spec.names.doc_match(spec.prefix), count=batch
        )
        if found:
            async with client.pipeline(transaction=False) as pipe:
                for key in found:
                    pipe.execute_command("JSON.TYPE", key)
                kinds = await pipe.execute(raise_on_error=False)
            if any(kind == b"object" for kind in kinds):
                return True
        if cursor == 0:
            return False
