"""Answering aggregations (keyspace.aggregate): through RediSearch, or by scanning every
document when the module is absent. Both paths give the same :class:`Result`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from redis.asyncio import Redis

from . import aggregate, aggregate_index, listing
from .schema import EntitySpec

if TYPE_CHECKING:
    from .engine import Keyspace


async def search_aggregate(
    client: Redis, spec: EntitySpec, agg: aggregate.Aggregation
) -> aggregate.Result:
    """The aggregation through the entity's index alias: every command of
    :func:`aggregate_index.compile_aggregate` in one MULTI (one state of the index), refused while
    the index is missing or being built (:class:`listing.IndexUnavailable`)."""
    alias = spec.names.index_alias(spec.prefix)
    parts = aggregate_index.compile_aggregate(alias, spec, agg)
    replies = await listing.ask_index(client, spec, *(p.args for p in parts))
    return aggregate_index.combine(agg, parts, replies)


async def scan_aggregate(
    client: Redis, spec: EntitySpec, agg: aggregate.Aggregation
) -> aggregate.Result:
    """The aggregation computed from every document of the entity (SCAN, never KEYS)."""
    return aggregate.evaluate(spec, agg, await listing.scan_documents(client, spec))


async def run_declared(
    ks: Keyspace,
    declared: aggregate.Aggregate,
    extra: Mapping[str, str | Sequence[str]] | None = None,
) -> aggregate.Result:
    """A system's declared aggregation with the filters a request fixes (``extra``, e.g.
    ``{"proposal_id": id}``); ValidationFailed for an invalid value among them."""
    spec, agg = declared.compile(ks.schema, extra)
    return await ks.aggregate(spec, agg)
