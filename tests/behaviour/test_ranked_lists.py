"""Pages read from the top of a ranked field's set (keyspace.ranking): drivers by cores. Every
answer is the one computed here from the documents and the counted walk's (which never reads
the set), with ties across chunk edges, every limit, both orders, ranges, cursors, selective
filters that give up on the set, and a set out of line with the documents. Chunks are made
small here so a page takes several of them."""

from __future__ import annotations

import random
from typing import Any

import pytest
from redis.asyncio import Redis

from keyspace import DRIVER, USER, Keyspace, listing, parse, ranking
from keyspace.connection import call
from tests import factories as f
from tests.behaviour.test_list_shapes import listed, walk

CORES = [1, 2, 2, 64, 512, 512, 512, 512, 128, 256]
CHIPS = ["quantum_processor", "neural_processor", "crypto_processor"]
SET = "mf:rank:driver:cores"


async def members(ks: Keyspace) -> dict[bytes, float]:
    found: list[Any] = await ks.client.zrange(SET, 0, -1, withscores=True)
    return {member: float(score) for member, score in found}


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch, ks: Keyspace) -> None:
    monkeypatch.setattr(ranking, "FIRST", 3)
    monkeypatch.setattr(ranking, "PER_ROW", 1)
    monkeypatch.setattr(ranking, "MOST", 40)
    # No probe of the index first: it answers every list of this size within it.
    ks.queries.bounded = False


@pytest.fixture
def walked(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """One entry per page read through the set: True when the set answered it."""
    answered: list[bool] = []
    rows = ranking.rows

    async def counted(*args: Any) -> list[Any] | None:
        found = await rows(*args)
        answered.append(found is not None)
        return found

    monkeypatch.setattr(ranking, "rows", counted)
    return answered


async def world(ks: Keyspace, n: int = 45) -> list[dict[str, Any]]:
    rng = random.Random(7)
    for name in ("A", "B", "C"):
        await f.user(ks, name)
    made = []
    for i in range(n):
        owner = "user_3" if i % 15 == 0 else f"user_{1 + i % 2}"
        chip = f.chip(cores=rng.choice(CORES), chip_type=rng.choice(CHIPS))
        made.append((await f.driver(ks, owner, chip_data=chip)).doc)
    return made


def expected(docs: list[dict[str, Any]], desc: bool, **only: Any) -> list[str]:
    low, high = only.pop("low", -1), only.pop("high", 10**9)

    def keep(d: dict[str, Any]) -> bool:
        cores = d["chip_data"]["cores"]
        chip = only.get("chip_type")
        user = only.get("user_id")
        return (
            low <= cores <= high
            and (chip is None or d["chip_data"]["type"] == chip)
            and (user is None or d["user_id"] == user)
        )

    kept = sorted(
        (d for d in docs if keep(d)), key=lambda d: (d["chip_data"]["cores"], d["driver_id"])
    )
    return [d["driver_id"] for d in (reversed(kept) if desc else kept)]


@pytest.mark.parametrize("limit", ["1", "2", "3", "5", "8", "50"])
async def test_ranked_pages_answer_what_the_documents_do(
    ks: Keyspace, limit: str, walked: list[bool]
) -> None:
    docs = await world(ks)
    for desc in (True, False):
        sort = "-cores" if desc else "cores"
        only: dict[str, Any]
        for only in (
            {},
            {"chip_type": "quantum_processor"},
            {"chip_type": "neural_processor", "low": 64},
            {"low": 2, "high": 512},
            {"chip_type": "crypto_processor", "high": 256},
        ):
            params: dict[str, str] = {"sort": sort, "limit": limit}
            if "chip_type" in only:
                params["chip_type"] = str(only["chip_type"])
            if "low" in only:
                params["cores_min"] = str(only["low"])
            if "high" in only:
                params["cores_max"] = str(only["high"])
            want = expected(docs, desc, **only)
            none, totals = await walk(ks, **params, count="none")
            exact, _ = await walk(ks, **params)
            assert none == exact == want, (params, only)
            assert set(totals) == {None}
    if ks.capabilities.search and limit != "50":  # 51 rows: more than a walk may visit
        assert walked[0] and walked.count(True) > len(walked) // 2  # the set answered
    elif not ks.capabilities.search:
        assert not walked  # the scan path has no set to read


async def test_a_selective_filter_gives_up_on_the_set_and_answers_the_same(
    ks: Keyspace, walked: list[bool]
) -> None:
    docs = await world(ks)
    want = expected(docs, True, user_id="user_3")
    assert len(want) == 3
    found, _ = await walk(ks, user_id="user_3", sort="-cores", limit="2", count="none")
    assert found == want
    if ks.capabilities.search:
        assert False in walked


async def test_a_set_out_of_line_with_the_index_is_not_trusted(
    ks: Keyspace, walked: list[bool]
) -> None:
    if not ks.capabilities.search:
        pytest.skip("the scan path reads no set")
    docs = await world(ks)
    last = expected(docs, True)[-1]
    await ks.client.zadd(SET, {last: 1e9})  # as if read a moment before a write moved it
    found, _ = await walk(ks, sort="-cores", limit="4", count="none")
    assert found == expected(docs, True)
    assert walked[0] is False


async def test_the_probe_answers_a_list_the_index_reads_quickly(
    ks: Keyspace, walked: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    if not ks.capabilities.search:
        pytest.skip("the scan path reads no set")
    docs = await world(ks)
    ks.queries.bounded = True  # what setup found on this server: it fails a timed-out query
    found, _ = await walk(ks, sort="-cores", limit="4", count="none")
    assert found == expected(docs, True) and walked == []
    ask = listing.ask_index

    async def slow(client: Any, spec: Any, *commands: list[Any]) -> list[Any]:
        if "TIMEOUT" in commands[0]:  # as the server answers a probe past its time
            raise listing.TimedOut("drivers query timed out: Timeout limit was reached")
        return await ask(client, spec, *commands)

    monkeypatch.setattr(listing, "ask_index", slow)
    found, _ = await walk(ks, sort="-cores", limit="4", count="none")
    assert found == expected(docs, True) and walked[0]  # read from the set


async def test_every_write_keeps_the_set_as_the_documents_are(ks: Keyspace) -> None:
    docs = await world(ks, n=12)
    ids = [d["driver_id"] for d in docs]
    stored = await ks.get(DRIVER, ids[1])
    await ks.patch(DRIVER, ids[1], {"chip_data": {**stored.doc["chip_data"], "cores": 777}})
    await ks.delete(DRIVER, ids[2])
    await ks.delete(USER, "user_3")  # cascades to its drivers (driver_1)
    await ks.create(DRIVER, {**docs[3], "driver_id": "driver_x1"})  # an explicit id
    want = {}
    for doc_id in [*ids, "driver_x1"]:
        if await ks.client.exists(f"driver:{doc_id}"):
            cores = (await ks.get(DRIVER, doc_id)).doc["chip_data"]["cores"]
            want[doc_id.encode()] = float(cores)
    assert len(want) == 11 and want[ids[1].encode()] == 777.0
    assert await members(ks) == want


async def test_reprojection_brings_the_set_back_in_line(ks: Keyspace) -> None:
    docs = await world(ks, n=10)
    await ks.client.delete(SET)
    await ks.client.zadd(SET, {"driver_999": 3.0, docs[0]["driver_id"]: 1e9})
    await ks.reproject(DRIVER)
    want = {d["driver_id"].encode(): float(d["chip_data"]["cores"]) for d in docs}
    assert await members(ks) == want


async def test_a_document_without_a_number_has_no_member(ks: Keyspace) -> None:
    docs = await world(ks, n=3)
    key = f"driver:{docs[0]['driver_id']}"
    await call(ks.client, "JSON.SET", key, "$.chip_data.cores", '"many"')  # around the service
    await ks.reproject(DRIVER)
    assert await ks.client.zscore(SET, docs[0]["driver_id"]) is None
    assert await ks.client.zcard(SET) == 2
    if ks.capabilities.search:
        # Past the set's end a page without a range reads the usual way, for such documents.
        found, _ = await walk(ks, sort="-cores", limit="50", count="none")
        exact, _ = await walk(ks, sort="-cores", limit="50")
        assert found == exact


async def test_a_cursor_of_another_query_skips_nothing(ks: Keyspace) -> None:
    """Review 26: a cursor at (512, x) on a list whose range ends at 100 counted its offset
    among the 512s, and skipped the first rows at 100 and below."""
    await f.user(ks, "A")
    for i in range(6):
        await f.driver(ks, "user_1", cores=512, driver_id=f"big_{i}")
    for i in range(6):
        await f.driver(ks, "user_1", cores=64, driver_id=f"small_{i}", status="optimized")
    first, _ = await walk(ks, sort="-cores", limit="3", count="none")
    page = await listed(ks, sort="-cores", limit="3", count="none")
    assert page.next_cursor is not None and first[:3] == [d["driver_id"] for d in page.items]
    params = {"sort": "-cores", "limit": "10", "cores_max": "100", "user_id": "user_1"}
    none = await listed(ks, **params, count="none", cursor=page.next_cursor)
    exact = await listed(ks, **params, count="exact", cursor=page.next_cursor)
    assert [d["driver_id"] for d in none.items] == [d["driver_id"] for d in exact.items]
    assert len(none.items) == 6


@pytest.mark.parametrize("write", ["delete an earlier non-match", "create a tied non-match"])
async def test_a_write_between_chunks_moves_no_unchanged_row(
    ks: Keyspace, write: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review 26: chunks were read by position, so a write between two of them shifted the
    walk: an unchanged match was skipped, or another returned twice."""
    if not ks.capabilities.search:
        pytest.skip("the scan path reads no set")
    for name in ("A", "B"):
        await f.user(ks, name)
    for i in range(12):
        owner = "user_2" if i in (9, 10) else "user_1"
        await f.driver(ks, owner, cores=512, driver_id=f"d{i:02d}")
    want = [f"d{i:02d}" for i in reversed(range(12)) if i not in (9, 10)]
    calls = 0
    rank_walk = ks.scripts.rank_walk

    async def racing(*args: Any) -> list[Any]:
        nonlocal calls
        calls += 1
        if calls == 2:  # another client's commit, between the walk's chunks
            if write.startswith("delete"):
                await ks.delete(DRIVER, "d10")
            else:
                await f.driver(ks, "user_2", cores=512, driver_id="d99")
        return await rank_walk(*args)

    monkeypatch.setattr(ks.scripts, "rank_walk", racing)
    seen, _ = await walk(ks, sort="-cores", limit="4", user_id="user_1", count="none")
    assert calls > 2 and seen == want


async def test_a_set_that_lost_members_is_not_trusted(ks: Keyspace, walked: list[bool]) -> None:
    """Review 26: a member deleted by hand (or a set never filled) made its document vanish
    from every count=none list until `check --repair`."""
    docs = await world(ks, n=20)
    await ks.client.zrem(SET, docs[0]["driver_id"])
    found, _ = await walk(ks, sort="-cores", limit="4", count="none")
    assert found == expected(docs, True)
    await ks.client.delete(SET)
    found, _ = await walk(ks, sort="-cores", limit="4", chip_type=CHIPS[0], count="none")
    assert found == expected(docs, True, chip_type=CHIPS[0])
    if ks.capabilities.search:
        assert walked and not any(walked)  # the set answered none of them


async def test_a_walk_on_another_client_loads_its_script_after_a_flush(
    ks: Keyspace, walked: list[bool]
) -> None:
    """A replica read (MULTIFRAME_READ_FROM=replica) walks on the reader's client, not the
    keyspace's runner: a server that lost its scripts (NOSCRIPT) is given it again."""
    if not ks.capabilities.search:
        pytest.skip("the scan path reads no set")
    docs = await world(ks)
    reader = Redis(connection_pool=ks.client.connection_pool)  # another client object
    await ks.client.script_flush()
    q = parse(DRIVER, {"sort": ["-cores"], "limit": ["5"], "count": ["none"]})
    page = await listing.search_page(reader, DRIVER, q, walk=ks.scripts.rank_walk)
    assert [d["driver_id"] for d in page.items] == expected(docs, True)[:5] and walked == [True]


async def test_a_range_the_set_lost_is_read_the_usual_way(ks: Keyspace) -> None:
    """Review 27: a walk that met no member at all in the query's range answered an empty
    page before any check, though the index had the documents."""
    docs = await world(ks, n=20)
    in_range = [d["driver_id"] for d in docs if d["chip_data"]["cores"] >= 256]
    await ks.client.zrem(SET, *in_range)
    found, _ = await walk(ks, sort="-cores", cores_min="256", chip_type=CHIPS[0], count="none")
    assert found == expected(docs, True, low=256, chip_type=CHIPS[0]) != []
    await ks.client.delete(SET)
    found, _ = await walk(ks, sort="cores", cores_max="64", chip_type=CHIPS[1], count="none")
    assert found == expected(docs, False, high=64, chip_type=CHIPS[1]) != []
