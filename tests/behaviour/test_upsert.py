"""``table(..., upsert=True)``: a replace of a missing document creates it under the id asked
for, in the optimistic loop (one commit per attempt), on a schema declared here; fakeredis
and the real server (RediSearch and scan paths)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import fakeredis
import pytest
from redis.asyncio import Redis

from keyspace import Keyspace, StaleRevision, UniqueConflict, connect, parse
from keyspace.declare import NOW, enum, ref, string, table, timestamp
from keyspace.schema import IdStrategy, OnDelete, Schema
from keyspace.server import EmbeddedRedis
from keyspace.system import System
from tests.conftest import BACKENDS

ACCOUNT = table("account", collection="accounts", id=IdStrategy.UUID, fields=(), owner="id")
ROOM = table("room", collection="rooms", id=IdStrategy.UUID, fields=(), owner=None)
BEACON = table(
    "beacon",
    prefix="acct:beacon",
    collection="beacons",
    id=IdStrategy.UUID,
    fields=(
        enum("state", ("on", "off"), index=True),
        string("nick", null=True, unique=True),
        ref("room_id", "room", null=True, on_delete=OnDelete.SET_NULL, index=True),
        timestamp("seen", default=NOW, updated_at=True),
    ),
    owner="id",
    upsert=True,
    ttl=60,
)
SYSTEM = System(
    name="upserts",
    title="upserts",
    schema=Schema((ACCOUNT, ROOM, BEACON)),
    namespace="upserts:",
    principal="account",
).served()
SPEC = SYSTEM.schema.entity("beacon")
A = "a" * 8 + "-0000-4000-8000-" + "0" * 12
B = "b" * 8 + "-0000-4000-8000-" + "0" * 12
ROOM_ID = "c" * 8 + "-0000-4000-8000-" + "0" * 12


@pytest.fixture(params=BACKENDS)
async def uks(request: pytest.FixtureRequest) -> AsyncIterator[Keyspace]:
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


async def test_creates_then_replaces_with_ttl_and_claims(uks: Keyspace) -> None:
    made = await uks.upsert(SPEC, A, {"state": "on", "nick": "neo"})
    assert made.created and made.stored.doc["id"] == A and made.stored.doc["room_id"] is None
    key = SPEC.key(A)
    assert 0 < await uks.client.pttl(key) <= 60_000
    await uks.client.pexpire(key, 5_000)  # a write gives it its whole TTL again
    again = await uks.upsert(SPEC, A, {"state": "off", "nick": "neo2"})
    assert not again.created and again.stored.doc["state"] == "off"
    assert await uks.client.pttl(key) > 50_000
    assert again.stored.doc["seen"] >= made.stored.doc["seen"]
    # The old nick is free, the new one held: a replace re-claims uniques.
    assert (await uks.upsert(SPEC, B, {"state": "on", "nick": "neo"})).created
    with pytest.raises(UniqueConflict):
        await uks.upsert(SPEC, B, {"state": "on", "nick": "neo2"})
    page = await uks.list(SPEC, parse(SPEC, {"state": ["on"]}))
    assert [d["id"] for d in page.items] == [B]


async def test_references_guards_and_pinned_revisions(uks: Keyspace) -> None:
    with pytest.raises(Exception, match="room_id"):  # a missing reference creates nothing
        await uks.upsert(SPEC, A, {"state": "on", "room_id": ROOM_ID})
    assert not await uks.client.exists(SPEC.key(A))
    await uks.create(SYSTEM.schema.entity("room"), {"id": ROOM_ID})
    seen: list[Mapping[str, Any]] = []

    def refuse(doc: Mapping[str, Any]) -> None:
        seen.append(doc)
        raise PermissionError("no")

    with pytest.raises(PermissionError):
        await uks.upsert(SPEC, A, {"state": "on"}, create_guard=refuse)
    assert seen[0]["id"] == A and not await uks.client.exists(SPEC.key(A))
    with pytest.raises(StaleRevision):  # If-Match on a missing document: no revision matches
        await uks.upsert(SPEC, A, {"state": "on"}, if_revision="x")
    made = await uks.upsert(
        SPEC, A, {"state": "on", "room_id": ROOM_ID}, create_guard=lambda d: None
    )
    with pytest.raises(StaleRevision):
        await uks.upsert(SPEC, A, {"state": "off"}, if_revision="x")
    pinned = await uks.upsert(SPEC, A, {"state": "off"}, if_revision=made.stored.revision)
    assert not pinned.created and pinned.stored.doc["room_id"] is None


async def test_concurrent_upserts_create_once(uks: Keyspace) -> None:
    done = await asyncio.gather(*(uks.upsert(SPEC, A, {"state": "on"}) for _ in range(10)))
    assert sum(d.created for d in done) == 1
    assert [d.stored.doc["id"] for d in done] == [A] * 10


def test_upsert_needs_ids_a_client_chooses() -> None:
    with pytest.raises(AssertionError, match="upsert"):
        table("counted", collection="counted", fields=(), upsert=True)
