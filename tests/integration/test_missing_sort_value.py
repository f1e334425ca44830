"""A document whose indexed sort value went missing outside the service (a projection edited
by hand: `check` names it) is skipped by cursor pages sorted by that field. RediSearch fails
a FILTER comparing a row without the value ("has no value"), which made every page after
the first of such a walk a 500."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from keyspace import DRIVER, Keyspace
from keyspace.connection import call
from keyspace.query import parse
from tests import factories as f

pytestmark = pytest.mark.redis


async def _walk(ks: Keyspace, sort: str, count: str) -> list[str]:
    seen: list[str] = []
    params = {"sort": [sort], "limit": ["2"], "count": [count]}
    page = await ks.list(DRIVER, parse(DRIVER, params))
    seen += [d["driver_id"] for d in page.items]
    while page.next_cursor:
        cursor = {**params, "cursor": [page.next_cursor]}
        page = await ks.list(DRIVER, parse(DRIVER, cursor))
        seen += [d["driver_id"] for d in page.items]
    return seen


@pytest.mark.parametrize("sort", ["-cores", "cores", "-timestamp", "timestamp"])
@pytest.mark.parametrize("count", ["none", "exact"])
async def test_a_walk_skips_a_document_without_its_sort_value(
    real_client: Redis, sort: str, count: str
) -> None:
    ks = Keyspace(real_client)
    await ks.setup()
    ks.queries.bounded = False  # the ranked walk too, on every page
    owner = (await f.user(ks, "Ada")).doc["user_id"]
    ids = []
    for n in range(7):
        stamp = f"2025-05-0{n + 1}T10:00:00"
        made = await f.driver(ks, owner, cores=64 * (n + 1), timestamp=stamp)
        ids.append(made.doc["driver_id"])
    field = sort.lstrip("-")
    lost = ids[3]
    await call(
        real_client, "JSON.DEL", ks.schema.names.projection_key("driver", lost), f"$.{field}"
    )
    walked = await _walk(ks, sort, count)
    others = [i for i in ids if i != lost]
    expected = others[::-1] if sort.startswith("-") else others
    # Sorted last when it is read at all (a first page that reaches the end holds it).
    assert [i for i in walked if i != lost] == expected
    assert walked.count(lost) <= 1
