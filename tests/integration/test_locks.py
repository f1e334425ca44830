"""Locks with fencing tokens on the real server (issue 15 "Locks"): one winner among 50
concurrent acquirers, expiry frees a lock, fencing tokens strictly increase across acquire,
expire, release and acquire, and a former holder cannot release twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from keyspace import Keyspace, NotFound, connect
from keyspace.connection import call
from keyspace.declare import Lockable, OpLog, string, table
from keyspace.errors import Paused
from keyspace.locks import Lock, Locked, NotLocked, NotLockHolder, StaleFencingToken
from keyspace.schema import EntitySpec, IdStrategy, Schema
from keyspace.server import EmbeddedRedis
from keyspace.system import System

pytestmark = pytest.mark.redis

ACCOUNT = table("account", collection="accounts", id=IdStrategy.CUID, fields=(), owner="id")
DOC = table(
    "document",
    collection="documents",
    id=IdStrategy.UUID,
    fields=(string("title"),),
    lock=Lockable(),  # the seed's 30 s
)
BRIEF = table(  # a lock short enough to watch it expire
    "brief",
    collection="briefs",
    id=IdStrategy.UUID,
    fields=(string("title"),),
    lock=Lockable(ttl_seconds=1, key="lock:brief"),
)
SYSTEM = System(
    name="locking",
    title="locking",
    schema=Schema((ACCOUNT, DOC, BRIEF)),
    namespace="locking:",
    principal="account",
).served()
DOCS, BRIEFS = SYSTEM.schema.entity("document"), SYSTEM.schema.entity("brief")


@pytest.fixture
async def ks(real_client: Redis) -> Keyspace:
    keyspace = Keyspace(real_client, SYSTEM.schema)
    await keyspace.setup()
    return keyspace


async def new(ks: Keyspace, spec: EntitySpec) -> str:
    return str((await ks.create(spec, {"title": "draft"})).doc["id"])


async def expire(ks: Keyspace, spec: EntitySpec, doc_id: str) -> None:
    """Wait until the document's lock has expired on the server (real expiry, no DEL)."""
    assert spec.lock is not None
    key = spec.names.lock_key_of(spec.lock.key, doc_id)
    for _ in range(60):
        if not await ks.client.exists(key):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{key} did not expire")


async def test_50_concurrent_acquirers_get_exactly_one_lock(ks: Keyspace) -> None:
    doc_id = await new(ks, DOCS)

    async def attempt(n: int) -> Lock | str:
        try:
            return await ks.locks.acquire(DOCS, doc_id, f"user{n}")
        except Locked as exc:
            return str(exc.details["holder"])

    results = await asyncio.gather(*(attempt(n) for n in range(50)))
    granted = [r for r in results if isinstance(r, Lock)]
    assert len(granted) == 1
    winner = granted[0]
    assert winner.fencing_token == 1 and winner.expires_in == 30
    assert {r for r in results if isinstance(r, str)} == {winner.holder}  # all name the winner
    stored = orjson.loads(await ks.client.get(f"locking:doc:lock:{doc_id}") or b"")
    assert stored == {
        "user_id": winner.holder,
        "locked_at": winner.locked_at,
        "operation": "editing",
        "fencing_token": 1,
    }
    assert 29_000 < await ks.client.pttl(f"locking:doc:lock:{doc_id}") <= 30_000
    # Only the one acquire drew a token; the counter never expires.
    assert await ks.client.get(f"locking:mf:fence:doc:lock:{doc_id}") == b"1"
    assert await ks.client.ttl(f"locking:mf:fence:doc:lock:{doc_id}") == -1


async def test_expiry_frees_the_lock_and_tokens_strictly_increase(ks: Keyspace) -> None:
    doc_id = await new(ks, BRIEFS)
    tokens = []
    first = await ks.locks.acquire(BRIEFS, doc_id, "ada")
    tokens.append(first.fencing_token)
    with pytest.raises(Locked):
        await ks.locks.acquire(BRIEFS, doc_id, "bob")
    await expire(ks, BRIEFS, doc_id)
    second = await ks.locks.acquire(BRIEFS, doc_id, "bob")  # expiry freed it
    tokens.append(second.fencing_token)
    await ks.locks.release(BRIEFS, doc_id, "bob")
    third = await ks.locks.acquire(BRIEFS, doc_id, "ada", "reviewing")
    tokens.append(third.fencing_token)
    await expire(ks, BRIEFS, doc_id)
    tokens.append((await ks.locks.acquire(BRIEFS, doc_id, "ada")).fencing_token)
    assert tokens == sorted(set(tokens)) and tokens == [1, 2, 3, 4]
    assert third.operation == "reviewing"


async def test_a_former_holder_cannot_release_twice(ks: Keyspace) -> None:
    doc_id = await new(ks, BRIEFS)
    await ks.locks.acquire(BRIEFS, doc_id, "ada")
    released = await ks.locks.release(BRIEFS, doc_id, "ada")
    assert released.holder == "ada"
    with pytest.raises(NotLocked):  # released: gone, 404
        await ks.locks.release(BRIEFS, doc_id, "ada")
    await ks.locks.acquire(BRIEFS, doc_id, "ada")
    await expire(ks, BRIEFS, doc_id)
    with pytest.raises(NotLocked):  # expired: gone, 404
        await ks.locks.release(BRIEFS, doc_id, "ada")
    await ks.locks.acquire(BRIEFS, doc_id, "bob")
    with pytest.raises(NotLockHolder):  # someone else's now: 403, and bob keeps it
        await ks.locks.release(BRIEFS, doc_id, "ada")
    assert (await ks.locks.get(BRIEFS, doc_id)).holder == "bob"


async def test_refresh_extends_the_holders_lock_only(ks: Keyspace) -> None:
    doc_id = await new(ks, DOCS)
    key = f"locking:doc:lock:{doc_id}"
    lock = await ks.locks.acquire(DOCS, doc_id, "ada")
    await ks.client.pexpire(key, 5_000)  # as if 25 s had passed
    with pytest.raises(NotLockHolder):
        await ks.locks.refresh(DOCS, doc_id, "bob")
    assert await ks.client.pttl(key) <= 5_000
    refreshed = await ks.locks.refresh(DOCS, doc_id, "ada", fencing_token=lock.fencing_token)
    assert refreshed.fencing_token == lock.fencing_token and refreshed.expires_in == 30
    assert await ks.client.pttl(key) > 29_000
    with pytest.raises(StaleFencingToken):
        await ks.locks.refresh(DOCS, doc_id, "ada", fencing_token=lock.fencing_token + 1)
    assert (await ks.locks.refresh(DOCS, doc_id, "root", admin=True)).holder == "ada"
    await ks.locks.release(DOCS, doc_id, "root", admin=True)
    with pytest.raises(NotLocked):
        await ks.locks.refresh(DOCS, doc_id, "ada")


async def test_a_stale_fencing_token_cannot_release_a_newer_lock(ks: Keyspace) -> None:
    doc_id = await new(ks, BRIEFS)
    old = await ks.locks.acquire(BRIEFS, doc_id, "ada")
    await expire(ks, BRIEFS, doc_id)
    await ks.locks.acquire(BRIEFS, doc_id, "ada")  # ada again, from another tab
    with pytest.raises(StaleFencingToken) as stale:
        await ks.locks.release(BRIEFS, doc_id, "ada", fencing_token=old.fencing_token)
    assert stale.value.details == {"fencing_token": old.fencing_token, "current": 2}
    assert (await ks.locks.get(BRIEFS, doc_id)).fencing_token == 2


async def test_a_missing_document_cannot_be_locked(ks: Keyspace) -> None:
    missing = "0b9a6c1e-3f1c-4f0e-9a57-0d6f7e3c2b11"
    with pytest.raises(NotFound) as refused:
        await ks.locks.acquire(DOCS, missing, "ada")
    assert not isinstance(refused.value, NotLocked)
    with pytest.raises(NotFound):
        await ks.locks.acquire(DOCS, "bad:id", "ada")
    drawn = [k async for k in ks.client.scan_iter(match="locking:*lock*")]
    assert drawn == []  # no lock, no token drawn


async def test_the_pause_refuses_every_lock_call(ks: Keyspace) -> None:
    doc_id = await new(ks, DOCS)
    await ks.locks.acquire(DOCS, doc_id, "ada")
    await ks.client.set("locking:mf:pause", "{}")
    with pytest.raises(Paused):
        await ks.locks.release(DOCS, doc_id, "ada")
    with pytest.raises(Paused):
        await ks.locks.acquire(DOCS, await new_unpaused(ks), "bob")
    await ks.client.delete("locking:mf:pause")
    assert (await ks.locks.get(DOCS, doc_id)).holder == "ada"  # nothing was released


async def new_unpaused(ks: Keyspace) -> str:
    """A document created behind the pause's back (the pause refuses creates too)."""
    doc_id = "5d1f0d2e-1c7a-4f8e-8b0c-9d3e2f1a0b4c"
    doc = orjson.dumps({"id": doc_id, "title": "x"})
    await call(ks.client, "JSON.SET", f"locking:document:{doc_id}", "$", doc)
    return doc_id


async def test_without_a_namespace_the_service_user_may_use_the_seeds_keys(
    tmp_path: Path,
) -> None:
    logged = table(
        "document",
        collection="documents",
        id=IdStrategy.UUID,
        fields=(string("title"),),
        lock=Lockable(),
        oplog=OpLog(),
    )
    schema = Schema((ACCOUNT, logged))
    bare = System("bare", "bare", schema, namespace="", principal="account").served()
    spec = bare.schema.entity("document")
    server = EmbeddedRedis(tmp_path / "bare", schema=bare.schema)  # its ACL: this schema's keys
    server.start()
    client = connect(server.url)  # the least-privilege service user
    try:
        ks = Keyspace(client, bare.schema)
        await ks.setup()
        doc_id = str((await ks.create(spec, {"title": "t"})).doc["id"])
        assert (await ks.locks.acquire(spec, doc_id, "ada")).fencing_token == 1
        assert (await ks.oplogs.append(spec, doc_id, "ada", OP)).seqs == [1]
        assert await ks.client.exists(f"doc:lock:{doc_id}", f"doc:ops:{doc_id}") == 2
    finally:
        await client.aclose()
        server.stop()


OP = {"operation": "insert", "position": 0, "content": "a"}
