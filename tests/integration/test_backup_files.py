"""Backup files are written safely (issue 21, items 6 and 7) and restore verifies every record
against the declarations before its first write (item 10)."""

from __future__ import annotations

import asyncio
import gzip
import os
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from keyspace import USER as USER_SPEC
from keyspace import Keyspace, keys
from keyspace.connection import call
from keyspace.server import EmbeddedRedis
from scripts import backup as backup_module
from scripts.cli import main
from scripts.exits import OK, PROBLEMS, USAGE
from tests import factories as f
from tests.integration.test_backup import cli, populate
from tests.integration.test_backup_tokens import write_file
from tests.redis_state import snapshot

pytestmark = pytest.mark.redis

HEADER = {"format": "multiframe-backup", "version": 2}
USER = {"user_id": "user_1", "username": "Ada", "email": "ada@x.io", "role": "designer",
        "created_at": "2026-01-01T00:00:00"}  # fmt: skip


# --- items 6 and 7: the file itself ----------------------------------------------------------


async def test_overlapping_backups_to_one_file_both_leave_a_restorable_file(
    redis_server: EmbeddedRedis, real_client: Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second backup starts while the first is still writing: each has a temporary of
    its own, both succeed, and the file is whole (the last rename wins)."""
    await populate(real_client)
    before = await snapshot(real_client)
    file = tmp_path / "same.jsonl.gz"
    read = backup_module._read
    first_reading, second_done = asyncio.Event(), asyncio.Event()

    async def slow(client: Redis, batch: list[str]) -> Any:
        if not first_reading.is_set():  # the first backup's first batch waits for the second
            first_reading.set()
            await second_done.wait()
        return await read(client, batch)

    monkeypatch.setattr(backup_module, "_read", slow)
    first = asyncio.create_task(cli(redis_server, "backup", str(file)))
    await first_reading.wait()
    assert await cli(redis_server, "backup", str(file)) == OK
    second_done.set()
    assert await first == OK
    assert os.listdir(tmp_path) == [file.name]  # no temporary left behind
    await real_client.flushall()
    assert await cli(redis_server, "restore", str(file)) == OK
    assert await snapshot(real_client) == before


async def test_a_symlink_planted_at_the_old_temporary_name_is_never_followed(
    redis_server: EmbeddedRedis, real_client: Redis, tmp_path: Path
) -> None:
    await populate(real_client)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    file = tmp_path / "b.jsonl.gz"
    (tmp_path / "b.jsonl.gz.tmp").symlink_to(victim)
    assert await cli(redis_server, "backup", str(file)) == OK
    assert victim.read_bytes() == b"precious"
    assert os.readlink(tmp_path / "b.jsonl.gz.tmp") == str(victim)
    assert file.is_file() and not file.is_symlink()


def _refused(redis_server: EmbeddedRedis, target: Path, capsys: Any) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(["--redis-url", redis_server.url, "backup", str(target)])
    assert exit_.value.code == USAGE
    err: str = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_a_fifo_target_is_refused_and_left_alone(
    redis_server: EmbeddedRedis, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert "is not a regular file" in _refused(redis_server, fifo, capsys)
    assert fifo.is_fifo() and os.listdir(tmp_path) == ["pipe"]


def test_a_device_target_is_refused(
    redis_server: EmbeddedRedis, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A node of its own, never the machine's /dev/null: a regression must not replace that.
    device = tmp_path / "null"
    try:
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root (CAP_MKNOD)")
    assert "is not a regular file" in _refused(redis_server, device, capsys)
    assert device.is_char_device()
    # A link to a device (as /dev/stdout is, to /proc/self/fd/1) is refused as a link.
    (tmp_path / "stdout").symlink_to(device)
    assert "is a symbolic link" in _refused(redis_server, tmp_path / "stdout", capsys)
    assert device.is_char_device()


def test_a_symlink_target_is_refused_even_to_a_regular_file(
    redis_server: EmbeddedRedis, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real = tmp_path / "real.jsonl.gz"
    real.write_bytes(b"older backup")
    (tmp_path / "latest").symlink_to(real)
    assert "is a symbolic link" in _refused(redis_server, tmp_path / "latest", capsys)
    assert real.read_bytes() == b"older backup"


async def test_a_target_replaced_by_a_fifo_during_the_backup_is_not_replaced(
    redis_server: EmbeddedRedis,
    real_client: Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await populate(real_client)
    file = tmp_path / "b"
    read = backup_module._read

    async def racing(client: Redis, batch: list[str]) -> Any:
        if not file.exists():
            os.mkfifo(file)
        return await read(client, batch)

    monkeypatch.setattr(backup_module, "_read", racing)
    assert await cli(redis_server, "backup", str(file)) == PROBLEMS
    assert "is not a regular file" in capsys.readouterr().err
    assert file.is_fifo() and os.listdir(tmp_path) == ["b"]


# --- item 10: every record against the declarations -------------------------------------------


def _doc(doc: dict[str, Any]) -> str:
    return orjson.dumps(doc).decode()


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


FORGED: dict[str, tuple[dict[str, Any], str]] = {
    "nested 200 deep": (
        {"k": "user:user_1", "t": "json", "v": _doc({**USER, "username": _nested(200)})},
        "'user:user_1': ",
    ),
    "config:system as a string": (
        {"k": "config:system", "t": "string", "v": "{}"},
        "'config:system' must be a json, not a string",
    ),
    "config:system invalid": (
        {"k": "config:system", "t": "json", "v": '{"system": 1}'},
        "'config:system': ",
    ),
    "missing required field": (
        {
            "k": "user:user_1",
            "t": "json",
            "v": _doc({k: v for k, v in USER.items() if k != "email"}),
        },
        "'user:user_1': invalid User: email",
    ),
    "id not the key's": (
        {"k": "user:user_2", "t": "json", "v": _doc(USER)},
        "user_id 'user_1' is not the key's id",
    ),
    "counter past 2^53": (
        {"k": "user_counter", "t": "string", "v": str(2**53)},
        "is past 9007199254740991",
    ),
    "counter not a number": (
        {"k": "user_counter", "t": "string", "v": "1e3"},
        "not a non-negative",
    ),
    "claim holding no id": (
        {"k": keys.unique_key("user", "email", "a@x.io"), "t": "string", "v": "no id!"},
        "claim holder",
    ),
    "token of an unknown role": (
        {"k": keys.token_key("a" * 64), "t": "hash", "v": {"user_id": "user_1", "role": "root"}},
        "role must be one of",
    ),
    "an undeclared reserved key": ({"k": "mf:other", "t": "string", "v": "x"}, "declares"),
}


@pytest.mark.parametrize("case", list(FORGED))
async def test_a_forged_record_with_a_valid_checksum_is_refused_before_any_write(
    redis_server: EmbeddedRedis,
    real_client: Redis,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    record, reason = FORGED[case]
    good = [
        {"k": "user_counter", "t": "string", "v": "5"},
        {"k": "user:user_3", "t": "json", "v": _doc({**USER, "user_id": "user_3"})},
    ]
    file = tmp_path / "forged"
    write_file(file, HEADER, [*good, record])  # the bad record comes after good ones
    capsys.readouterr()
    assert await cli(redis_server, "restore", str(file)) == PROBLEMS
    err = capsys.readouterr().err
    assert f"{file} rejected, nothing written: line 4: " in err
    assert reason in err, err
    assert "Traceback" not in err
    assert await real_client.dbsize() == 0  # not even the records before it


async def _backed_up(redis_server: EmbeddedRedis, client: Redis, tmp_path: Path) -> Path:
    """A backup of one user and one driver of theirs (documents, claims, reference sets,
    counters) written by ``backup``."""
    ks = Keyspace(client)
    await ks.setup()
    await ks.create(USER_SPEC, {k: v for k, v in USER.items() if k != "user_id"})
    await f.driver(ks, "user_1")
    file = tmp_path / "b"
    assert await cli(redis_server, "backup", str(file)) == OK
    return file


def _records(file: Path) -> list[dict[str, Any]]:
    lines = gzip.decompress(file.read_bytes()).splitlines()
    return [orjson.loads(line) for line in lines[1:-1]]


async def test_derived_keys_and_the_pause_in_a_file_are_left_out(
    redis_server: EmbeddedRedis, real_client: Redis, tmp_path: Path
) -> None:
    """A file carrying a search projection or the pause (no backup writes them) restores the
    rest: the projection is derived anew, the pause never comes along."""
    file = await _backed_up(redis_server, real_client, tmp_path)
    records = [
        *_records(file),
        {"k": keys.projection_key("user", "user_1"), "t": "json", "v": '{"stale": 1}'},
        {"k": keys.pause_key(), "t": "string", "v": '{"command": "restore"}'},
    ]
    write_file(file, HEADER, records)
    await real_client.flushall()
    assert await cli(redis_server, "restore", str(file)) == OK
    assert not await real_client.exists(keys.pause_key())
    shown = await call(real_client, "JSON.GET", keys.projection_key("user", "user_1"))
    assert "stale" not in orjson.loads(shown)  # derived from the document, not the file


async def test_a_document_spelled_otherwise_is_restored_in_the_stored_form(
    redis_server: EmbeddedRedis,
    real_client: Redis,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # "+00:00" validates, but stored as given it broke cursor walks sorted by that field.
    file = await _backed_up(redis_server, real_client, tmp_path)
    stored = orjson.loads(await call(real_client, "JSON.GET", "user:user_1", "."))
    records = _records(file)
    for record in records:
        if record["k"] == "user:user_1":
            record["v"] = _doc({**stored, "created_at": stored["created_at"] + "+00:00"})
    write_file(file, HEADER, records)
    await real_client.flushall()
    capsys.readouterr()
    assert await cli(redis_server, "restore", str(file)) == OK
    assert "1 documents rewritten in the form the service stores" in capsys.readouterr().out
    assert orjson.loads(await call(real_client, "JSON.GET", "user:user_1", ".")) == stored


async def test_records_that_disagree_with_each_other_make_restore_exit_1(
    redis_server: EmbeddedRedis,
    real_client: Redis,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Each record is valid alone: a second user with the first one's email and no claims,
    # and a driver of a user that does not exist. Restore used to exit 0 and serve them.
    file = await _backed_up(redis_server, real_client, tmp_path)
    stored = orjson.loads(await call(real_client, "JSON.GET", "user:user_1", "."))
    twin = {**stored, "user_id": "user_2", "username": "Twin"}
    records = [*_records(file), {"k": "user:user_2", "t": "json", "v": _doc(twin)}]
    for record in records:
        if record["k"] == "driver:driver_1":
            record["v"] = _doc({**orjson.loads(record["v"]), "user_id": "user_404"})
    write_file(file, HEADER, records)
    await real_client.flushall()
    capsys.readouterr()
    assert await cli(redis_server, "restore", str(file)) == PROBLEMS
    err = capsys.readouterr().err
    assert "disagree with each other" in err and "check --repair" in err, err
    assert "user:user_2" in err and "driver:driver_1" in err, err
    assert "Traceback" not in err
    assert not await real_client.exists(keys.pause_key())  # served as restored, not paused


@pytest.mark.parametrize("forged", ["admin role for a designer", "a user the file lacks"])
async def test_a_token_disagreeing_with_its_user_is_refused_before_any_write(
    redis_server: EmbeddedRedis,
    real_client: Redis,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    forged: str,
) -> None:
    # Each record valid alone, restored they were admin API keys nobody issued.
    file = await _backed_up(redis_server, real_client, tmp_path)
    digest = "ab" * 32
    user_id = "user_1" if forged.startswith("admin") else "ghost_1"
    records = [
        *_records(file),
        {"k": keys.token_key(digest), "t": "hash",
         "v": {"user_id": user_id, "role": "admin", "kind": "api_key"}},
        {"k": keys.user_tokens_key(user_id), "t": "set", "v": [digest]},
    ]  # fmt: skip
    write_file(file, HEADER, records)
    await real_client.flushall()
    capsys.readouterr()
    assert await cli(redis_server, "restore", str(file)) == PROBLEMS
    err = capsys.readouterr().err
    assert "rejected, nothing written" in err and keys.token_key(digest) in err, err
    assert await real_client.dbsize() == 0
