"""A write that appends a change-feed event reads the document it wrote once: the event's
revision and the document the commit returns (and an Idempotency-Key's outcome) share one
`JSON.GET`, and the event and the feed's trim share one `TIME`. Counted with INFO
commandstats on the real server; the shared read must still be the document as stored."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from keyspace import DRIVER, Keyspace, codec
from keyspace.connection import call
from tests import factories as f

pytestmark = pytest.mark.redis


async def _calls(client: Redis) -> dict[str, int]:
    stats: dict[str, Any] = await client.info("commandstats")
    return {
        name: int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("json.get", "time")
    }


async def _latest_rev(client: Redis, ks: Keyspace) -> str:
    entries: Any = await client.xrevrange(ks.schema.names.changes_key(), count=1)
    return str(entries[0][1][b"rev"].decode())


async def test_a_create_reads_its_document_once(real_client: Redis) -> None:
    ks = Keyspace(real_client)
    await ks.setup()
    owner = await f.user(ks, "reader")
    before = await _calls(real_client)
    made = await f.driver(ks, owner.doc["user_id"], cores=64)
    after = await _calls(real_client)
    assert after["json.get"] - before["json.get"] == 1  # was 2: the event's, then the reply's
    assert after["time"] - before["time"] == 1  # was 2: the event's, then the trim's
    stored = await call(real_client, "JSON.GET", f"driver:{made.doc['driver_id']}", ".")
    assert made.revision == codec.revision(stored)
    assert await _latest_rev(real_client, ks) == made.revision


async def test_an_update_returns_the_document_it_wrote(real_client: Redis) -> None:
    ks = Keyspace(real_client)
    await ks.setup()
    owner = await f.user(ks, "updater")
    made = await f.driver(ks, owner.doc["user_id"], cores=64)
    doc_id = made.doc["driver_id"]
    before = await _calls(real_client)
    changed = await ks.patch(DRIVER, doc_id, {"status": "optimized"}, if_revision=made.revision)
    after = await _calls(real_client)
    stored = await call(real_client, "JSON.GET", f"driver:{doc_id}", ".")
    assert changed.doc["status"] == "optimized"
    assert changed.revision == codec.revision(stored) != made.revision
    assert await _latest_rev(real_client, ks) == changed.revision
    # The patch's read of the document to merge into, the plan's revision check, then the
    # event's, shared with the reply: was four.
    assert after["json.get"] - before["json.get"] == 3
