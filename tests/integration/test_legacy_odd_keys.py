"""import-legacy and check on odd keys: names that are not UTF-8, values that are not JSON,
keys of other types, counters no create can draw from, and values too large to hold many of."""

from __future__ import annotations

import tracemalloc

import orjson
import pytest
from redis.asyncio import Redis

from keyspace import USER, Keyspace, connect
from keyspace.server import EmbeddedRedis
from scripts import legacy_source
from scripts.cli import run_cli
from scripts.exits import PROBLEMS
from scripts.inspection import inspect
from tests.integration.test_legacy import DUMP, GOOD, db1, imported

pytestmark = pytest.mark.redis

ODD_NAME = b"user:user_\xff7"
ODD = {
    "user:user_9": "not valid JSON",
    "user:user_8": "not a legacy string value (hash)",
    "driver:" + "d" * 200: "driver_id:",
    ODD_NAME.decode("utf-8", "backslashreplace"): "key name is not UTF-8",
}
QUARANTINED = {"user:user_9", "driver:" + "d" * 200}  # legacy strings; the others are left
PAST = str(2**53 + 1)  # INCR takes it, but Lua numbers (doubles) misread it: ids like 9.0e+15


async def load_good(client: Redis) -> None:
    for key in GOOD:
        await client.set(key, DUMP[key])
    for key in ("user_counter", "driver_counter", "quest_counter", "process_counter"):
        await client.delete(key)


def skipped(out: str) -> dict[str, str]:
    """key -> reason of the summary's skip lines."""
    lines = [line.strip() for line in out.splitlines() if line.startswith("  ")]
    return dict(line.split(": ", 1) for line in lines if ": " in line)


async def test_odd_keys_are_skipped_with_a_reason_and_the_rest_imported(
    redis_server: EmbeddedRedis, real_client: Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    await load_good(real_client)
    await real_client.set(ODD_NAME, DUMP["user:user_1"])
    await real_client.set("user:user_9", b"\xff\xfe{")
    await real_client.hset("user:user_8", "user_id", "user_8")
    nameless = {k: v for k, v in orjson.loads(DUMP["driver:driver_1"]).items() if k != "driver_id"}
    await real_client.set("driver:" + "d" * 200, orjson.dumps(nameless))
    argv = ["--redis-url", redis_server.url, "import-legacy"]
    for run in range(2):  # and again: the re-run skips the same keys, imports nothing twice
        assert await run_cli(argv) == PROBLEMS
        out = capsys.readouterr()
        assert "Traceback" not in out.err
        reasons = skipped(out.out)
        for key, reason in ODD.items():
            if run == 0 or key not in QUARANTINED:
                assert reason in reasons[key], (key, reasons)
            else:
                assert key not in reasons, (key, reasons)
        await imported(real_client)
    assert await real_client.get(ODD_NAME) == DUMP["user:user_1"].encode()  # left for a person
    # Values that are not UTF-8 are kept as base64, so a backup (JSON lines) carries them.
    entry = await real_client.hgetall("mf:quarantine:user:user_9")
    assert entry[b"value_base64"] == b"//57"  # b"\xff\xfe{"
    assert await real_client.get("user_counter") == b"9"  # user_9's id stays taken


async def test_counters_no_create_can_use_are_skipped_and_set_from_the_ids(
    redis_server: EmbeddedRedis, real_client: Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    await load_good(real_client)
    await real_client.set("user_counter", PAST)
    await real_client.set("driver_counter", "007")  # INCR refuses leading zeros
    await real_client.set("quest_counter", "many")
    await real_client.set("process_counter", "9" * 30)
    argv = ["--redis-url", redis_server.url, "import-legacy"]
    assert await run_cli(argv) == PROBLEMS
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    reasons = skipped(out.out)
    assert f"past {2**53 - 1}" in reasons["user_counter"]
    assert "set to the highest imported id" in reasons["user_counter"]
    assert "not a whole number" in reasons["driver_counter"]
    await imported(real_client)
    assert await real_client.get("user_counter") == b"3"
    assert await real_client.get("driver_counter") == b"3"  # driver_4 and _5 are not in GOOD
    assert await real_client.get("quest_counter") == b"3"
    assert await real_client.get("process_counter") == b"1"
    ks = Keyspace(real_client)
    await ks.setup()
    made = await ks.create(USER, {"username": "After", "email": "after@x.io", "role": "admin"})
    assert made.doc["user_id"] == "user_4"
    assert (await inspect(ks)).clean
    assert await run_cli(argv) == 0  # the counters are fine now: nothing left to skip


async def test_a_bad_legacy_counter_on_the_source_is_ignored(
    redis_server: EmbeddedRedis, real_client: Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    source = connect(db1(redis_server))
    try:
        await load_good(source)
        await source.set("user_counter", PAST)
        argv = ["--redis-url", redis_server.url, "import-legacy", "--source", db1(redis_server)]
        assert await run_cli(argv) == PROBLEMS
        assert "ignored" in skipped(capsys.readouterr().out)["user_counter"]
        assert await real_client.get("user_counter") == b"3"
        assert await source.get("user_counter") == PAST.encode()  # the source is only read
    finally:
        await source.flushdb()
        await source.aclose()


async def test_check_reports_odd_key_names_and_counters_instead_of_crashing(
    redis_server: EmbeddedRedis, real_client: Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    ks = Keyspace(real_client)
    await ks.setup()
    await ks.create(USER, {"username": "Ann", "email": "ann@x.io", "role": "admin"})
    await real_client.execute_command(  # type: ignore[no-untyped-call]
        "JSON.SET", b"mf:uniq:user:email:\xfe", "$", '"user_1"'
    )
    await real_client.set(b"mf:uniq:user:email:\xfe", b"user_1")
    await real_client.set("user_counter", "001")  # int() reads 1; INCR refuses it
    await real_client.set("driver_counter", " 4")
    assert await run_cli(["--redis-url", redis_server.url, "check"]) == PROBLEMS
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    found = {(p.kind, p.key) for p in (await inspect(ks)).problems}
    assert found >= {
        ("invalid_key", "mf:uniq:user:email:\\xfe"),
        ("counter_behind", "user_counter"),
        ("counter_behind", "driver_counter"),
    }
    assert "not a whole number" in out.out


LARGE = 3 * 2**19  # 1.5 MiB


async def test_large_values_are_read_within_the_byte_budget(
    redis_server: EmbeddedRedis,
    real_client: Redis,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(legacy_source, "MAX_VALUE", 4 * LARGE)
    await load_good(real_client)
    for n in range(16):  # 24 MiB of legacy values (a user whose username is 1.5 MiB is refused)
        big = {"user_id": f"user_{20 + n}", "username": "x" * LARGE, "email": f"{n}@x.io"}
        await real_client.set(f"user:user_{20 + n}", orjson.dumps(big))
    await real_client.set("user:user_99", b" " * (4 * LARGE + 1))  # over MAX_VALUE: never read
    argv = ["--redis-url", redis_server.url, "import-legacy", "--batch-bytes", str(2**20)]
    tracemalloc.start()
    try:
        assert await run_cli(argv) == PROBLEMS
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # One large value at a time (its bytes, the parsed text), never the sixteen.
    assert peak < 4 * LARGE, peak
    reasons = skipped(capsys.readouterr().out)
    assert len([r for r in reasons.values() if r.startswith("username:")]) == 16
    assert "not read" in reasons["user:user_99"]
    await imported(real_client)
