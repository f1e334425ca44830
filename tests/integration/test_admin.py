"""load-demo, generate, reindex and reset through the CLI, and durability across SIGKILL."""

from __future__ import annotations

import asyncio
import signal
import sys
import tomllib
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from keyspace import DRIVER, QUEST, USER, Keyspace, changes, connect, feed, parse, search
from keyspace.server import EmbeddedRedis, free_port
from scripts.cli import run_cli
from scripts.exits import OK, REFUSED
from tests import factories as f
from tests.redis_state import snapshot

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "demo_data" / "multiframe" / "demo.json"


async def cli(server: EmbeddedRedis, *argv: str) -> int:
    return await run_cli(["--redis-url", server.url, *argv])


async def test_load_demo_is_idempotent_and_keeps_seed_records(
    redis_server: EmbeddedRedis, real_client: Redis
) -> None:
    assert await cli(redis_server, "load-demo") == OK
    first = await snapshot(real_client)
    assert await cli(redis_server, "load-demo") == OK
    assert await snapshot(real_client) == first
    demo = orjson.loads(DEMO.read_bytes())
    seed_driver = orjson.loads(first[b"driver:driver_1"])  # type: ignore[arg-type]
    assert seed_driver == demo["drivers"][0]
    assert seed_driver["chip_data"]["cores"] == 128
    assert orjson.loads(first[b"config:system"]) == demo["config:system"]  # type: ignore[arg-type]
    assert first[b"user_counter"] == str(len(demo["users"])).encode()
    ks = Keyspace(real_client)
    await ks.setup()
    page = await ks.list(DRIVER, parse(DRIVER, {"user_id": ["user_1"], "status": ["optimized"]}))
    assert [d["driver_id"] for d in page.items] == ["driver_1"]
    roles = {u["role"] for u in demo["users"]}
    assert roles == {"admin", "designer", "engineer"}
    made = await f.user(ks, "AfterDemo")
    assert made.doc["user_id"] == f"user_{len(demo['users']) + 1}"


async def test_generate_is_deterministic_and_consistent(
    redis_server: EmbeddedRedis, real_client: Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli(redis_server, "generate", "--users", "300", "--seed", "5") == OK
    assert "documents sent in" in capsys.readouterr().out
    first = await snapshot(real_client)
    await real_client.flushall()
    assert await cli(redis_server, "generate", "--users", "300", "--seed", "5") == OK
    second = await snapshot(real_client)
    assert second == first
    users = [k for k in first if k.startswith(b"user:")]
    assert len(users) == 300
    assert len([k for k in first if k.startswith(b"driver:")]) > 900
    from scripts.inspection import inspect

    ks = Keyspace(real_client)
    await ks.setup()
    assert (await inspect(ks)).clean


async def test_reindex_never_interrupts_queries(
    redis_server: EmbeddedRedis, real_client: Redis
) -> None:
    ks = Keyspace(real_client)
    await ks.setup()
    await cli(redis_server, "generate", "--users", "400")
    before = search.current_name(QUEST)
    expected = (await ks.list(QUEST, parse(QUEST, {"status": ["active"], "limit": ["5"]}))).total
    assert expected is not None and expected > 0
    stop = asyncio.Event()
    answers: list[int] = []

    async def query() -> None:
        client = connect(redis_server.url)
        reader = Keyspace(client)
        await reader.setup()
        while not stop.is_set():
            page = await reader.list(QUEST, parse(QUEST, {"status": ["active"], "limit": ["5"]}))
            assert len(page.items) == 5 and page.total is not None
            answers.append(page.total)
        await client.aclose()

    readers = [asyncio.create_task(query()) for _ in range(3)]
    assert await cli(redis_server, "reindex") == OK
    stop.set()
    await asyncio.gather(*readers)
    assert answers
    assert set(answers) == {expected}
    target = await search.alias_target(real_client, QUEST)
    assert target is not None
    assert target.startswith(before + ".")
    assert await search.list_indexes(real_client) >= {target}
    assert before not in await search.list_indexes(real_client)


async def test_reset_refuses_production_and_wipes_development(
    redis_server: EmbeddedRedis, real_client: Redis
) -> None:
    ks = Keyspace(real_client)
    await ks.setup()
    await f.user(ks, "A")
    assert await cli(redis_server, "reset", "--yes-really") == REFUSED
    assert await real_client.exists("user:user_1") == 1
    await ks.patch_config({"system": {"mode": "development"}})
    stream = ks.schema.names.changes_key()
    before = await feed.after(real_client, stream, None, 10_000)
    assert await cli(redis_server, "reset", "--yes-really") == OK
    left = sorted([k async for k in real_client.scan_iter()])
    assert left == [b"analytics:metrics", b"config:system", stream.encode()]
    assert (await ks.get_config()).doc["system"]["mode"] == "production"
    assert (await f.user(ks, "B")).doc["user_id"] == "user_1"
    # Review 20b: a consumer resuming from before the reset is told the feed began anew
    # (410 gone), not handed the new user_1 as if its old mirror were still right.
    info = await feed.info(real_client, stream)
    assert changes.trimmed_past(changes.parse_id(before[-1]["id"]), info)


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, appendfsync="always")
    server.start()

    async def write() -> list[str]:
        client = connect(server.url)
        ks = Keyspace(client)
        await ks.setup()
        ids = [str((await f.user(ks, f"Durable{i}")).doc["user_id"]) for i in range(100)]
        await f.driver(ks, "user_1")
        await client.aclose()
        return ids

    acknowledged = asyncio.run(write())
    server.kill()
    server.start()

    async def read() -> None:
        client = connect(server.url)
        ks = Keyspace(client)
        await ks.setup()
        for user_id in acknowledged:
            assert (await ks.get(USER, user_id)).doc["user_id"] == user_id
        assert await client.get("user_counter") == b"100"
        assert await client.get("mf:uniq:user:username:durable99") == b"user_100"
        await client.aclose()

    try:
        asyncio.run(read())
    finally:
        server.stop()


async def test_an_unreachable_server_is_a_clear_error_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert await run_cli(["--redis-url", f"redis://127.0.0.1:{free_port()}/0", "check"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Redis is unreachable")
    assert "Traceback" not in err


async def test_a_data_dir_in_use_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with EmbeddedRedis(tmp_path / "data") as running:
        # No redis.url in the directory (no service wrote one): the CLI would start its own.
        code = await run_cli(["--data-dir", str(tmp_path / "data"), "check"])
        assert code == 1
        err = capsys.readouterr().err
        assert f"another redis-server (pid {running.pid})" in err


@pytest.mark.parametrize("after_s", [0.8, 1.6, 2.4])
async def test_ctrl_c_stops_a_long_command(
    redis_server: EmbeddedRedis, real_client: Redis, after_s: float
) -> None:
    # One SIGINT must do: Python 3.11's redis-py can swallow the single cancel asyncio.run sends.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "scripts", "--redis-url", redis_server.url,
        "generate", "--users", "50000", "--seed", str(int(after_s * 10)),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await asyncio.sleep(after_s)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout=15)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 130, err.decode()[-2000:]
    assert b"interrupted" in err


def console_script() -> list[str]:
    """``multiframe-admin`` as its generated wrapper runs it, from pyproject's entry point
    (the installed wrapper would import the package the venv was installed from)."""
    target = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, func = target["multiframe-admin"].partition(":")
    return ["-c", f"import sys; from {module} import {func}; sys.exit({func}())"]


@pytest.mark.parametrize(
    "how",
    [["-m", "scripts"], ["-m", "scripts.cli"], console_script()],
    ids=["python -m scripts", "python -m scripts.cli", "multiframe-admin"],
)
async def test_every_way_to_run_the_cli_keeps_its_exit_codes(
    redis_server: EmbeddedRedis, real_client: Redis, how: list[str]
) -> None:
    # Run as `python -m scripts.cli`, the module was a second copy whose handlers missed the
    # Refused raised by the commands: a traceback and exit 1 instead of 3.
    ks = Keyspace(real_client)
    await ks.setup()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *how,
        "--redis-url",
        redis_server.url,
        "reset",
        "--yes-really",
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == REFUSED, err.decode()
    assert b"Traceback" not in err


async def test_the_cli_waits_for_a_supervised_restart_instead_of_starting_a_second_server(
    tmp_path: Path,
) -> None:
    # After kill -9 the service's supervisor restarts its server within about a second; the
    # CLI used to take redis.url for stale at once and start its own on the same directory.
    from scripts.cli import URL_FILE, open_keyspace

    data_dir = tmp_path / "data"
    server = EmbeddedRedis(data_dir)
    url = server.start()
    (data_dir / URL_FILE).write_text(url + "\n")
    server.stop()  # down now, back in a second: the supervisor's restart

    async def supervisor() -> None:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(server.start)

    restarting = asyncio.create_task(supervisor())
    try:
        async with open_keyspace(None, data_dir, setup=False) as ks:
            await ks.client.set("user_counter", "7")
            assert server.url == url
        direct = connect(server.admin_url)
        try:
            assert await direct.get("user_counter") == b"7"  # on the service's own server
        finally:
            await direct.aclose()
    finally:
        await restarting
        server.stop()


async def test_a_server_out_of_memory_is_a_clear_error_not_a_traceback(
    redis_server: EmbeddedRedis, real_client: Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review 19c: generate meeting maxmemory (OOM) ended in a traceback."""
    assert await cli(redis_server, "generate", "--users", "5") == OK
    used = int((await real_client.info("memory"))["used_memory"])
    await real_client.config_set("maxmemory", str(used))
    try:
        assert await cli(redis_server, "generate", "--users", "3000", "--seed", "9") == 1
    finally:
        await real_client.config_set("maxmemory", "0")
    err = capsys.readouterr().err
    assert "error: Redis refused a command (OutOfMemoryError" in err
    assert "Traceback" not in err


async def test_a_second_generate_with_the_same_seed_says_what_it_wrote(
    redis_server: EmbeddedRedis, real_client: Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review 19c: the summary counted documents sent, refused ones included, and said
    nothing of why a re-run with the same seed is refused."""
    await real_client.flushall()
    assert await cli(redis_server, "generate", "--users", "20", "--seed", "4") == OK
    capsys.readouterr()
    assert await cli(redis_server, "generate", "--users", "20", "--seed", "4") == 1
    out = capsys.readouterr().out
    assert "documents sent in" in out
    assert "refused by their checks (a unique value taken" in out and "another --seed" in out
