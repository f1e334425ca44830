"""Review 31: a projection that lost an indexed time value outside the service (the case
tests/integration/test_missing_sort_value.py covers for cursor pages) was an error (500) on
the first page of a ranked walk (sort=cores, count=none), of an aggregation, and of any list
read without shadows, when the request ranged over that time field: those reads compile a
time range as string FILTERs, which had no exists() guard but on nullable fields."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from keyspace import DRIVER, Keyspace
from keyspace.aggregate import parse_aggregation
from keyspace.connection import call
from keyspace.query import parse
from tests import factories as f

pytestmark = pytest.mark.redis

RANGE = {"timestamp_min": ["2025-05-02T00:00:00"], "timestamp_max": ["2025-05-06T00:00:00"]}


async def _world(real_client: Redis) -> tuple[Keyspace, list[str]]:
    ks = Keyspace(real_client)
    await ks.setup()
    owner = (await f.user(ks, "Ada")).doc["user_id"]
    ids = []
    for n in range(7):
        made = await f.driver(ks, owner, cores=64 * (n + 1), timestamp=f"2025-05-0{n + 1}T10:00:00")
        ids.append(made.doc["driver_id"])
    lost = ids[3]
    key = ks.schema.names.projection_key("driver", lost)
    await call(real_client, "JSON.DEL", key, "$.timestamp")
    return ks, ids


@pytest.mark.parametrize("bounded", [False, True])
@pytest.mark.parametrize("sort", ["cores", "-cores"])
async def test_a_ranked_first_page_with_a_time_range_answers(
    real_client: Redis, sort: str, bounded: bool
) -> None:
    ks, _ = await _world(real_client)
    ks.queries.bounded = bounded
    params = {"sort": [sort], "limit": ["2"], "count": ["none"], **RANGE}
    page = await ks.list(DRIVER, parse(DRIVER, params))  # ResponseError: timestamp: has no value
    assert page.items


async def test_the_same_list_sorted_by_id_answers(real_client: Redis) -> None:
    # Control: the shadow range path answers the same filter.
    ks, _ = await _world(real_client)
    params = {"limit": ["2"], "count": ["none"], **RANGE}
    page = await ks.list(DRIVER, parse(DRIVER, params))
    assert page.items


async def test_an_aggregation_with_a_time_range_answers(real_client: Redis) -> None:
    ks, _ = await _world(real_client)
    agg = parse_aggregation(DRIVER, {"group_by": ["status"], **RANGE})
    result = await ks.aggregate(DRIVER, agg)  # ResponseError: timestamp: has no value
    assert result is not None


async def test_a_time_range_read_without_shadows_answers(real_client: Redis) -> None:
    # Any document marked odd for the field (a time the shadow cannot hold) sends every page
    # ranging over it to the string FILTERs, where the lost value fails the whole read.
    ks, ids = await _world(real_client)
    odd = ks.schema.names.projection_key("driver", ids[0])
    await call(real_client, "JSON.SET", odd, "$._odd_timestamp", '"1"')
    params = {"sort": ["-timestamp"], "limit": ["2"], **RANGE}
    page = await ks.list(DRIVER, parse(DRIVER, params))  # ResponseError: has no value
    assert page.items
