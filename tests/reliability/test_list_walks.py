"""Property (issue 21, item 4): cursor walks under concurrent deletes, creates and updates.

Hypothesis draws drivers, a query (status filter, cores range, sort, limit) and a stream of
writes: deletes, creates, status moves into and out of the filter, cores changes (in and out
of the range, and of the sort order) and changes of neither. While a walk follows
``next_cursor``, writes land between pages and inside pages, between the index read (or the
scan) and the document fetch (tests/list_walks.py). After each write the test reads the
written document and records whether it matches and its sort position. Then:

- every document that matched throughout the walk, at one sort position, is returned exactly once;
- every returned item matches the query and is the stored document when its page is returned;
- no document is returned twice unless its sort position changed during the walk
  (keyset pagination follows the position: a document that moves ahead is met again);
- the walk ends (``next_cursor`` null) only when nothing more matches: the first point
  catches a walk that ends early.

It runs on fakeredis, and on the real server through RediSearch and through the scan path.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import fakeredis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from keyspace import DRIVER, Keyspace, NotFound, connect, parse, query
from keyspace.server import EmbeddedRedis
from tests import factories as f
from tests.list_walks import MAX_PAGES, before_fetch

from .conftest import Figures

State = tuple[bool, tuple[Any, str]] | None  # (matches, sort position), None once deleted

drivers = st.lists(
    st.tuples(st.sampled_from(["generated", "optimized"]), st.integers(1, 6)),
    min_size=2,
    max_size=12,
)
params = st.fixed_dictionaries(
    {
        "status": st.sampled_from([[], ["generated"], ["optimized"]]),
        "cores_min": st.sampled_from([[], ["3"]]),
        "sort": st.sampled_from([[], ["cores"], ["-cores"], ["-driver_id"]]),
        "limit": st.sampled_from([["1"], ["2"], ["3"]]),
    }
).map(lambda p: {k: v for k, v in p.items() if v})
write = st.tuples(
    st.sampled_from(["delete", "optimize", "cores", "create", "version"]),
    st.integers(0, 40),  # which document (modulo the ones known)
    st.integers(1, 6),  # cores of a create or a cores change
)


@dataclass
class Walk:
    """One walk's documents (one owner's drivers) and what happened to them."""

    ks: Keyspace
    owner: str
    q: query.Query
    pick: st.DataObject
    history: dict[str, list[State]] = field(default_factory=dict)
    writes: int = 0
    fetches: int = 0  # document fetches of the current page so far
    late: set[str] = field(default_factory=set)  # written after the page's first fetch

    async def record(self, doc_id: str) -> None:
        try:
            doc = (await self.ks.get(DRIVER, doc_id)).doc
        except NotFound:
            self.history.setdefault(doc_id, []).append(None)
            return
        position = query.sort_key(DRIVER, self.q, doc)
        self.history.setdefault(doc_id, []).append((query.matches(DRIVER, self.q, doc), position))

    async def create(self, status: str, cores: int) -> None:
        created = await f.driver(self.ks, self.owner, cores=cores, status=status)
        self.history[created.doc["driver_id"]] = [None]
        await self.record(created.doc["driver_id"])

    async def write(self) -> None:
        kind, which, cores = self.pick.draw(write, label="write")
        known = sorted(self.history)
        if kind == "create" or not known:
            await self.create(self.pick.draw(st.sampled_from(["generated", "optimized"])), cores)
        else:
            doc_id = known[which % len(known)]
            changes = {
                "optimize": {"status": "optimized"},
                "cores": {"chip_data": {"cores": cores}},
                "version": {"version": f"v{cores}"},
            }
            try:
                if kind == "delete":
                    await self.ks.delete(DRIVER, doc_id)
                else:
                    await self.ks.patch(DRIVER, doc_id, changes[kind])
            except NotFound:
                return
            await self.record(doc_id)
            if self.fetches > 1:
                self.late.add(doc_id)
        self.writes += 1

    async def some_writes(self) -> None:
        for _ in range(self.pick.draw(st.integers(0, 3), label="writes here")):
            await self.write()

    async def inside_a_page(self) -> None:
        self.fetches += 1
        await self.some_writes()


async def _stored(ks: Keyspace, doc_id: str) -> dict[str, Any] | None:
    try:
        return (await ks.get(DRIVER, doc_id)).doc
    except NotFound:
        return None


async def run_walk(run: Walk, asked: dict[str, list[str]]) -> int:
    """Walk ``run``'s query with writes between its pages (and inside them, through the
    keyspace's fetch hook); assert the contract. Returns the number of pages."""
    ks = run.ks
    returned: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        pages += 1
        assert pages <= MAX_PAGES, "the walk does not end"
        extra = {"cursor": [cursor]} if cursor else {}
        run.fetches, run.late = 0, set()
        page = await ks.list(DRIVER, parse(DRIVER, {**asked, **extra}))
        for item in page.items:
            assert query.matches(DRIVER, run.q, item), item
            # The current document, unless it was written after an earlier batch of this
            # page was fetched (the scan path fetches in batches; each item is as read).
            if item["driver_id"] not in run.late:
                assert item == await _stored(ks, item["driver_id"]), "an outdated document"
        returned += [item["driver_id"] for item in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
        await run.some_writes()
    for doc_id, states in run.history.items():
        present = [s for s in states if s is not None]
        positions = {s[1] for s in present}
        if len(present) == len(states) and all(s[0] for s in present) and len(positions) == 1:
            assert returned.count(doc_id) == 1, (doc_id, states, returned)
        if len(positions) <= 1:
            assert returned.count(doc_id) <= 1, (doc_id, states, returned)
    return pages


@dataclass(frozen=True)
class Budget:
    name: str
    examples: int


BUDGETS = [
    pytest.param(Budget("ci", examples=100), id="ci"),
    pytest.param(Budget("soak", examples=1000), id="soak", marks=pytest.mark.soak),
]
BACKENDS = [
    pytest.param("fakeredis", id="fakeredis"),
    pytest.param("redis-search", id="redis-search", marks=pytest.mark.redis),
    pytest.param("redis-scan", id="redis-scan", marks=pytest.mark.redis),
]


async def _keyspace(request: pytest.FixtureRequest, backend: str) -> Keyspace:
    client: Redis
    if backend == "fakeredis":
        client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), protocol=2)
    else:
        server: EmbeddedRedis = request.getfixturevalue("redis_server")
        client = connect(server.url)
        await client.flushall()
    ks = Keyspace(client, use_search=backend == "redis-search")
    await ks.setup()
    assert ks.capabilities.search == (backend == "redis-search")
    return ks


async def _wipe(client: Redis) -> None:
    """Delete every key but keep the indexes: each example starts from empty counters (so
    ids, their order and the draws they lead to repeat exactly) without an index rebuild."""
    found = [k async for k in client.scan_iter(count=1000)]
    for start in range(0, len(found), 500):
        await client.delete(*found[start : start + 500])


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_walks_under_concurrent_writes_keep_the_list_contract(
    request: pytest.FixtureRequest, figures: Figures, backend: str, budget: Budget
) -> None:
    loop = asyncio.new_event_loop()
    ks = loop.run_until_complete(_keyspace(request, backend))
    current: list[Walk] = []

    async def inside_a_page() -> None:
        if current:
            await current[0].inside_a_page()

    before_fetch(ks.client, inside_a_page)
    totals = {"walks": 0, "pages": 0, "writes": 0}

    @settings(
        max_examples=budget.examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(initial=drivers, asked=params, pick=st.data())
    def check(
        initial: list[tuple[str, int]], asked: dict[str, list[str]], pick: st.DataObject
    ) -> None:
        async def one() -> None:
            await _wipe(ks.client)
            owner = (await f.user(ks, "Owner")).doc["user_id"]
            asked_here = {**asked, "user_id": [owner]}  # as /api/users/{id}/drivers asks
            run = Walk(ks, owner, parse(DRIVER, asked_here), pick)
            for status, cores in initial:
                await run.create(status, cores)
            current.append(run)
            try:
                totals["pages"] += await run_walk(run, asked_here)
            finally:
                current.clear()
            totals["walks"] += 1
            totals["writes"] += run.writes

        loop.run_until_complete(one())

    started = time.perf_counter()
    try:
        check()
    finally:
        loop.run_until_complete(ks.client.aclose())
        loop.close()
    figures.record(
        f"list walks under writes ({backend}, {budget.name})",
        **totals,
        seconds=round(time.perf_counter() - started, 1),
    )
