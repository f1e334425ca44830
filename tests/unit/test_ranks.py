"""Ranked fields (keyspace.ranks, keyspace.ranking) without Redis: the scores documents get,
the ops every write plan carries for them, what a declaration may rank, and which pages read
the set with which bounds."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from keyspace import DRIVER, parse, ranking, ranks
from keyspace.features import Expiry
from keyspace.plan import plan_create, plan_create_generated, plan_update
from keyspace.schema import FieldKind, Indexed
from keyspace.systems.multiframe.entities import MULTIFRAME
from tests.unit.test_plan import decode, driver, loaded

CORES = DRIVER.indexed("cores")
SET = "mf:rank:driver:cores"


def with_cores(value: Any) -> dict[str, Any]:
    doc = driver("driver_1", "user_1")
    return {**doc, "chip_data": {**doc["chip_data"], "cores": value}}


@pytest.mark.parametrize(
    ("value", "score"),
    [(128, "128.0"), (2.5, "2.5"), (-3, "-3.0"), (10**22, "1e+22"), (0, "0.0")],
)
def test_a_number_scores_as_the_index_holds_it(value: Any, score: str) -> None:
    assert CORES is not None
    assert ranks.score(CORES, with_cores(value)) == score
    assert float(score) == float(value)  # the index's double


@pytest.mark.parametrize("value", [None, "128", True, 10**400, [1]])
def test_anything_else_has_no_score(value: Any) -> None:
    assert CORES is not None
    assert ranks.score(CORES, with_cores(value)) is None
    assert ranks.score(CORES, {"driver_id": "d"}) is None


def test_creates_updates_and_generated_ids_write_the_member() -> None:
    _, writes = decode(
        plan_create(MULTIFRAME, DRIVER, "driver_1", with_cores(64), explicit_id=True)
    )
    assert ("zadd", SET, "64.0", "driver_1") in writes
    generated = with_cores(8) | {"driver_id": "stand_in"}
    _, writes = decode(plan_create_generated(MULTIFRAME, DRIVER, generated, "stand_in"))
    assert ("zaddid", SET, "8.0") in writes
    old = loaded(DRIVER, with_cores(64))
    _, writes = decode(plan_update(MULTIFRAME, old, with_cores(96)))
    assert ("zadd", SET, "96.0", "driver_1") in writes


def test_a_value_without_a_score_removes_the_member() -> None:
    old = loaded(DRIVER, with_cores(64))
    _, writes = decode(plan_update(MULTIFRAME, old, with_cores("many")))
    assert ("zrem", SET, "driver_1") in writes


def test_only_a_sortable_number_may_be_ranked() -> None:
    Indexed("n", "n", FieldKind.NUMERIC, sortable=True, ranked=True)
    for bad in (
        {"kind": FieldKind.NUMERIC},  # not sortable
        {"kind": FieldKind.TAG, "sortable": True},
        {"kind": FieldKind.DECIMAL, "sortable": True},
        {"kind": FieldKind.NUMERIC, "sortable": True, "array": True},
    ):
        with pytest.raises(AssertionError, match="ranked"):
            Indexed("n", "n", ranked=True, **bad)


def test_an_expiring_entity_ranks_nothing() -> None:
    with pytest.raises(AssertionError, match="expire"):
        dataclasses.replace(DRIVER, expiry=Expiry(seconds=60))


def query(**params: str) -> Any:
    return parse(DRIVER, {k: [v] for k, v in params.items()})


def test_pages_that_read_the_set() -> None:
    assert ranking.applies(DRIVER, query(sort="-cores", chip_type="x", count="none"))
    assert ranking.applies(DRIVER, query(sort="cores", count="none"))
    assert not ranking.applies(DRIVER, query(sort="-cores", chip_type="x"))  # a total
    assert not ranking.applies(DRIVER, query(sort="-timestamp", count="none"))  # not ranked
    # The windows of keyspace.pages answer a bounded range alone.
    windowed = query(sort="-cores", cores_min="1", cores_max="9", count="none")
    assert not ranking.applies(DRIVER, windowed)


def test_bounds_follow_the_order_the_range_and_the_cursor() -> None:
    b = ranking.bounds(DRIVER, query(sort="-cores", cores_min="256", count="none"))
    assert (b.first, b.last, b.closed) == (math.inf, 256.0, True)
    b = ranking.bounds(DRIVER, query(sort="cores", cores_max="64", count="none"))
    assert (b.first, b.last, b.closed) == (-math.inf, 64.0, True)
    b = ranking.bounds(DRIVER, query(sort="-cores", chip_type="x", count="none"))
    assert (b.first, b.last, b.closed) == (math.inf, -math.inf, False)


def test_a_chunk_grows_with_the_density_seen() -> None:
    # 26 more rows at 2.5%: 1,040 candidates, with 1.5x to spare
    assert ranking._next_size(50, 25, 1000, 1_000_000) == 1560
    assert ranking._next_size(50, 50, 1000, 1_000_000) == ranking.FIRST  # one more row
    assert ranking._next_size(50, 1, 7000, 10**12) == ranking.MOST - 7000


def test_a_probe_is_the_page_command_with_a_timeout() -> None:
    page = ["FT.AGGREGATE", "idx", "*", "SORTBY", "2", "@cores", "DESC", "DIALECT", "2"]
    assert ranking.probe(page) == [*page, "TIMEOUT", str(ranking.PROBE_MS)]


def test_the_walk_gives_up_where_the_index_reads_less() -> None:
    # 1 match in 512 of 100k: ~195 matches in all, ~26k candidates still to visit
    assert ranking._next_size(50, 1, 512, 100_000) == 0
    assert ranking._next_size(50, 1, ranking.MOST, 10**9) == 0  # visited enough
