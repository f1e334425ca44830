"""import-legacy: in place, from --source, dry run, re-runs; on demo_data/legacy/dump.json."""

from __future__ import annotations

import importlib
import inspect as pyinspect
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from keyspace import DRIVER, PROCESS, Keyspace, codec, connect, parse
from keyspace.server import EmbeddedRedis
from scripts.cli import run_cli
from scripts.exits import OK, PROBLEMS
from tests.redis_state import snapshot

pytestmark = pytest.mark.redis

DUMP: dict[str, str] = orjson.loads(
    (Path(__file__).resolve().parents[2] / "demo_data" / "legacy" / "dump.json").read_bytes()
)
BAD = {
    "user:user_4": "email:",
    "user:user_5": "duplicate email: already used by user_1",
    "driver:driver_4": "chip_data.type:",
    "driver:driver_5": "user_id: user user_99 does not exist",
    "quest:quest_4": "quest_id 'quest_7' does not match the key",
}
GOOD = [k for k in DUMP if ":" in k and k not in BAD]


def db1(server: EmbeddedRedis) -> str:
    assert server.url.endswith("/0")
    return server.url[:-1] + "1"


async def load(client: Redis) -> None:
    for key, value in DUMP.items():
        await client.set(key, value)


async def imported(client: Redis) -> None:
    """Every good record is now its document, equal to the legacy JSON, under the same key."""
    for key in GOOD:
        assert await client.type(key) == b"ReJSON-RL", key
        raw = await client.execute_command("JSON.GET", key, ".")  # type: ignore[no-untyped-call]
        assert codec.loads(raw) == orjson.loads(DUMP[key]), key


def reasons(out: str) -> None:
    for key, reason in BAD.items():
        line = next(line for line in out.splitlines() if line.strip().startswith(f"{key}:"))
        assert reason in line, line


async def assert_check_clean(ks: Keyspace, *, left: frozenset[str] = frozenset()) -> None:
    """When scripts/inspection.py offers ``inspect(ks)``, its only findings on the imported
    keyspace are the ``left`` keys: skipped records still holding their legacy string (in
    place, none: what cannot be converted is quarantined)."""
    inspect = getattr(importlib.import_module("scripts.inspection"), "inspect", None)
    if inspect is None:
        return
    report = inspect(ks)
    if pyinspect.isawaitable(report):
        report = await report
    problems = list(getattr(report, "problems", report))
    assert {getattr(p, "key", None) for p in problems} <= left, problems
    assert len(problems) == len(left), problems


async def test_in_place_import_converts_counts_and_is_safe_to_rerun(
    redis_server: EmbeddedRedis,
    real_client: Redis,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    await load(real_client)
    report = tmp_path / "skipped.json"
    argv = ["--redis-url", redis_server.url, "import-legacy", "--batch", "3"]
    assert await run_cli([*argv, "--report", str(report)]) == PROBLEMS
    reasons(capsys.readouterr().out)
    await imported(real_client)
    assert await real_client.type("config:system") == b"ReJSON-RL"
    assert await real_client.type("analytics:metrics") == b"ReJSON-RL"
    for key in BAD:  # moved, unchanged, to the quarantine, for someone to fix and restore
        assert not await real_client.exists(key)
        entry = await real_client.hgetall(f"mf:quarantine:{key}")
        assert entry[b"value"] == DUMP[key].encode()
        assert BAD[key].encode() in entry[b"reason"] and entry[b"at"]
    written = orjson.loads(report.read_bytes())
    assert written["skipped"] == []
    assert {s["key"] for s in written["quarantined"]} == set(BAD)

    counters = {k: int(await real_client.get(k) or 0) for k in DUMP if k.endswith("_counter")}
    # The seed had none; quarantined ids stay taken (user_4, user_5), so a restore finds its
    # id free.
    assert await real_client.get("user_counter") == b"5"
    assert counters == {
        "driver_counter": 5,
        "collab_counter": 1,
        "process_counter": 1,
        "quest_counter": 4,  # was "2" although quest_3 existed; quest_4 is quarantined
        "nft_counter": 1,  # the legacy counter already counted this NFT
    }
    assert await real_client.smembers("mf:ref:user:user_2:collab.collaborators") == {b"collab_1"}
    assert await real_client.get("mf:uniq:user:email:holo@misha.com") == b"user_1"

    # Re-running changes nothing and imports nothing: nothing is left to skip.
    before = await snapshot(real_client)
    assert await run_cli(argv) == OK
    out = capsys.readouterr().out
    assert "user               0         3        0            0" in out
    assert await snapshot(real_client) == before

    ks = Keyspace(real_client)
    await ks.setup()
    page = await ks.list(DRIVER, parse(DRIVER, {"user_id": ["user_1"]}))
    assert [d["driver_id"] for d in page.items] == ["driver_1", "driver_3"]
    await assert_check_clean(ks)
    made = await ks.create(PROCESS, {"user_id": "user_2", "chip_data": DUMP_CHIP})
    assert made.doc["process_id"] == "process_2"
    driver = await ks.create(
        DRIVER, {"user_id": "user_2", "chip_id": "chip_x", "chip_data": DUMP_CHIP, "version": "1"}
    )
    assert driver.doc["driver_id"] == "driver_6"


DUMP_CHIP = orjson.loads(DUMP["driver:driver_1"])["chip_data"]


async def test_source_import_into_another_database(
    redis_server: EmbeddedRedis, real_client: Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    source = connect(db1(redis_server))
    try:
        await load(source)
        legacy = await snapshot(source)
        argv = ["--redis-url", redis_server.url, "import-legacy", "--source", db1(redis_server)]
        assert await run_cli(argv) == PROBLEMS
        reasons(capsys.readouterr().out)
        await imported(real_client)
        for key in BAD:
            assert not await real_client.exists(key)
        assert await real_client.get("driver_counter") == b"5"
        assert await real_client.get("quest_counter") == b"3"
        assert await real_client.get("nft_counter") == b"1"
        assert await snapshot(source) == legacy  # the source is only read

        before = await snapshot(real_client)
        assert await run_cli(argv) == PROBLEMS
        out = capsys.readouterr().out
        assert "driver             0         3        2" in out
        assert await snapshot(real_client) == before

        ks = Keyspace(real_client)
        await ks.setup()
        await assert_check_clean(ks)
    finally:
        await source.aclose()


async def test_dry_run_writes_nothing_and_reports_the_same(
    redis_server: EmbeddedRedis, real_client: Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    await load(real_client)
    before = await snapshot(real_client)
    argv = ["--redis-url", redis_server.url, "import-legacy", "--dry-run"]
    assert await run_cli(argv) == PROBLEMS
    out = capsys.readouterr().out
    reasons(out)
    assert "dry run" in out
    assert "quest              3         0        0            1" in out  # would quarantine
    assert await snapshot(real_client) == before

    source = connect(db1(redis_server))
    try:
        await real_client.flushdb()
        await load(source)
        assert await run_cli([*argv, "--source", db1(redis_server)]) == PROBLEMS
        reasons(capsys.readouterr().out)
        assert await real_client.dbsize() == 0
    finally:
        await source.aclose()


async def test_clean_legacy_keyspace_exits_ok(
    redis_server: EmbeddedRedis, real_client: Redis
) -> None:
    for key in GOOD:
        await real_client.set(key, DUMP[key])
    assert await run_cli(["--redis-url", redis_server.url, "import-legacy"]) == OK
    await imported(real_client)
