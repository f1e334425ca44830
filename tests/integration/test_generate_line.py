"""``generate`` writes up to ``DEPTH`` batches ahead of their results on one connection
(``Scripts.bulk_line``): the server runs them in the order written, so a document always
follows what it refers to, and every batch's refusals are counted; a cancel leaves whole
documents only and no connection holding unread replies."""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from keyspace import USER, Keyspace, connect, keys
from keyspace import scripts as scripts_module
from keyspace.bulk import PackedBatch
from keyspace.documents import for_create
from keyspace.errors import Paused
from keyspace.plan import Plan, plan_create
from keyspace.scripts import Scripts
from keyspace.server import EmbeddedRedis
from scripts import generate
from scripts.exits import OK, PROBLEMS, Stopped
from scripts.inspection import inspect

pytestmark = pytest.mark.redis

CHUNK = 40  # documents per batch: dozens of batches, two written ahead at a time


def _args(users: int, seed: int) -> argparse.Namespace:
    return argparse.Namespace(
        users=users, drivers=2.0, processes=1.0, quests=1.0, collabs=1.0, nfts=1.0,
        seed=seed, batch=50,
    )  # fmt: skip


@pytest.fixture
def ahead(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Small batches, and how many batches were unread as each one was written."""
    monkeypatch.setattr(generate, "CHUNK", CHUNK)
    seen: list[int] = []
    write = generate._InFlight._write

    async def counted(
        flight: generate._InFlight, batch: PackedBatch, before: asyncio.Future[Any] | None
    ) -> Any:
        seen.append(len(flight._unread))
        return await write(flight, batch, before)

    monkeypatch.setattr(generate._InFlight, "_write", counted)
    return seen


async def _until_written(ahead: list[int], batches: int) -> None:
    """Until ``batches`` batches were written (some still unread), at most 10 s."""
    for _ in range(2000):
        if len(ahead) >= batches:
            return
        await asyncio.sleep(0.005)


async def _started(
    client: Redis, ahead: list[int], *, seed: int
) -> tuple[Keyspace, asyncio.Future[int]]:
    """A run of 5,000 users under way, six batches written."""
    ks = Keyspace(client)
    await ks.setup()
    task = asyncio.ensure_future(generate.run(_args(5000, seed), ks))
    await _until_written(ahead, 6)
    return ks, task


async def _keys(client: Redis, prefix: str) -> int:
    return len([k async for k in client.scan_iter(match=f"{prefix}*", count=1000)])


async def test_batches_written_ahead_commit_in_order(real_client: Redis, ahead: list[int]) -> None:
    ks = Keyspace(real_client)
    await ks.setup()
    assert await generate.run(_args(150, 5), ks) == OK  # OK: not one reference was refused
    assert max(ahead) == generate.DEPTH  # batches really were written ahead of results
    assert await _keys(real_client, "user:") == 150
    assert await _keys(real_client, "collab:") > 100  # their members are earlier batches' users
    assert (await inspect(ks)).clean


async def test_every_batch_written_ahead_counts_its_refusals(
    real_client: Redis, ahead: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    ks = Keyspace(real_client)
    await ks.setup()
    assert await generate.run(_args(60, 4), ks) == OK
    before = await real_client.dbsize()
    capsys.readouterr()
    # The same seed again: every user's unique values are taken, so every document is
    # refused (the users, then what refers to them), in every batch.
    assert await generate.run(_args(60, 4), ks) == PROBLEMS
    out = capsys.readouterr().out
    assert "generate: 0 documents written" in out, out
    assert max(ahead) == generate.DEPTH
    assert await real_client.dbsize() == before  # the counters moved; nothing was added


async def test_a_cancelled_run_leaves_whole_documents_and_a_clean_pool(
    real_client: Redis, ahead: list[int]
) -> None:
    ks, task = await _started(real_client, ahead, seed=7)
    # Cancelled until done, as the CLI's Ctrl-C does (scripts/cli.py): on Python 3.11
    # redis-py can swallow a cancel that meets a reply completed in the same loop turn.
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.05)
    assert task.cancelled()
    pool = real_client.connection_pool
    assert not getattr(pool, "_in_use_connections", set())  # the line was given back
    assert await real_client.ping()
    assert 0 < await _keys(real_client, "user:") < 5000
    assert (await inspect(ks)).clean  # each plan is atomic: no document half written


async def test_a_pause_mid_run_says_how_many_documents_were_written(
    real_client: Redis, ahead: list[int]
) -> None:
    ks, task = await _started(real_client, ahead, seed=8)
    await real_client.set(keys.pause_key(), "restore")  # as restore and reset set it
    with pytest.raises(Paused) as raised:
        await asyncio.wait_for(task, 30)
    await real_client.delete(keys.pause_key())
    text = str(raised.value)
    assert "nothing was written" not in text
    reported = int(re.search(r"acknowledged the ([\d,]+) documents", text)[1].replace(",", ""))  # type: ignore[index]
    stored = 0
    for spec in ks.schema.entities:
        stored += await _keys(real_client, f"{spec.prefix}:")
    assert reported >= CHUNK  # batches were read before the pause
    assert reported <= stored <= reported + CHUNK  # at most part of the batch that met it
    assert (await inspect(ks)).clean


async def test_a_killed_line_says_how_many_documents_were_written(
    real_client: Redis, ahead: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    lines: list[Any] = []
    init = generate._InFlight.__init__

    def kept(flight: generate._InFlight, ks: Keyspace, line: Any) -> None:
        lines.append(line)
        init(flight, ks, line)

    monkeypatch.setattr(generate._InFlight, "__init__", kept)
    ks, task = await _started(real_client, ahead, seed=9)
    host, port = lines[0]._writer.get_extra_info("sockname")[:2]
    assert await real_client.client_kill_filter(_type=None, addr=f"{host}:{port}") == 1
    with pytest.raises(Stopped) as raised:
        await asyncio.wait_for(task, 30)
    text = str(raised.value)
    assert "connection generate wrote on was lost" in text
    reported = int(re.search(r"acknowledged the ([\d,]+) documents", text)[1].replace(",", ""))  # type: ignore[index]
    stored = 0
    for spec in ks.schema.entities:
        stored += await _keys(real_client, f"{spec.prefix}:")
    assert CHUNK <= reported <= stored
    assert (await inspect(ks)).clean


async def test_a_line_left_with_unread_replies_is_disconnected(real_client: Redis) -> None:
    scripts = Scripts(real_client)
    held: list[Any] = []

    async def stop_before_reading() -> None:
        async with scripts.bulk_line() as line:
            held.append(line)
            await line.send_packed_command(line.pack_command("PING"))
            raise RuntimeError("stopped before reading")

    with pytest.raises(RuntimeError, match="stopped before reading"):
        await stop_before_reading()
    assert not held[0].is_connected
    assert await real_client.ping()


async def test_a_line_is_not_health_checked_while_replies_are_unread(real_client: Redis) -> None:
    """redis-py PINGs a connection idle past its health-check interval before a write and
    reads the reply: on a line, the next reply is an earlier batch's, not the PONG."""
    ks = Keyspace(real_client)
    await ks.setup()

    def users(first: int) -> list[Plan]:
        return [
            plan_create(ks.schema, USER, f"user_{n}", for_create(USER, _user(n), f"user_{n}"),
                        explicit_id=True)
            for n in range(first, first + 150)
        ]  # fmt: skip

    async with ks.scripts.bulk_line() as line:
        first = await ks.scripts.send_packed(await ks.scripts.pack_batch(users(1)), line)
        line.health_check_interval, line.next_health_check = 15, 0  # due, as after 15 s
        second = await ks.scripts.send_packed(await ks.scripts.pack_batch(users(151)), line)
        assert [r.ok for r in await first] == [True] * 150
        assert [r.ok for r in await second] == [True] * 150
    assert await _keys(real_client, "user:") == 300


def _user(n: int) -> dict[str, Any]:
    return {"username": f"u{n}", "email": f"u{n}@example.com", "role": "engineer"}


KINDS = ("user:", "driver:", "process:", "quest:", "collab:", "nft:")


def _review_args(users: int, batch: int) -> argparse.Namespace:
    return argparse.Namespace(
        users=users, drivers=4.0, processes=2.0, quests=2.0, collabs=1.0, nfts=1.0,
        seed=5, batch=batch,
    )  # fmt: skip


async def _count(client: Redis) -> dict[str, int]:
    return {p: len([k async for k in client.scan_iter(match=p + "*", count=5000)]) for p in KINDS}


async def test_a_script_flush_mid_run_refuses_no_document(
    real_client: Redis, redis_server: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review 30, finding 1: SCRIPT FLUSH (another client) mid-run. Batch N's NOSCRIPT calls
    were resent (Scripts._bulk_again) only when N's replies were read, after batch N+1 had
    run on the line (its own SCRIPT LOAD brought the script back): N+1's documents referring
    to N's were refused missing_reference. Batches now go by EVAL."""
    ks = Keyspace(real_client)
    await ks.setup()
    refused: list[str] = []
    results = scripts_module.Scripts._batch_results

    async def counted(self: Any, *a: Any, **k: Any) -> Any:
        out = await results(self, *a, **k)
        refused.extend(f"{r.error}:{r.field}" for r in out if not r.ok)
        return out

    flushing = True

    async def flusher() -> None:
        other = connect(redis_server.url)
        try:
            while flushing:
                await other.script_flush()
                await asyncio.sleep(0.05)
        finally:
            await other.aclose()

    monkeypatch.setattr(scripts_module.Scripts, "_batch_results", counted)
    task = asyncio.ensure_future(flusher())
    try:
        rc = await generate.run(_review_args(2000, 50), ks)
    finally:
        flushing = False
        await task
    assert (await inspect(ks)).clean
    counts = await _count(real_client)
    assert (rc, refused[:3], counts["driver:"]) == (OK, [], 8000), (len(refused), counts)


async def test_the_line_survives_its_health_check(
    redis_server: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review 30, finding 2: the line's redis-py health check (health_check_interval, 15 s in
    keyspace.connect) runs on a write made that long after the line's last read. With a
    batch's replies unread, its PING reads a batch reply ("Bad response from PING health
    check"), redis-py reconnects, and the next batch goes out on a NEW socket: the earlier
    batch's reader reads the later one's replies, the last reader times out. Shown here with
    a 1 s interval and a 1.5 s stop of the process (time.sleep: a Ctrl-Z, VM pause) while
    batch 2 is drawn; health_check_stall.py shows it with the shipped 15 s and a real
    SIGSTOP. A line now skips it."""
    client = connect(redis_server.url)
    client.connection_pool.connection_kwargs["health_check_interval"] = 1
    monkeypatch.setattr(scripts_module, "BATCH_TIMEOUT", 5.0)
    await client.flushall()
    ks = Keyspace(client)
    await ks.setup()
    written: list[int] = []
    send = scripts_module.Scripts.send_packed

    async def send_packed(self: Any, batch: Any, *line: Any) -> Any:
        reader = await send(self, batch, *line)
        written.append(1)
        return reader

    monkeypatch.setattr(scripts_module.Scripts, "send_packed", send_packed)
    owned = generate.World.owned
    stopped: list[int] = []

    def stop_once(self: Any, *a: Any, **k: Any) -> Any:
        if written and not stopped:  # batch 1 written, its replies unread
            stopped.append(1)
            time.sleep(1.5)  # the process stopped (Ctrl-Z ... fg), longer than the interval
        return owned(self, *a, **k)

    monkeypatch.setattr(generate.World, "owned", stop_once)
    try:
        rc = await generate.run(_review_args(2000, 2000), ks)
        assert rc == OK
        assert (await _count(client))["driver:"] == 8000
    finally:
        await client.aclose()


async def test_generate_on_a_one_connection_pool(redis_server: EmbeddedRedis) -> None:
    """Review 30, finding 3: keyspace.connect(url, max_connections=1): the line held the only
    connection, and the id reservations (INCRBY) waited for another until the pool's timeout
    ("No connection available.") before the first write. The line is now a connection of its
    own, outside the pool."""
    client = connect(redis_server.url, max_connections=1)
    try:
        await client.flushall()
        ks = Keyspace(client)
        await ks.setup()
        assert await generate.run(_review_args(300, 2000), ks) == OK
    finally:
        await client.aclose()
