"""What a commit's feed trim costs when nothing is old enough to trim (the usual case): a
reverse range that finds nothing below the age cut visits the whole stream (10 ms a commit
at 77k events), so the trim reads the first entry forward and goes no further. Counted with
INFO commandstats on the real server: a timing would be a benchmark, not a test."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from keyspace import Keyspace
from keyspace.changes import ChangeCap
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


async def test_a_feed_at_its_cap_reads_no_entry_when_the_trim_removes_none(
    real_client: Redis,
) -> None:
    # At the cap nearly every commit trims nothing ('~' waits for a whole node): XTRIM's count
    # says so, and no entry is read (before: two more XRANGEs a commit, ~5 us of Redis).
    ks = Keyspace(real_client, changes_cap=ChangeCap(maxlen=5, max_age=86_400))
    await ks.setup()
    stream = ks.schema.names.changes_key()
    owner = await f.user(ks, "trimmer")
    for n in range(10):
        await f.driver(ks, owner.doc["user_id"], cores=n + 1)
    length = await real_client.xlen(stream)
    assert length > 5  # over the cap: no whole node can go yet
    before = await calls(real_client, "xrange"), await calls(real_client, "xtrim")
    for n in range(10):
        await f.driver(ks, owner.doc["user_id"], cores=n + 1)
    assert await calls(real_client, "xtrim") - before[1] == 10  # each commit asked
    # The age probe's alone (one a commit): the length trim read no entry.
    assert await calls(real_client, "xrange") - before[0] == 10
    assert await real_client.xlen(stream) == length + 10
