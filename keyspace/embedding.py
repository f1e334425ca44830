"""Fetching the documents an ``expand=`` embeds (keyspace.sparse): every target of a page,
of every expanded reference, in one pipeline of one JSON.MGET per target entity, so an
expansion costs one round trip after the page, whatever the page's size."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from redis.asyncio import Redis

from .keys import is_lookup_id
from .listing import decode
from .schema import EntitySpec, Schema

Found = dict[str, dict[str, dict[str, Any] | None]]
"""Target entity name -> id -> its document (opened), or None when it does not exist."""

Opener = Callable[[EntitySpec, dict[str, Any]], Awaitable[dict[str, Any]]]


async def fetch(
    client: Redis, schema: Schema, wanted: Mapping[str, Sequence[str]], open_doc: Opener
) -> Found:
    """The documents ``wanted`` (target entity name -> ids), sealed values opened by
    ``open_doc`` as on a read of the target itself; an id that names no document (or is no
    id at all) maps to None."""
    plan = []
    found: Found = {}
    for target, ids in wanted.items():
        found[target] = dict.fromkeys(ids)
        lookups = [i for i in ids if is_lookup_id(i)]
        if lookups:
            plan.append((schema.entity(target), lookups))
    if not plan:
        return found
    async with client.pipeline(transaction=False) as pipe:
        for spec, ids in plan:
            pipe.execute_command("JSON.MGET", *[spec.key(i) for i in ids], ".")
        replies = await pipe.execute()
    for (spec, ids), reply in zip(plan, replies, strict=True):
        for doc_id, raw in zip(ids, reply, strict=True):
            doc = decode(raw)
            found[spec.name][doc_id] = None if doc is None else await open_doc(spec, doc)
    return found
