"""``MULTIFRAME_MIN_REPLICAS`` on the embedded server, which has no replica: every write that
changed something raises NotDurable naming what it wrote (which is on the primary), after one
WAIT pipelined on the script's own connection; refusals and reads are answered as usual; with
the option off no WAIT is ever sent. (tests/ha/ covers replicas that do confirm.)"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from app.__main__ import preflight
from keyspace import USER, Durability, Keyspace, NotDurable, UniqueConflict, codec, connect
from keyspace.connection import call
from keyspace.declare import Lockable, OpLog, string, table
from keyspace.plan import Plan
from keyspace.schema import IdStrategy, Schema
from keyspace.server import EmbeddedRedis
from keyspace.system import System

pytestmark = pytest.mark.redis

WAIT_MS = 50
ONE_REPLICA = Durability(replicas=1, timeout_ms=WAIT_MS)
ADA = {"username": "Ada", "email": "ada@example.com", "role": "designer"}

ACCOUNT = table("account", collection="accounts", id=IdStrategy.CUID, fields=(), owner="id")
DOC = table(
    "document",
    collection="documents",
    id=IdStrategy.UUID,
    fields=(string("title"),),
    lock=Lockable(),
    oplog=OpLog(cap=5),
)
EDITING = System(
    name="editing",
    title="editing",
    schema=Schema((ACCOUNT, DOC)),
    namespace="editing:",
    principal="account",
).served()
DOCS = EDITING.schema.entity("document")


async def waits(client: Redis) -> int:
    """WAIT commands the server has run (INFO commandstats)."""
    stats: dict[str, Any] = await client.info("commandstats")
    return int(stats.get("cmdstat_wait", {}).get("calls", 0))


async def loaded(keyspace: Keyspace) -> Keyspace:
    """``keyspace`` set up, its scripts loaded: a script's first call on a server otherwise
    meets NOSCRIPT and is sent again, with a second WAIT, which the counts here would see."""
    await keyspace.setup()
    for script in vars(keyspace.scripts).values():
        if isinstance(script, AsyncScript):
            await keyspace.client.script_load(script.script)
    return keyspace


@pytest.fixture
async def durable(real_client: Redis) -> Keyspace:
    return await loaded(Keyspace(real_client, durability=ONE_REPLICA))


async def unconfirmed_create(ks: Keyspace, data: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(NotDurable) as caught:
        await ks.create(USER, data)
    details: dict[str, Any] = caught.value.details
    return details


async def test_an_unconfirmed_create_names_the_document_it_wrote(durable: Keyspace) -> None:
    before = await waits(durable.client)
    details = await unconfirmed_create(durable, ADA)
    stored = await durable.get(USER, "user_1")  # written on the primary, under that id
    assert details == {
        "collection": "users",
        "id": "user_1",
        "revision": stored.revision,
        "replicas": {"required": 1, "confirmed": 0},
    }
    assert stored.doc["username"] == "Ada"
    assert await waits(durable.client) == before + 1  # one WAIT, after the commit
    # The id was drawn: a retry with the same values is refused, not stored twice.
    with pytest.raises(UniqueConflict):
        await durable.create(USER, ADA)
    assert await durable.client.get("user_counter") == b"1"


async def test_updates_deletes_and_upserts_name_what_they_wrote(durable: Keyspace) -> None:
    await unconfirmed_create(durable, ADA)
    with pytest.raises(NotDurable) as patched:
        await durable.patch(USER, "user_1", {"role": "engineer"})
    stored = await durable.get(USER, "user_1")
    assert stored.doc["role"] == "engineer"
    assert patched.value.details["revision"] == stored.revision
    assert patched.value.details["id"] == "user_1"
    with pytest.raises(NotDurable) as deleted:
        await durable.delete(USER, "user_1")
    assert deleted.value.details == {
        "collection": "users",
        "id": "user_1",
        "replicas": {"required": 1, "confirmed": 0},
    }
    assert not await durable.client.exists("user:user_1")
    assert deleted.value.message.startswith("the write of users user_1 was applied on the primary")


async def test_tokens_singletons_chip_metrics_batches_and_plans_wait_too(
    durable: Keyspace,
) -> None:
    await unconfirmed_create(durable, ADA)
    raw = await call(durable.client, "JSON.GET", "user:user_1", ".")
    with pytest.raises(NotDurable):
        await durable.tokens.mint("user_1", raw)
    with pytest.raises(NotDurable) as settings:
        await durable.patch_settings({"system": {"maintenance": True}})
    stored = await durable.get_settings()
    assert settings.value.details["revision"] == stored.revision
    with pytest.raises(NotDurable) as chip:
        await durable.set_chip_metrics(
            "chip_1", {"performance": 1, "efficiency": 1, "temperature": 1}
        )
    assert chip.value.details["path"] == '$.chip_metrics["chip_1"]'
    data = {"username": "Bob", "email": "bob@example.com", "role": "designer"}
    plan = durable.prepare_create(USER, data).plan
    with pytest.raises(NotDurable) as batch:
        await durable.commit_batch([plan])
    assert batch.value.details["commits"] == 1
    assert await durable.client.exists("user:user_2")
    plan = Plan(durable.schema.names.pause_key())
    plan.write("sadd", "mf:ref:durable-probe", "x")
    with pytest.raises(NotDurable):
        await durable.commit(plan)
    assert (await durable.commit(plan, durable=False)).ok  # bookkeeping: never waited for


async def test_refusals_and_reads_are_answered_as_usual(durable: Keyspace) -> None:
    await unconfirmed_create(durable, ADA)
    before = await waits(durable.client)
    stored = await durable.get(USER, "user_1")
    assert (await durable.read(USER, "user_1")).revision == stored.revision
    assert await waits(durable.client) == before  # reads send no WAIT
    with pytest.raises(UniqueConflict):  # nothing written: nothing to confirm
        await durable.create(USER, ADA)
    assert await waits(durable.client) == before + 1  # pipelined all the same
    assert codec.loads(await call(durable.client, "JSON.GET", "user:user_1", "."))


@pytest.fixture
async def editing(real_client: Redis) -> Keyspace:
    return await loaded(Keyspace(real_client, EDITING.schema, durability=ONE_REPLICA))


async def test_locks_and_operation_logs_wait_for_their_writes(editing: Keyspace) -> None:
    with pytest.raises(NotDurable) as created:
        await editing.create(DOCS, {"title": "draft"})
    doc_id = created.value.details["id"]
    assert isinstance(doc_id, str) and await editing.get(DOCS, doc_id)  # a generated id named
    before = await waits(editing.client)
    with pytest.raises(NotDurable) as locked:
        await editing.locks.acquire(DOCS, doc_id, "ada")
    assert locked.value.details["collection"] == "documents"
    assert locked.value.details["id"] == doc_id
    assert (await editing.locks.get(DOCS, doc_id)).holder == "ada"  # a read: no WAIT
    with pytest.raises(NotDurable):
        await editing.oplogs.append(
            DOCS, doc_id, "ada", {"operation": "insert", "position": 0, "content": "a"}
        )
    assert [e["seq"] for e in (await editing.oplogs.read(DOCS, doc_id)).items] == [1]
    with pytest.raises(NotDurable):
        await editing.locks.release(DOCS, doc_id, "ada")
    assert await waits(editing.client) == before + 3


async def test_without_the_option_no_wait_is_sent(real_client: Redis) -> None:
    ks = await loaded(Keyspace(real_client))
    before = await waits(real_client)
    created = await ks.create(USER, ADA)
    await ks.patch(USER, "user_1", {"role": "engineer"}, if_revision=created.revision)
    await ks.delete(USER, "user_1")
    assert await waits(real_client) == before


async def test_the_wait_rides_on_the_script_s_own_write(
    redis_server: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = connect(redis_server.url)
    try:
        await client.flushall()
        ks = await loaded(Keyspace(client, durability=ONE_REPLICA))
        connection_class = client.connection_pool.connection_class
        sent: list[list[bytes]] = []
        original = connection_class.send_packed_command

        async def counted(self: Any, command: Any, *args: Any, **options: Any) -> None:
            sent.append(command if isinstance(command, list) else [command])
            await original(self, command, *args, **options)

        monkeypatch.setattr(connection_class, "send_packed_command", counted)
        await unconfirmed_create(ks, {**ADA, "username": "Ada2", "email": "ada2@example.com"})
        assert len(sent) == 1  # one send: EVALSHA then WAIT, no round trip in between
        packed = b"".join(bytes(chunk) for chunk in sent[0])
        assert packed.index(b"EVALSHA") < packed.index(b"WAIT")
        assert packed.endswith(f"$4\r\nWAIT\r\n$1\r\n1\r\n$2\r\n{WAIT_MS}\r\n".encode())
    finally:
        await client.aclose()


async def test_a_script_the_server_lost_costs_one_wait_not_two(real_client: Redis) -> None:
    # NOSCRIPT: the script did not run; its connection is dropped rather than waiting out the
    # WAIT sent behind it, then the script is loaded and sent again with its own WAIT.
    ks = await loaded(Keyspace(real_client, durability=Durability(1, timeout_ms=1000)))
    await real_client.script_flush()
    started = time.monotonic()
    details = await unconfirmed_create(ks, ADA)
    elapsed = time.monotonic() - started
    assert details["id"] == "user_1" and details["replicas"] == {"required": 1, "confirmed": 0}
    assert 0.9 < elapsed < 1.8, elapsed


def test_the_start_warns_when_fewer_replicas_are_connected_than_required(
    redis_server: EmbeddedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="multiframe"):
        preflight(redis_server.url, USER.names.probe_key(), 0)
        assert not caplog.records
        preflight(redis_server.url, USER.names.probe_key(), 2)
    assert "MULTIFRAME_MIN_REPLICAS is 2" in caplog.text and "has 0 replica(s)" in caplog.text
