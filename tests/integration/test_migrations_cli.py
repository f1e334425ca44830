"""``multiframe-admin migrate`` and the seed's other manage_db verbs on the real server, with
the shelf system of tests/migration_world.py: resume after SIGKILL mid-migration (every
document converted exactly once), and each verb once with its exit code."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from keyspace import Keyspace, codec, connect, parse
from keyspace.connection import call
from keyspace.exclusive import AdminLock
from keyspace.server import EmbeddedRedis
from scripts.cli import run_cli
from scripts.exits import BUSY, OK, PROBLEMS, REFUSED, USAGE
from tests.migration_world import book_id, register, shelve_old_books, world

pytestmark = pytest.mark.redis
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def client(redis_server: EmbeddedRedis) -> AsyncIterator[Redis]:
    redis = connect(redis_server.url)
    await redis.flushall()
    await Keyspace(redis, world(1).schema).setup()  # what release 1 left: its index
    yield redis
    await redis.aclose()


async def _progress(client: Redis, version: int) -> dict[bytes, bytes]:
    found = await client.hgetall(f"shelf:mf:migrating:{version}")
    return {_b(k): _b(v) for k, v in found.items()}


def _b(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


async def test_a_migration_killed_mid_batch_resumes_and_converts_every_document_once(
    client: Redis, redis_server: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    total = 20_000
    await shelve_old_books(client, total)
    code = "from tests.migration_world import cli_main; cli_main()"
    argv = ["--redis-url", redis_server.url, "--system", "shelf", "migrate"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        *argv,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        # Kill it while the counting probe (migration 3) is half-way: a batch applied twice
        # would leave conversions at 2.
        for _ in range(6000):
            seen = await _progress(client, 3)
            if seen and 2_000 <= int(seen[b"examined"]) < total - 4_000:
                break
            assert proc.returncode is None, "the migration finished before it could be killed"
            await asyncio.sleep(0.005)
        else:
            pytest.fail("migration 3 never got under way")
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
    stopped = await _progress(client, 3)
    assert 0 < int(stopped[b"examined"]) < total and stopped[b"scanned"] == b"0"
    # What the lock's 30 s expiry would do: the killed holder is gone.
    await client.delete("shelf:mf:lock:migrate")
    system = world(2, counting=True)
    register(monkeypatch, system)
    assert await run_cli(argv) == OK
    books = system.schema.entity("book")
    counts: dict[int, int] = {}
    for first in range(0, total, 1000):
        keys = [books.key(book_id(n)) for n in range(first, min(first + 1000, total))]
        for n, raw in enumerate(await call(client, "JSON.MGET", *keys, "."), first):
            doc = codec.loads(raw)
            assert (doc["format"], doc["writer"]) == ("paper", f"Author {n % 97}"), doc
            assert "author" not in doc
            counts[doc["conversions"]] = counts.get(doc["conversions"], 0) + 1
    assert counts == {1: total}  # none missed, none converted twice
    assert await client.hlen("shelf:mf:migrations") == 3
    assert await _progress(client, 3) == {}
    ks = Keyspace(client, system.schema)
    await ks.setup()
    page = await ks.list(books, parse(books, {"format": ["paper"], "limit": ["1"]}))
    assert page.total == total  # the new field is filterable: its index version is live


async def test_each_verb_once_with_its_exit_code(
    client: Redis,
    redis_server: EmbeddedRedis,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    system = world(2)
    register(monkeypatch, system)
    await shelve_old_books(client, 300)
    base = ["--redis-url", redis_server.url, "--system", "shelf"]

    async def run(*argv: str) -> int:
        return await run_cli([*base, *argv])

    assert await run("status") == PROBLEMS  # two pending
    assert "status: 0 applied, 2 pending" in capsys.readouterr().out
    assert await run("health") == PROBLEMS
    assert "migrations: 0 applied, 2 pending" in capsys.readouterr().out
    assert await run("migrate", "--to", "1") == OK
    assert await run("status") == PROBLEMS
    out = capsys.readouterr().out
    assert "applied  1 books: add format" in out and "pending  2 books" in out
    holder = AdminLock(Keyspace(client, system.schema), "migrate")
    await holder.take()
    assert await run("migrate") == BUSY
    await holder.release()
    assert await run("migrate") == OK
    assert "1 migration(s) applied" in capsys.readouterr().out
    assert await run("migrate") == OK
    assert "nothing pending" in capsys.readouterr().out
    assert (await run("status"), await run("health")) == (OK, OK)
    assert "health: ok" in capsys.readouterr().out
    assert await run("validate") == OK
    assert await run("validate", "--verbose") == OK
    assert "migrations: 2 applied, 0 pending" in capsys.readouterr().out
    demo = tmp_path / "demo.json"
    demo.write_bytes(orjson.dumps({"books": [{"id": book_id(999), "title": "D", "writer": "W"}]}))
    assert await run("seed", "--file", str(demo)) == OK
    assert "1 created" in capsys.readouterr().out
    backup = tmp_path / "shelf.jsonl.gz"
    assert await run("backup", "--backup-file", str(backup)) == OK
    assert await run("backup", str(tmp_path / "positional.jsonl.gz")) == OK
    with pytest.raises(SystemExit) as usage:
        await run("backup")
    assert usage.value.code == USAGE
    assert await run("clear", "--force") == REFUSED  # production mode, as reset
    ks = Keyspace(client, system.schema)
    await ks.setup()
    await ks.patch_settings({"system": {"mode": "development"}})
    assert await run("clear", "--force") == OK
    assert await client.exists("shelf:mf:migrations") == 0
    assert await run("restore", str(backup)) == OK
    assert await client.hlen("shelf:mf:migrations") == 2  # the registry came back with the data
    assert await run("status") == OK
    assert (await ks.get(system.schema.entity("book"), book_id(999))).doc["title"] == "D"
