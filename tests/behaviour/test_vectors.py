"""Nearness searches over vector fields on fakeredis, through RediSearch and through the scan
path: every backend gives the exact answer (ids in order, scores within 1e-6 of a float64
cosine distance computed here), with and without filters, at 8 and 384 dimensions."""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator, Sequence
from typing import Any

import fakeredis
import pytest
from redis.asyncio import Redis

from keyspace import Keyspace, NotFound, ValidationFailed, connect, parse, search
from keyspace.connection import call
from keyspace.declare import boolean, enum, integer, table, timestamp, vector
from keyspace.schema import EntitySpec, IdStrategy, Schema
from keyspace.server import EmbeddedRedis
from keyspace.system import System
from tests.conftest import BACKENDS

SMALL_DIM, WIDE_DIM = 8, 384
PAPERS = table(
    "paper",
    collection="papers",
    id=IdStrategy.CUID,
    fields=(
        enum("kind", ("article", "preprint"), default="article", index=True),
        integer("year", default=2024, index=True, sortable=True),
        boolean("open", default=True, index=True),
        timestamp("at", null=True, index=True),
        vector("embedding", SMALL_DIM, null=True),
    ),
)
PROFILES = table(
    "profile",
    collection="profiles",
    id=IdStrategy.CUID,
    fields=(
        enum("field", ("ai", "bio"), default="ai", index=True),
        vector("embedding", WIDE_DIM),
    ),
)
ACCOUNT = table("account", collection="accounts", id=IdStrategy.CUID, fields=(), owner="id")
SYSTEM = System(
    name="vectortest",
    title="vector test",
    schema=Schema((ACCOUNT, PAPERS, PROFILES)),
    namespace="vectortest:",
    principal="account",
).served()
PAPER = SYSTEM.schema.entity("paper")
PROFILE = SYSTEM.schema.entity("profile")


@pytest.fixture(params=BACKENDS)
async def vks(request: pytest.FixtureRequest) -> AsyncIterator[Keyspace]:
    """A Keyspace serving the test schema on fakeredis, and on the real server through
    RediSearch and through the scan path."""
    backend: str = request.param
    client: Redis
    if backend == "fake":
        client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), protocol=2)
    else:
        server: EmbeddedRedis = request.getfixturevalue("redis_server")
        client = connect(server.url)
        await client.flushall()
    keyspace = Keyspace(client, SYSTEM.schema, use_search=None if backend != "real-scan" else False)
    await keyspace.setup()
    yield keyspace
    await client.aclose()


def cid(n: int) -> str:
    return f"c{n:024d}"


def gauss(rnd: random.Random, dim: int) -> list[float]:
    return [rnd.gauss(0.0, 1.0) for _ in range(dim)]


def cosine_distance(a: Sequence[float], b: Sequence[float]) -> float:
    """The reference: plain float64 cosine distance, independent of keyspace.vectors."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return 1.0 - dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def reference(
    docs: dict[str, dict[str, Any]], q: Sequence[float], k: int, keep: Any = None
) -> list[tuple[str, float]]:
    """The exact k nearest (id, distance), by (distance to 6 places, id)."""
    scored = [
        (cosine_distance(q, doc["embedding"]), doc_id)
        for doc_id, doc in docs.items()
        if doc.get("embedding") and any(doc["embedding"]) and (keep is None or keep(doc))
    ]
    scored.sort(key=lambda s: (round(s[0], 6), s[1]))
    return [(doc_id, d) for d, doc_id in scored[:k]]


def assert_answer(
    got: Sequence[tuple[dict[str, Any], float]], want: list[tuple[str, float]]
) -> None:
    assert [d["id"] for d, _ in got] == [doc_id for doc_id, _ in want]
    for (_, score), (_, exact) in zip(got, want, strict=True):
        assert abs(score - exact) <= 1e-6, (score, exact)


async def nearest(
    ks: Keyspace, spec: EntitySpec, q: Sequence[float], k: int, **flt: str | list[str]
) -> Sequence[tuple[dict[str, Any], float]]:
    params = {name: v if isinstance(v, list) else [v] for name, v in flt.items()}
    return await ks.nearest(spec, list(q), k, parse(spec, params) if params else None)


async def papers(ks: Keyspace, count: int, seed: int) -> dict[str, dict[str, Any]]:
    """``count`` papers with seeded random vectors, created in a shuffled order."""
    rnd = random.Random(seed)
    order = list(range(count))
    rnd.shuffle(order)
    made = {}
    for n in order:
        body = {
            "id": cid(n),
            "kind": ("article", "preprint")[n % 2],
            "year": 2000 + n % 7,
            "open": n % 3 != 0,
            "embedding": gauss(rnd, SMALL_DIM),
        }
        made[cid(n)] = (await ks.create(PAPER, body)).doc
    return made


async def test_the_nearest_k_are_the_exact_answer_with_and_without_filters(
    vks: Keyspace,
) -> None:
    docs = await papers(vks, 120, seed=15)
    rnd = random.Random(1501)
    for _ in range(6):
        q = gauss(rnd, SMALL_DIM)
        assert_answer(await nearest(vks, PAPER, q, 10), reference(docs, q, 10))
        assert_answer(
            await nearest(vks, PAPER, q, 7, kind="preprint"),
            reference(docs, q, 7, lambda d: d["kind"] == "preprint"),
        )
        assert_answer(
            await nearest(vks, PAPER, q, 5, year_min="2002", year_max="2004", open="true"),
            reference(docs, q, 5, lambda d: 2002 <= d["year"] <= 2004 and d["open"]),
        )
        assert_answer(
            await nearest(vks, PAPER, q, 4, year=["2000", "2006"]),
            reference(docs, q, 4, lambda d: d["year"] in (2000, 2006)),
        )
    assert await nearest(vks, PAPER, q, 3, year="1999") == []


async def test_384_dimensions_agree_with_the_exact_answer_and_with_the_scan_path(
    vks: Keyspace,
) -> None:
    rnd = random.Random(384)
    docs = {}
    for n in range(60):
        body = {"id": cid(n), "field": ("ai", "bio")[n % 3 == 0], "embedding": gauss(rnd, 384)}
        docs[cid(n)] = (await vks.create(PROFILE, body)).doc
    scan = Keyspace(vks.client, SYSTEM.schema, use_search=False)
    await scan.setup_basics()
    for _ in range(4):
        q = gauss(rnd, WIDE_DIM)
        got = await nearest(vks, PROFILE, q, 12)
        assert_answer(got, reference(docs, q, 12))
        assert got == await nearest(scan, PROFILE, q, 12)  # the same numbers, not only close
        got = await nearest(vks, PROFILE, q, 6, field="bio")
        assert_answer(got, reference(docs, q, 6, lambda d: d["field"] == "bio"))
        assert got == await nearest(scan, PROFILE, q, 6, field="bio")


async def test_duplicate_vectors_at_the_kth_place_are_taken_by_id(vks: Keyspace) -> None:
    # The index orders equal distances arbitrarily: the answer still takes the lowest ids.
    twin = [0.5, -1.0, 2.0, 0.0, 1.0, 1.0, -0.5, 3.0]
    order = list(range(40))
    random.Random(7).shuffle(order)
    for n in order:
        scaled = [v * (1 + n % 4) for v in twin]  # same direction, other lengths
        near = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0] if n >= 35 else scaled
        await vks.create(PAPER, {"id": cid(n), "embedding": near})
    got = await nearest(vks, PAPER, twin, 6)
    assert [d["id"] for d, _ in got] == [cid(n) for n in range(6)]
    assert [s for _, s in got] == [0.0] * 6
    got = await nearest(vks, PAPER, twin, 5, year="2024", kind="article")
    assert [d["id"] for d, _ in got] == [cid(n) for n in range(5)]
    every = await nearest(vks, PAPER, twin, 1000)
    assert [d["id"] for d, _ in every][:35] == [cid(n) for n in range(35)]
    assert len(every) == 40


async def test_null_absent_and_zero_vectors_are_never_results_and_stay_listed(
    vks: Keyspace,
) -> None:
    for n in range(10, 30):  # an index holding them would rank their NaN distances first
        await vks.create(PAPER, {"id": cid(n), "embedding": [0.0] * SMALL_DIM})
    await vks.create(PAPER, {"id": cid(1), "embedding": [1, 2, 3, 4, 5, 6, 7, 8]})
    await vks.create(PAPER, {"id": cid(2), "embedding": None})
    await vks.create(PAPER, {"id": cid(3)})  # absent: stored as null
    await vks.create(PAPER, {"id": cid(4), "embedding": [0] * SMALL_DIM})
    await vks.create(PAPER, {"id": cid(5), "embedding": [-0.0] * SMALL_DIM})
    stored = (await vks.get(PAPER, cid(4))).doc["embedding"]
    assert stored == [0.0] * SMALL_DIM and all(isinstance(v, float) for v in stored)
    got = await nearest(vks, PAPER, [1] * SMALL_DIM, 10)
    assert [d["id"] for d, _ in got] == [cid(1)]
    got = await nearest(vks, PAPER, [1] * SMALL_DIM, 1)
    assert [d["id"] for d, _ in got] == [cid(1)]
    page = await vks.list(PAPER, parse(PAPER, {"limit": ["1000"]}))
    assert [d["id"] for d in page.items] == [cid(n) for n in (*range(1, 6), *range(10, 30))]
    if vks.capabilities.search:  # every document indexed, none refused
        name = await search.alias_target(vks.client, PAPER)
        assert name is not None
        info = search.parse_info(await call(vks.client, "FT.INFO", name))
        assert (int(info["num_docs"]), int(info["hash_indexing_failures"])) == (25, 0)


async def test_empty_collection_and_k_past_the_collection(vks: Keyspace) -> None:
    assert await nearest(vks, PAPER, [1] * SMALL_DIM, 10) == []
    docs = await papers(vks, 9, seed=3)
    q = gauss(random.Random(4), SMALL_DIM)
    got = await nearest(vks, PAPER, q, 1000)
    assert len(got) == 9
    assert_answer(got, reference(docs, q, 1000))
    assert [s for _, s in got] == sorted(s for _, s in got)


async def test_the_largest_k_over_a_larger_collection(vks: Keyspace) -> None:
    docs = await papers(vks, 1100, seed=1000)
    q = gauss(random.Random(1001), SMALL_DIM)
    got = await nearest(vks, PAPER, q, 1000)
    assert len(got) == 1000
    assert_answer(got, reference(docs, q, 1000))
    assert_answer(
        await nearest(vks, PAPER, q, 1000, kind="article"),
        reference(docs, q, 1000, lambda d: d["kind"] == "article"),
    )


async def test_magnitudes_do_not_matter(vks: Keyspace) -> None:
    # Scaled by its largest member first: huge and tiny vectors keep their direction.
    await vks.create(PAPER, {"id": cid(1), "embedding": [1e300, 0, 0, 0, 0, 0, 0, 1e300]})
    await vks.create(PAPER, {"id": cid(2), "embedding": [1e-300, 0, 0, 0, 0, 0, 0, 0]})
    await vks.create(PAPER, {"id": cid(3), "embedding": [0, 5e-324, 0, 0, 0, 0, 0, 0]})
    got = await nearest(vks, PAPER, [3, 0, 0, 0, 0, 0, 0, 0], 3)
    assert [(d["id"], s) for d, s in got] == [
        (cid(2), 0.0),
        (cid(1), round(1 - math.sqrt(0.5), 6)),
        (cid(3), 1.0),
    ]


async def test_writes_move_and_remove_neighbours(vks: Keyspace) -> None:
    await vks.create(PAPER, {"id": cid(1), "embedding": [1, 0, 0, 0, 0, 0, 0, 0]})
    await vks.create(PAPER, {"id": cid(2), "embedding": [0, 1, 0, 0, 0, 0, 0, 0]})
    q = [1, 0.1, 0, 0, 0, 0, 0, 0]
    assert [d["id"] for d, _ in await nearest(vks, PAPER, q, 1)] == [cid(1)]
    await vks.patch(PAPER, cid(2), {"embedding": [1, 0.1, 0, 0, 0, 0, 0, 0]})
    got = await nearest(vks, PAPER, q, 2)
    assert [(d["id"], s) for d, s in got] == [(cid(2), 0.0), (cid(1), 0.004963)]
    await vks.patch(PAPER, cid(2), {"embedding": None})
    assert [d["id"] for d, _ in await nearest(vks, PAPER, q, 2)] == [cid(1)]
    await vks.delete(PAPER, cid(1))
    assert await nearest(vks, PAPER, q, 2) == []


@pytest.mark.parametrize(
    ("embedding", "message"),
    [
        ([1.0] * 7, "has 7 numbers; this vector has exactly 8"),
        ([1.0] * 9, "has 9 numbers; this vector has exactly 8"),
        ([], "has 0 numbers"),
        ([1, 2, 3, 4, 5, 6, 7, float("nan")], "member 7 must be a finite number"),
        ([float("inf"), 2, 3, 4, 5, 6, 7, 8], "member 0 must be a finite number"),
        ([1, 2, "1", 4, 5, 6, 7, 8], "member 2 must be a number, not a string"),
        ([1, True, 3, 4, 5, 6, 7, 8], "member 1 must be a number, not a boolean"),
        ([1, 2, 3, None, 5, 6, 7, 8], "member 3 must be a number, not null"),
        ([1, 2, 3, 4, [5], 6, 7, 8], "member 4 must be a number, not an array"),
        ([1, 2, 3, 4, 5, 6, 7, 10**400], "member 7 must be a finite number"),
        ("1,2,3,4,5,6,7,8", "must be an array of 8 numbers"),
    ],
)
async def test_invalid_vectors_are_refused_on_write_and_in_a_search(
    vks: Keyspace, embedding: Any, message: str
) -> None:
    with pytest.raises(ValidationFailed, match=message) as refused:
        await vks.create(PAPER, {"id": cid(1), "embedding": embedding})
    assert refused.value.details[0]["field"] == "embedding"
    with pytest.raises(ValidationFailed, match=message) as asked:
        await vks.nearest(PAPER, embedding, 3)
    assert asked.value.details == [
        {"field": "vector", "message": asked.value.details[0]["message"]}
    ]
    with pytest.raises(NotFound):
        await vks.get(PAPER, cid(1))  # nothing was written


async def test_search_parameters_are_refused_before_anything_is_read(vks: Keyspace) -> None:
    with pytest.raises(ValidationFailed, match="all zeros"):
        await vks.nearest(PAPER, [0] * SMALL_DIM, 3)
    for k in (0, 1001, -1, True):
        with pytest.raises(ValidationFailed, match="from 1 to 1000"):
            await vks.nearest(PAPER, [1] * SMALL_DIM, k)
    time_range = parse(PAPER, {"at_min": ["2024-01-01T00:00:00"]})
    with pytest.raises(ValidationFailed, match="time ranges cannot filter"):
        await vks.nearest(PAPER, [1] * SMALL_DIM, 3, time_range)
    with pytest.raises(ValueError, match="no indexed vector"):
        await vks.nearest(SYSTEM.schema.entity("account"), [1] * SMALL_DIM, 3)
