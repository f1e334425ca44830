"""What the server holds, read cheaply: per collection its index's state and document count,
and the server's memory (for ``GET /metrics``, app/metrics.py).

One pipeline: one ``FT.INFO`` per collection and ``INFO memory``. Its cost grows with the
number of collections, not documents; without RediSearch no document count is read, as
counting would visit every key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ResponseError

from .engine import Keyspace
from .search import is_building, parse_info

INDEX_STATES = ("ready", "building", "missing", "no_search")
MEMORY_FIELDS = ("used_memory", "used_memory_rss", "maxmemory")


@dataclass(frozen=True)
class IndexStats:
    """One collection's index, as FT.INFO describes it."""

    state: str  # one of INDEX_STATES; building: its lists answer NotReady
    documents: int | None = None  # num_docs: the count so far while it builds
    indexed: float | None = None  # percent_indexed, 0 to 1
    failures: int | None = None  # hash_indexing_failures


@dataclass(frozen=True)
class ServerStats:
    indexes: dict[str, IndexStats] = field(default_factory=dict)  # by collection
    memory: dict[str, int] = field(default_factory=dict)  # of MEMORY_FIELDS, those answered


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _index(reply: Any, pending: bool) -> IndexStats:
    if isinstance(reply, Exception):  # no such alias: never built, or lost with the data
        return IndexStats("building" if pending else "missing")
    info = parse_info(reply)
    return IndexStats(
        "building" if pending or is_building(info) else "ready",
        documents=int(info.get("num_docs", 0)),
        indexed=float(_text(info.get("percent_indexed", 1))),
        failures=int(info.get("hash_indexing_failures", 0)),
    )


async def server_stats(ks: Keyspace) -> ServerStats:
    """:class:`ServerStats` now, in one round trip; raises when the server is unreachable."""
    specs = ks.schema.entities if ks.capabilities.search else ()
    async with ks.client.pipeline(transaction=False) as pipe:
        pipe.info("memory")
        for spec in specs:
            pipe.execute_command("FT.INFO", spec.names.index_alias(spec.prefix))
        memory, *infos = await pipe.execute(raise_on_error=False)
    if isinstance(memory, ResponseError):  # a server (or ACL) without INFO: no memory figures
        memory = {}
    elif isinstance(memory, Exception):
        raise memory
    pending = set(ks.pending_indexes)
    if specs:
        indexes = {
            spec.collection: _index(reply, spec.collection in pending)
            for spec, reply in zip(specs, infos, strict=True)
        }
    else:
        indexes = {spec.collection: IndexStats("no_search") for spec in ks.schema.entities}
    kept = {k: int(memory[k]) for k in MEMORY_FIELDS if isinstance(memory.get(k), int)}
    return ServerStats(indexes, kept)
