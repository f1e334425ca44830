"""What a commit's feed trim costs when nothing is old enough to trim (the usual case): a
reverse range that finds nothing below the age cut visits the whole stream (10 ms a commit
at 77k events), so the trim reads the first entry forward and goes no further. Counted with
INFO commandstats on the real server: a timing would be a benchmark, not a test."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from keyspace import Keyspace
from keyspace.connection import call
from tests import factories as f

pytestmark = pytest.mark.redis


async def calls(client: Redis, command: str) -> int:
    stats: dict[str, Any] = await client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def test_a_young_feed_is_trimmed_without_a_reverse_range(real_client: Redis) -> None:
    ks = Keyspace(real_client)
    await ks.setup()
    owner = await f.user(ks, "trimmer")
    before = await calls(real_client, "xrevrange")
    for n in range(20):
        await f.driver(ks, owner.doc["user_id"], cores=n + 1)
    assert await calls(real_client, "xrevrange") == before
    assert await real_client.xlen(ks.schema.names.changes_key()) == 21


async def test_an_old_event_is_still_trimmed_and_recorded(real_client: Redis) -> None:
    ks = Keyspace(real_client)
    await ks.setup()
    stream = ks.schema.names.changes_key()
    await real_client.xadd(stream, {"op": "create"}, id="1-1")  # from 1970: past any age cap
    owner = await f.user(ks, "trimmer")
    entries = await call(real_client, "XRANGE", stream, "-", "+")
    assert [e[0] for e in entries if e[0] == b"1-1"] == []
    info = await call(real_client, "XINFO", "STREAM", stream)
    fields = dict(zip(info[::2], info[1::2], strict=True))
    assert fields[b"max-deleted-entry-id"] == b"1-1"
    assert owner.doc["user_id"]
