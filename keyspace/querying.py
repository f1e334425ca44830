"""Answering the pure reads of many documents: list pages, aggregations and nearness searches.

Each runs on the reader (the replica, keyspace.replica, unless asked ``fresh``), through the
entity's search index when the server has one or by scanning the keys otherwise; a sealed
entity's filters compare blind tokens and its answers are opened before they leave. An index
that is being built for a new version, or was just found unavailable, is refused here without
asking Redis. :class:`~keyspace.engine.Keyspace` keeps the public methods; this module is
what they do, apart from the keyspace's writes and setup.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Container, Sequence
from dataclasses import replace
from typing import TypeVar

from redis.asyncio import Redis

from . import aggregating, listing, vectors
from .aggregate import Aggregation, Result
from .listing import Page
from .query import Query
from .replica import ReplicaReads
from .schema import EntitySpec
from .store import Documents

T = TypeVar("T")

UNAVAILABLE_BACKOFF_S = 0.25
"""After an entity's index was found missing or building, its lists are refused for this long
without asking Redis: the refused queries would otherwise compete with the server's own
indexing (a rebuild under list traffic took minutes instead of a second)."""


class Queries:
    """The list, aggregate and nearness reads of one keyspace (see the module docstring)."""

    def __init__(
        self,
        client: Redis,
        replica: ReplicaReads,
        documents: Documents,
        pending: Container[str],
        searching: Callable[[], bool],
    ) -> None:
        self.client = client  # the primary: its index's state is remembered apart from a replica's
        self.replica = replica
        self.documents = documents  # sealing and opening sealed documents
        # The keyspace's own record of indexes awaiting a new version, read as it changes.
        self.pending = pending
        # Whether the server's index answers, asked per read: setup decides it after this.
        self.searching = searching
        # (entity prefix, read from the reader) -> monotonic time
        self.unavailable_until: dict[tuple[str, bool], float] = {}
        # Whether the server fails a query past its TIMEOUT (search.fail_on_timeout), rather
        # than answering part of it: set by setup.
        self.bounded = False

    async def list(
        self,
        spec: EntitySpec,
        query: Query,
        *,
        fresh: bool = False,
        paths: Sequence[str] | None = None,
    ) -> Page:
        """Keyspace.list."""
        sealer = self.documents.sealing(spec)
        if sealer is not None:
            query = sealer.query(spec, query)  # equality on blind tokens, never plaintext

        async def page(client: Redis) -> Page:
            if not self.searching():
                return await listing.scan_page(client, spec, query)
            return await self.through_index(
                spec,
                client,
                lambda: listing.search_page(
                    client,
                    spec,
                    query,
                    paths,
                    bounded=self.bounded,
                    walk=self.documents.scripts.rank_walk,
                ),
            )

        found = await self.replica.run(page, fresh=fresh)
        if sealer is None:
            return found
        items = [await self.documents.open_doc(spec, item) for item in found.items]
        return Page(items, found.total, found.next_cursor)

    async def aggregate(
        self, spec: EntitySpec, aggregation: Aggregation, *, fresh: bool = False
    ) -> Result:
        """Keyspace.aggregate."""
        sealer = self.documents.sealing(spec)
        if sealer is not None:  # its filters compare blind tokens
            aggregation = replace(aggregation, query=sealer.query(spec, aggregation.query))

        async def result(client: Redis) -> Result:
            if not self.searching():
                return await aggregating.scan_aggregate(client, spec, aggregation)
            return await self.through_index(
                spec, client, lambda: aggregating.search_aggregate(client, spec, aggregation)
            )

        return await self.replica.run(result, fresh=fresh)

    async def nearest(
        self, spec: EntitySpec, vector: object, k: int, filter: Query | None
    ) -> Sequence[vectors.Scored]:
        """Keyspace.nearest."""
        field = spec.vector_field
        if field is None:
            raise ValueError(f"{spec.name} has no indexed vector field")
        unit = vectors.query_direction(vector, field.dim)
        count, query = vectors.parse_k(k), filter or Query()
        vectors.check_filter(query)
        sealer = self.documents.sealing(spec)
        if sealer is not None:
            query = sealer.query(spec, query)

        async def nearest(client: Redis) -> Sequence[vectors.Scored]:
            if not self.searching():
                return await listing.scan_nearest(client, spec, unit, count, query)
            return await self.through_index(
                spec, client, lambda: listing.search_nearest(client, spec, unit, count, query)
            )

        found = await self.replica.run(nearest)
        if sealer is None:
            return found
        return [(await self.documents.open_doc(spec, doc), score) for doc, score in found]

    async def through_index(
        self, spec: EntitySpec, client: Redis, read: Callable[[], Awaitable[T]]
    ) -> T:
        """``read()`` (a query of ``spec``'s index on ``client``), unless its index is known
        to be pending or was found unavailable there less than :data:`UNAVAILABLE_BACKOFF_S`
        ago. A replica's index is asked as the primary's (``listing.ask_index``): one still
        loading or indexing what it replicated refuses the query, never answers in part."""
        unavailable = (spec.prefix, client is not self.client)
        if spec.prefix in self.pending:  # the alias may point at an older definition
            raise listing.IndexUnavailable(
                f"the {spec.collection} index is being built for a new version; retry shortly"
            )
        now = time.monotonic()
        if self.unavailable_until.get(unavailable, 0.0) > now:
            raise listing.IndexUnavailable(
                f"the {spec.collection} index is not ready yet; retry shortly"
            )
        try:
            return await read()
        except listing.IndexUnavailable:
            self.unavailable_until[unavailable] = now + UNAVAILABLE_BACKOFF_S
            raise

    def index_ready(self, spec: EntitySpec) -> None:
        """The primary's index of ``spec`` was seen built: fresher than the last refused list,
        so lists are asked again at once."""
        self.unavailable_until.pop((spec.prefix, False), None)
