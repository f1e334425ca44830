"""Operation logs on the real server (issue 15 "Operation logs"): order, the cap and 410
``gone``, expiry an hour (here: a second) after the last append, concurrent appends getting
distinct consecutive numbers, and the lock guard with fencing tokens."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from keyspace import Keyspace, NotFound, connect, systems
from keyspace.declare import Lockable, OpLog, string, table
from keyspace.locks import Locked, StaleFencingToken
from keyspace.oplog import Gone
from keyspace.schema import EntitySpec, IdStrategy, Schema
from keyspace.server import EmbeddedRedis
from keyspace.system import System
from scripts.cli import run_cli
from scripts.exits import OK

pytestmark = pytest.mark.redis

ACCOUNT = table("account", collection="accounts", id=IdStrategy.CUID, fields=(), owner="id")
DOC = table(
    "document",
    collection="documents",
    id=IdStrategy.UUID,
    fields=(string("title"),),
    lock=Lockable(),
    oplog=OpLog(cap=5),
)
SCRATCH = table(  # a log short-lived enough to watch it expire, and no lock to guard it
    "scratch",
    collection="scratches",
    id=IdStrategy.UUID,
    fields=(string("title"),),
    oplog=OpLog(key="ops:scratch", ttl_seconds=1, lock_guarded=False),
)
SYSTEM = System(
    name="logging",
    title="logging",
    schema=Schema((ACCOUNT, DOC, SCRATCH)),
    namespace="logging:",
    principal="account",
).served()
DOCS, SCRATCHES = SYSTEM.schema.entity("document"), SYSTEM.schema.entity("scratch")


@pytest.fixture
async def ks(real_client: Redis) -> Keyspace:
    keyspace = Keyspace(real_client, SYSTEM.schema)
    await keyspace.setup()
    return keyspace


async def new(ks: Keyspace, spec: EntitySpec) -> str:
    return str((await ks.create(spec, {"title": "draft"})).doc["id"])


def insert(text: str, position: int = 0) -> dict[str, Any]:
    return {"operation": "insert", "position": position, "content": text}


async def test_entries_come_back_in_order_with_their_numbers(ks: Keyspace) -> None:
    doc_id = await new(ks, DOCS)
    first = await ks.oplogs.append(DOCS, doc_id, "ada", insert("a"))
    batch = await ks.oplogs.append(
        DOCS, doc_id, "ada", [insert("b", 1), {"operation": "delete", "position": 0}]
    )
    assert (first.seqs, batch.seqs) == ([1], [2, 3])
    got = await ks.oplogs.read(DOCS, doc_id)
    assert [(i["seq"], i["operation"], i["content"]) for i in got.items] == [
        (1, "insert", "a"),
        (2, "insert", "b"),
        (3, "delete", None),
    ]
    assert {i["user_id"] for i in got.items} == {"ada"}
    assert got.items[1]["timestamp"] == batch.timestamp
    assert (got.oldest_seq, got.latest_seq) == (1, 3)
    assert [i["seq"] for i in (await ks.oplogs.read(DOCS, doc_id, 1, 1)).items] == [2]
    assert (await ks.oplogs.read(DOCS, doc_id, 3)).items == []
    # Stored as the seed's list of JSON entries, expiring an hour after the last append.
    assert await ks.client.type(f"logging:doc:ops:{doc_id}") == b"list"
    assert 3_599_000 < await ks.client.pttl(f"logging:doc:ops:{doc_id}") <= 3_600_000


async def test_the_cap_drops_the_oldest_and_reading_before_them_is_gone(ks: Keyspace) -> None:
    doc_id = await new(ks, DOCS)
    for n in range(8):
        await ks.oplogs.append(DOCS, doc_id, "ada", insert(f"t{n + 1}"))
    assert await ks.client.llen(f"logging:doc:ops:{doc_id}") == 5
    with pytest.raises(Gone) as gone:
        await ks.oplogs.read(DOCS, doc_id, 2)  # 3 was dropped
    assert gone.value.details == {"since": 2, "oldest_seq": 4, "latest_seq": 8}
    kept = await ks.oplogs.read(DOCS, doc_id, 3)
    assert [(i["seq"], i["content"]) for i in kept.items] == [(n, f"t{n}") for n in range(4, 9)]
    with pytest.raises(Gone):
        await ks.oplogs.read(DOCS, doc_id, 9)  # past the last: no such entry


async def test_the_log_expires_after_its_last_append_and_numbers_go_on(ks: Keyspace) -> None:
    doc_id = await new(ks, SCRATCHES)
    key = f"logging:ops:scratch:{doc_id}"
    await ks.oplogs.append(SCRATCHES, doc_id, "ada", insert("a"))
    await asyncio.sleep(0.6)
    await ks.oplogs.append(SCRATCHES, doc_id, "ada", insert("b"))  # refreshes the TTL
    assert await ks.client.pttl(key) > 900
    await asyncio.sleep(0.6)  # 1.2 s after the first append, 0.6 s after the last
    assert await ks.client.llen(key) == 2
    for _ in range(40):
        if not await ks.client.exists(key):
            break
        await asyncio.sleep(0.05)
    assert not await ks.client.exists(key)
    with pytest.raises(Gone) as gone:
        await ks.oplogs.read(SCRATCHES, doc_id, 0)
    assert gone.value.details == {"since": 0, "oldest_seq": 3, "latest_seq": 2}
    assert (await ks.oplogs.read(SCRATCHES, doc_id, 2)).items == []
    assert (await ks.oplogs.append(SCRATCHES, doc_id, "ada", insert("c"))).seqs == [3]


async def test_concurrent_appends_get_distinct_consecutive_numbers(ks: Keyspace) -> None:
    doc_id = await new(ks, SCRATCHES)

    async def append(n: int) -> list[int]:
        body = [insert(f"{n}.{k}") for k in range(3)] if n % 2 else insert(f"{n}.0")
        return (await ks.oplogs.append(SCRATCHES, doc_id, f"user{n}", body)).seqs

    results = await asyncio.gather(*(append(n) for n in range(40)))
    numbers = sorted(s for seqs in results for s in seqs)
    assert numbers == list(range(1, 20 * 3 + 20 + 1))  # distinct, consecutive, none lost
    for seqs in results:  # a batch's entries are numbered together
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    stored = (await ks.oplogs.read(SCRATCHES, doc_id, 0, 1000)).items
    by_seq = {i["seq"]: i["content"] for i in stored}
    for n, seqs in enumerate(results):
        assert [by_seq[s] for s in seqs] == [f"{n}.{k}" for k in range(len(seqs))]


async def test_a_locked_documents_log_takes_the_holders_appends_only(ks: Keyspace) -> None:
    doc_id = await new(ks, DOCS)
    lock = await ks.locks.acquire(DOCS, doc_id, "ada")
    with pytest.raises(Locked) as held:
        await ks.oplogs.append(DOCS, doc_id, "bob", insert("x"))
    assert held.value.details["holder"] == "ada"
    with pytest.raises(Locked):  # an admin too: release the lock first
        await ks.oplogs.append(DOCS, doc_id, "root", insert("x"))
    token = {"fencing_token": lock.fencing_token}
    assert (await ks.oplogs.append(DOCS, doc_id, "ada", {**insert("a"), **token})).seqs == [1]
    await ks.locks.release(DOCS, doc_id, "ada")
    again = await ks.locks.acquire(DOCS, doc_id, "ada")
    with pytest.raises(StaleFencingToken) as stale:  # ada's first lock is over
        await ks.oplogs.append(DOCS, doc_id, "ada", {"ops": [insert("b")], **token})
    assert stale.value.details == {"fencing_token": lock.fencing_token, "current": 2}
    await ks.locks.release(DOCS, doc_id, "ada")
    assert (await ks.oplogs.append(DOCS, doc_id, "bob", insert("c"))).seqs == [2]
    with pytest.raises(StaleFencingToken):  # no lock at all: no token is current
        await ks.oplogs.append(
            DOCS, doc_id, "bob", {**insert("d"), "fencing_token": again.fencing_token}
        )
    assert [i["content"] for i in (await ks.oplogs.read(DOCS, doc_id)).items] == ["a", "c"]


async def test_a_missing_document_has_no_log(ks: Keyspace) -> None:
    missing = "0b9a6c1e-3f1c-4f0e-9a57-0d6f7e3c2b11"
    with pytest.raises(NotFound):
        await ks.oplogs.append(DOCS, missing, "ada", insert("a"))
    with pytest.raises(NotFound):
        await ks.oplogs.read(DOCS, missing)
    assert [k async for k in ks.client.scan_iter(match="logging:*ops*")] == []


async def test_a_backup_keeps_the_counters_and_leaves_locks_and_logs_out(
    ks: Keyspace, redis_server: EmbeddedRedis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registered = systems.names()
    monkeypatch.setattr(systems, "names", lambda: [*registered, "logging"])
    monkeypatch.setattr(systems, "load", lambda name, *_, **__: SYSTEM)
    doc_id = await new(ks, DOCS)
    await ks.locks.acquire(DOCS, doc_id, "ada")
    await ks.oplogs.append(DOCS, doc_id, "ada", [insert("a"), insert("b")])
    path = tmp_path / "logging.mfbak"
    url = redis_server.url
    assert await run_cli(["--redis-url", url, "--system", "logging", "backup", str(path)]) == OK
    with gzip.open(path, "rb") as lines:
        backed_up = {orjson.loads(line).get("k") for line in lines}
    assert {f"logging:mf:fence:doc:lock:{doc_id}", f"logging:mf:seq:doc:ops:{doc_id}"} < backed_up
    assert not {f"logging:doc:lock:{doc_id}", f"logging:doc:ops:{doc_id}"} & backed_up
    target = EmbeddedRedis(tmp_path / "empty")
    target.start()
    try:
        argv = ["--redis-url", target.admin_url, "--system", "logging", "restore", str(path)]
        assert await run_cli(argv) == OK
        client = connect(target.admin_url)
        try:
            restored = Keyspace(client, SYSTEM.schema)
            # The lock stayed behind; the next one's token still grows past it.
            assert (await restored.locks.acquire(DOCS, doc_id, "bob")).fencing_token == 2
            # The log stayed behind too: reading on from 1 is gone, not a silent gap.
            with pytest.raises(Gone):
                await restored.oplogs.read(DOCS, doc_id, 1)
            assert (await restored.oplogs.read(DOCS, doc_id, 2)).items == []
            assert (await restored.oplogs.append(DOCS, doc_id, "bob", insert("c"))).seqs == [3]
        finally:
            await client.aclose()
    finally:
        target.stop()
