"""``generate`` writes up to ``DEPTH`` batches ahead of their results on one connection
(``Scripts.bulk_line``): the server runs them in the order written, so a document always
follows what it refers to, and every batch's refusals are counted; a cancel leaves whole
documents only and no connection holding unread replies."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from keyspace import USER, Keyspace
from keyspace.bulk import PackedBatch
from keyspace.documents import for_create
from keyspace.plan import Plan, plan_create
from keyspace.scripts import Scripts
from scripts import generate
from scripts.exits import OK, PROBLEMS
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
    ks = Keyspace(real_client)
    await ks.setup()
    task = asyncio.ensure_future(generate.run(_args(5000, 7), ks))
    for _ in range(2000):  # until several batches were written, some still unread
        if len(ahead) >= 6:
            break
        await asyncio.sleep(0.005)
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
