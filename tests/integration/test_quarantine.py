"""The quarantine round trip: an in-place import of a legacy dump with bad records leaves a
clean keyspace (check exit 0, the quarantine's size as information), then a person lists,
shows, fixes and restores records and drops the rest; backups carry the quarantine."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from keyspace import USER, Keyspace, UniqueConflict, parse
from keyspace.server import EmbeddedRedis
from scripts.cli import run_cli
from scripts.exits import OK, PROBLEMS, USAGE
from tests.integration.test_legacy import BAD, DUMP, imported, load

pytestmark = pytest.mark.redis


async def test_import_check_list_show_fix_restore_drop(
    redis_server: EmbeddedRedis,
    real_client: Redis,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    cli = ["--redis-url", redis_server.url]
    await load(real_client)
    assert await run_cli([*cli, "import-legacy"]) == PROBLEMS  # a person has records to see
    out = capsys.readouterr().out
    assert f"quarantined {len(BAD)} record(s)" in out
    await imported(real_client)

    # check: clean, the quarantine's size reported as information.
    assert await run_cli([*cli, "check"]) == OK
    out = capsys.readouterr().out
    assert "clean" in out and f"quarantine: {len(BAD)} legacy records" in out
    assert await run_cli([*cli, "check", "--json"]) == OK
    report = json.loads(capsys.readouterr().out)
    assert report["clean"] is True and report["quarantined"] == len(BAD)

    # list and show
    assert await run_cli([*cli, "quarantine", "list"]) == OK
    out = capsys.readouterr().out
    assert [line.split("  ")[0] for line in out.splitlines()[:-1]] == sorted(BAD)
    assert out.splitlines()[-1] == f"quarantine: {len(BAD)} record(s)"
    assert await run_cli([*cli, "quarantine", "list", "--json"]) == OK
    listed = {e["key"]: e for e in json.loads(capsys.readouterr().out)}
    assert set(listed) == set(BAD)
    assert all(BAD[k] in e["reason"] for k, e in listed.items())
    assert listed["user:user_4"]["entity"] == "user"
    assert await run_cli([*cli, "quarantine", "show", "user:user_4"]) == OK
    out = capsys.readouterr().out
    assert "reason: email:" in out and DUMP["user:user_4"] in out
    assert await run_cli([*cli, "quarantine", "show", "user:user_4", "--value"]) == OK
    assert capsys.readouterr().out == DUMP["user:user_4"]  # the exact bytes, to edit
    assert await run_cli([*cli, "quarantine", "show", "user:user_77"]) == PROBLEMS
    assert "no quarantined record user:user_77" in capsys.readouterr().err

    # restore as stored: still invalid, refused with the reason and how to fix it
    assert await run_cli([*cli, "quarantine", "restore", "user:user_4"]) == PROBLEMS
    out = capsys.readouterr().out
    assert "refused: user:user_4 stays quarantined: email:" in out and "--from-file" in out
    assert await real_client.exists("mf:quarantine:user:user_4")

    # fixed in a file: a wrong id is refused, the fixed record restored under its key
    record = orjson.loads(DUMP["user:user_4"])
    fixed = tmp_path / "record.json"
    fixed.write_bytes(orjson.dumps({**record, "user_id": "user_6"}))
    restore = [*cli, "quarantine", "restore", "user:user_4", "--from-file", str(fixed)]
    assert await run_cli(restore) == PROBLEMS
    assert "does not match the key" in capsys.readouterr().out
    fixed.write_bytes(orjson.dumps({**record, "email": "broken@mail.io"}) + b"\n")
    assert await run_cli(restore) == OK
    assert capsys.readouterr().out == "restored user:user_4\n"
    ks = Keyspace(real_client)
    await ks.setup()
    assert (await ks.get(USER, "user_4")).doc["email"] == "broken@mail.io"
    assert await real_client.get("mf:uniq:user:email:broken@mail.io") == b"user_4"
    assert not await real_client.exists("mf:quarantine:user:user_4")
    assert await run_cli(restore) == PROBLEMS  # gone from the quarantine
    capsys.readouterr()

    # restore --all: the driver whose user now exists comes back, the rest stay
    await ks.create(
        USER, {"user_id": "user_99", "username": "Late", "email": "l@x.io", "role": "admin"}
    )
    assert await run_cli([*cli, "quarantine", "restore", "--all"]) == PROBLEMS
    both = capsys.readouterr()
    assert "restored 1 of 4; 3 still quarantined" in both.out
    assert "restore: 4 records in" in both.err  # progress and its summary on stderr
    assert (await ks.get(ks.schema.entity("driver"), "driver_5")).doc["user_id"] == "user_99"
    left = {"user:user_5", "driver:driver_4", "quest:quest_4"}
    assert all(f"  {key}: " in both.out for key in left)

    # drop the rest; an unknown key is an error, the known ones still go
    assert await run_cli([*cli, "quarantine", "drop", *sorted(left), "user:user_77"]) == PROBLEMS
    both = capsys.readouterr()
    assert both.out.count("dropped ") == 3 and "no quarantined record user:user_77" in both.err
    assert await run_cli([*cli, "quarantine", "list"]) == OK
    assert capsys.readouterr().out == "quarantine: 0 record(s)\n"
    assert await run_cli([*cli, "check"]) == OK
    assert "quarantine:" not in capsys.readouterr().out


async def test_restore_usage_errors_exit_2(redis_server: EmbeddedRedis) -> None:
    cli = ["--redis-url", redis_server.url, "quarantine", "restore"]
    for argv in (cli, [*cli, "user:user_4", "--all"], [*cli, "--all", "--from-file", "f"]):
        with pytest.raises(SystemExit) as exited:
            await run_cli(argv)
        assert exited.value.code == USAGE


async def test_a_bad_singleton_is_quarantined_and_restored_over_the_default(
    redis_server: EmbeddedRedis,
    real_client: Redis,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    cli = ["--redis-url", redis_server.url]
    config = orjson.loads(DUMP["config:system"])
    await real_client.set("config:system", orjson.dumps({**config, "system": "eleven"}))
    await real_client.set("user:user_1", DUMP["user:user_1"])
    assert await run_cli([*cli, "import-legacy"]) == PROBLEMS
    assert "config:system: system:" in capsys.readouterr().out
    assert await real_client.type("config:system") == b"ReJSON-RL"  # setup()'s default
    assert await run_cli([*cli, "check"]) == OK
    capsys.readouterr()

    fixed = tmp_path / "config.json"
    fixed.write_bytes(orjson.dumps(config))
    restore = [*cli, "quarantine", "restore", "config:system", "--from-file", str(fixed)]
    assert await run_cli(restore) == OK
    raw = await real_client.execute_command("JSON.GET", "config:system", ".")  # type: ignore[no-untyped-call]
    assert orjson.loads(raw) == config
    assert not await real_client.exists("mf:quarantine:config:system")


async def test_backups_carry_the_quarantine_unchanged(
    redis_server: EmbeddedRedis,
    real_client: Redis,
    capsysbinary: pytest.CaptureFixture[bytes],
    tmp_path: Path,
) -> None:
    cli = ["--redis-url", redis_server.url]
    odd = b"\xff not UTF-8, not JSON"
    await real_client.set("user:user_1", DUMP["user:user_1"])
    await real_client.set("user:user_2", odd)
    await real_client.set("user:user_4", DUMP["user:user_4"])
    assert await run_cli([*cli, "import-legacy"]) == PROBLEMS
    before = {
        key: await real_client.hgetall(f"mf:quarantine:{key}")
        for key in ("user:user_2", "user:user_4")
    }
    backup = tmp_path / "backup.jsonl.gz"
    assert await run_cli([*cli, "backup", str(backup)]) == OK
    await real_client.flushall()
    assert await run_cli([*cli, "restore", str(backup)]) == OK
    for key, entry in before.items():
        assert await real_client.hgetall(f"mf:quarantine:{key}") == entry
    capsysbinary.readouterr()
    assert await run_cli([*cli, "quarantine", "show", "user:user_2", "--value"]) == OK
    assert capsysbinary.readouterr().out == odd  # the exact bytes, also when not UTF-8


K1, K2 = bytes(range(32)), bytes(range(1, 33))
SECRET = "hank@secret.example"
HANK = {
    "user_id": "user_6",
    "username": "hank",
    "email": SECRET,
    "role": "wizard",  # not a role: quarantined
    "created_at": "2025-01-01T00:00:00",
}


async def _plaintext_anywhere(client: Redis, secret: str) -> list[str]:
    """Every key whose name or value holds ``secret`` (any case; DUMP may compress)."""
    needle = secret.lower().encode()
    found = []
    async for key in client.scan_iter(count=1000):
        kind = await client.type(key)
        value: object = b""
        if kind == b"string":
            value = await client.get(key)
        elif kind == b"hash":
            value = await client.hgetall(key)
        elif kind == b"set":
            value = await client.smembers(key)
        elif kind == b"zset":
            value = await client.zrange(key, 0, -1)
        elif kind == b"list":
            value = await client.lrange(key, 0, -1)
        elif kind == b"ReJSON-RL":
            value = await client.execute_command("JSON.GET", key, ".")  # type: ignore[no-untyped-call]
        if needle in key.lower() or needle in repr(value).lower().encode():
            found.append(key.decode("utf-8", "backslashreplace"))
    return found


async def test_on_an_encrypted_keyspace_the_quarantine_is_sealed_and_restores_sealed(
    redis_server: EmbeddedRedis,
    real_client: Redis,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cli = ["--redis-url", redis_server.url]
    monkeypatch.setenv("MULTIFRAME_ENCRYPTION_KEY", K1.hex())
    await real_client.set("user:user_1", DUMP["user:user_1"])
    await real_client.set("user:user_6", orjson.dumps(HANK))
    assert await run_cli([*cli, "import-legacy"]) == PROBLEMS
    entry = await real_client.hgetall("mf:quarantine:user:user_6")
    assert b"value_sealed" in entry and b"value" not in entry
    assert await _plaintext_anywhere(real_client, SECRET) == []
    backup = tmp_path / "backup.jsonl.gz"
    assert await run_cli([*cli, "backup", str(backup)]) == OK
    assert SECRET.encode() not in gzip.decompress(backup.read_bytes())
    assert await run_cli([*cli, "check"]) == OK
    capsys.readouterr()

    # rotate-key re-seals the entry; show opens it with the new key alone
    assert await run_cli([*cli, "rotate-key", "--new-key", K2.hex()]) == OK
    assert b"value_sealed" in await real_client.hgetall("mf:quarantine:user:user_6")
    monkeypatch.setenv("MULTIFRAME_ENCRYPTION_KEY", K2.hex())
    capsys.readouterr()
    assert await run_cli([*cli, "quarantine", "show", "user:user_6", "--value"]) == OK
    assert orjson.loads(capsys.readouterr().out) == HANK

    # restore: created as the API creates, sealed and claimed by blind token
    fixed = tmp_path / "record.json"
    fixed.write_bytes(orjson.dumps({**HANK, "role": "engineer"}))
    restore = [*cli, "quarantine", "restore", "user:user_6", "--from-file", str(fixed)]
    assert await run_cli(restore) == OK, capsys.readouterr()
    assert await _plaintext_anywhere(real_client, SECRET) == []
    ks = Keyspace(real_client)
    await ks.setup()
    await ks.unlock(K2)
    assert (await ks.get(USER, "user_6")).doc["email"] == SECRET
    assert [
        d["user_id"] for d in (await ks.list(USER, parse(USER, {"email": [SECRET]}))).items
    ] == ["user_6"]
    with pytest.raises(UniqueConflict):
        await ks.create(USER, {"username": "hank2", "email": SECRET.upper(), "role": "engineer"})
    assert await run_cli([*cli, "check"]) == OK


async def test_encrypt_seals_records_quarantined_before_the_key(
    redis_server: EmbeddedRedis,
    real_client: Redis,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cli = ["--redis-url", redis_server.url]
    await real_client.set("user:user_6", orjson.dumps(HANK))
    assert await run_cli([*cli, "import-legacy"]) == PROBLEMS
    assert await _plaintext_anywhere(real_client, SECRET) == ["mf:quarantine:user:user_6"]
    monkeypatch.setenv("MULTIFRAME_ENCRYPTION_KEY", K1.hex())
    ks = Keyspace(real_client)
    await ks.setup()
    await ks.unlock(K1)  # the service restarted with a key, and the keyring says done
    await real_client.hset("mf:crypto", "plaintext", "0")
    capsys.readouterr()
    assert await run_cli([*cli, "check"]) == PROBLEMS  # the clear record is named
    assert "mf:quarantine:user:user_6" in capsys.readouterr().out
    assert await run_cli([*cli, "encrypt"]) == OK
    assert "quarantine: 1 read, 1 sealed" in capsys.readouterr().out
    assert await _plaintext_anywhere(real_client, SECRET) == []
    assert await run_cli([*cli, "check"]) == OK
    capsys.readouterr()
    assert await run_cli([*cli, "quarantine", "show", "user:user_6", "--value"]) == OK
    assert orjson.loads(capsys.readouterr().out) == HANK
