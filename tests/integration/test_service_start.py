"""``python -m app`` as an operator meets it: starting while RediSearch is still rebuilding a
large keyspace's indexes, losing its embedded Redis to ``kill -9``, and every embedded server
(the CLI's too) refusing an unauthenticated client."""

from __future__ import annotations

import asyncio
import fcntl
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest
import redis

from keyspace import DRIVER, USER, Keyspace, connect, keys, search
from keyspace.connection import call
from keyspace.server import EmbeddedRedis, free_port
from keyspace.tokens import TokenKind
from scripts.cli import open_keyspace, run_cli
from scripts.exits import OK
from tests.integration.test_service_process import call as api_call
from tests.integration.test_service_process import children, environment, service, stopped

pytestmark = pytest.mark.redis

USERS = 300
# Keys every index build must scan; with BG_INDEX_SLEEP_GAP 1 RediSearch yields after each,
# so the rebuild after a restart takes well over the few seconds the app needs to start.
FILLER_KEYS = 80_000
STALE_VERSION = "0000000000"


def _wait(what: str, seconds: float, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        time.sleep(0.2)


async def _load(server: EmbeddedRedis) -> tuple[str, str]:
    """Users, an admin with an API key, filler keys, and a driver alias on a stale version;
    returns (admin id, its API key)."""
    assert await run_cli(["--redis-url", server.url, "generate", "--users", str(USERS)]) == OK
    client = connect(server.admin_url)
    try:
        ks = Keyspace(client)
        await ks.setup()
        admin = await ks.create(USER, {"username": "Operator", "email": "op@x.io", "role": "admin"})
        minted = await ks.tokens.mint(admin.doc["user_id"], admin.raw, TokenKind.API_KEY)
        for start in range(0, FILLER_KEYS, 1000):  # MSET, unlike DEBUG POPULATE, is in the AOF
            await client.mset({f"filler:{i}": "x" for i in range(start, start + 1000)})
        # An index version from an older definition: start-up must build the current one.
        stale = keys.index_name(DRIVER.prefix, STALE_VERSION)
        await call(client, "FT.CREATE", stale, *search.definition(DRIVER))
        await call(client, "FT.ALIASUPDATE", keys.index_alias(DRIVER.prefix), stale)
        await call(client, "FT.DROPINDEX", search.current_name(DRIVER))
        return str(admin.doc["user_id"]), minted.token
    finally:
        await client.aclose()


async def _driver_index(url: str) -> str | None:
    client = connect(url)
    try:
        return await search.alias_target(client, DRIVER)
    finally:
        await client.aclose()


@contextmanager
def app_on(url: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "REDIS_URL": url, "MULTIFRAME_PORT": str(port)}
    env.pop("MULTIFRAME_ADMIN_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "app"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# Timing-bound (a rebuild slow enough to outlast start-up, fast enough to finish): 80k keys
# took 100 s on a quiet run and over 300 s on a loaded one, so it runs in `make soak`.
@pytest.mark.soak
def test_starts_without_an_admin_token_while_indexes_rebuild(tmp_path: Path) -> None:
    server = EmbeddedRedis(
        tmp_path / "redis",
        search_args=["BG_INDEX_SLEEP_GAP", "1"],
    )
    server.start()
    try:
        admin_id, token = asyncio.run(_load(server))
        server.restart()  # the reload rebuilds every index from the keys, slowly
        port = free_port()
        auth = {"Authorization": f"Bearer {token}"}
        with app_on(server.url, port) as proc:

            def up() -> bool:
                assert proc.poll() is None, (proc.stdout.read() if proc.stdout else b"").decode()
                try:
                    return api_call(port, "GET", "/health", headers=auth)[0] == 200
                except OSError:
                    return False

            _wait("the service comes up", 30, up)
            status, body = api_call(port, "GET", "/api/users?limit=1", headers=auth)
            assert (status, body["error"]["code"]) == (503, "not_ready"), body
            status, body = api_call(port, "GET", "/api/drivers?limit=1", headers=auth)
            assert (status, body["error"]["code"]) == (503, "not_ready"), body
            # Reads by id and writes are served meanwhile.
            assert api_call(port, "GET", f"/api/users/{admin_id}", headers=auth)[0] == 200
            made = {"username": "DuringBuild", "email": "db@x.io", "role": "engineer"}
            status, body = api_call(port, "POST", "/api/users", made, headers=auth)
            assert status == 201, body

            def listed() -> bool:
                try:
                    return all(
                        api_call(port, "GET", f"/api/{c}?limit=1", headers=auth)[0] == 200
                        for c in ("users", "drivers")
                    )
                except TimeoutError:  # a loaded machine: ask again
                    return False

            _wait("lists answer once the indexes are complete", 900, listed)
            status, body = api_call(port, "GET", "/api/users?limit=1", headers=auth)
            assert body["total"] == USERS + 2  # generated, the operator, the one made meanwhile
            assert api_call(port, "GET", "/api/drivers?limit=1", headers=auth)[1]["total"] > 0
        with redis.Redis.from_url(server.admin_url) as check:
            # No first-start admin was made: the keyspace had users.
            assert not check.exists(keys.doc_key(USER.prefix, "admin"))
        assert asyncio.run(_driver_index(server.admin_url)) == search.current_name(DRIVER)
    finally:
        server.stop()


def _redis_port(data_dir: Path) -> int:
    url = (data_dir / "redis.url").read_text().strip()
    return int(url.rsplit(":", 1)[1].split("/")[0])


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def test_a_killed_embedded_redis_is_restarted_and_health_tells_the_truth(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    with service(data_dir, port) as proc:
        body = {"username": "BeforeKill", "email": "bk@x.io", "role": "engineer"}
        status, made = api_call(port, "POST", "/api/users", body)
        assert status == 201, made
        url_before = (data_dir / "redis.url").read_text()
        redis_port = _redis_port(data_dir)
        anonymous = redis.Redis(port=redis_port)  # the app's server: the default user is off
        with anonymous, pytest.raises(redis.AuthenticationError):
            anonymous.config_get("dir")
        (first,) = children(proc.pid)
        lock = os.open(data_dir / "redis.lock", os.O_RDWR)
        try:
            os.kill(first, signal.SIGKILL)
            # Taken the moment the server dies, before the supervisor can: Redis stays down
            # while the test holds it, and /health must say so every time.
            fcntl.flock(lock, fcntl.LOCK_EX)
            assert not _reachable(redis_port)
            for _ in range(5):
                status, health = api_call(port, "GET", "/health")
                assert (status, health["error"]["code"]) == (503, "redis_unavailable"), health
                time.sleep(0.2)
        finally:
            os.close(lock)  # the supervisor's restart gets the directory now
        began = time.monotonic()

        def recovered() -> bool:
            assert proc.poll() is None, "the service exited"
            return (
                api_call(port, "GET", "/health")[0] == 200
                and api_call(port, "GET", f"/api/users/{made['user_id']}")[0] == 200
            )

        _wait("the API recovers by itself", 20, recovered)
        assert time.monotonic() - began < 20
        (second,) = children(proc.pid)
        assert second != first
        assert proc.poll() is None
        # Same port, same ACL users, the URL file as before; the data written before is there.
        assert (data_dir / "redis.url").read_text() == url_before
        status, got = api_call(port, "GET", f"/api/users/{made['user_id']}")
        assert (status, got["username"]) == (200, "BeforeKill")
        status, again = api_call(
            port, "POST", "/api/users", {**body, "username": "AfterKill", "email": "ak@x.io"}
        )
        assert status == 201, again


async def test_a_cli_started_server_refuses_unauthenticated_clients(tmp_path: Path) -> None:
    async with open_keyspace(None, tmp_path / "data") as ks:
        kwargs = ks.client.connection_pool.connection_kwargs
        with redis.Redis(port=kwargs["port"]) as anonymous:
            with pytest.raises(redis.AuthenticationError):
                anonymous.config_get("dir")
            with pytest.raises(redis.AuthenticationError):
                anonymous.execute_command("AUTH", "default", "")
        # The CLI itself works as the service user, which may not run CONFIG either.
        assert kwargs["username"] == "multiframe"
        with pytest.raises(redis.exceptions.NoPermissionError):
            await ks.client.config_get("dir")


def _spawn(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "app"],
        env=environment(data_dir, port),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _lock_is_free(data_dir: Path) -> bool:
    fd = os.open(data_dir / "redis.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=str)
def test_a_signal_while_the_embedded_redis_starts_leaves_no_server_behind(
    tmp_path: Path, stop: signal.Signals
) -> None:
    # The app used to die at once (SIGTERM) or skip its cleanup (Ctrl-C) while it waited for
    # its server: that server kept the data directory, and every later start was refused.
    data_dir = tmp_path / "data"
    proc = _spawn(data_dir, free_port())
    try:
        _wait("the app spawns its redis-server", 20, lambda: bool(children(proc.pid)))
        proc.send_signal(stop)
        proc.wait(timeout=30)
        assert not children(proc.pid)
        _wait("the data directory is free again", 10, lambda: _lock_is_free(data_dir))
    finally:
        if proc.poll() is None:  # the signal did not stop it: no server may outlive the test
            orphans = children(proc.pid)
            proc.kill()
            proc.wait()
            for pid in orphans:
                os.kill(pid, signal.SIGKILL)
    with service(data_dir, free_port()):  # the next start is not refused
        pass


def test_redis_killed_during_start_up_is_restarted_and_the_service_comes_up(
    tmp_path: Path,
) -> None:
    # Killed after it answered, while the app set up the keyspace: the app used to exit 1 with
    # a ConnectionError traceback instead of waiting for the supervisor's restart.
    data_dir, port = tmp_path / "data", free_port()
    proc = _spawn(data_dir, port)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if b"embedded redis-server on port" in line:
                break
        else:
            raise AssertionError("the app never started its redis-server")
        os.kill(int((data_dir / "redis.pid").read_text()), signal.SIGKILL)

        def healthy() -> bool:
            assert proc.poll() is None, "the service exited"
            try:
                return api_call(port, "GET", "/health")[0] == 200
            except OSError:
                return False

        _wait("the service comes up on the restarted server", 30, healthy)
        assert api_call(port, "GET", "/api/users?limit=1")[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert _lock_is_free(data_dir)


class _Output:
    """A process's output, read by a thread so a test can wait for a line with a deadline."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.text = ""
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(proc.stdout,), daemon=True).start()

    def _read(self, stream: IO[bytes]) -> None:
        for line in stream:
            self._lines.put(line.decode())

    def wait_for(self, needle: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while needle not in self.text:
            left = deadline - time.monotonic()
            try:
                self.text += self._lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                raise AssertionError(f"no {needle!r} within {seconds} s:\n{self.text}") from None


@pytest.mark.parametrize(
    ("stop", "workers"),
    [(signal.SIGTERM, "1"), (signal.SIGINT, "1"), (signal.SIGTERM, "2")],
    ids=["SIGTERM", "SIGINT", "SIGTERM-2-workers"],
)
def test_a_signal_while_the_start_retries_a_hung_redis_stops_it_with_its_server(
    tmp_path: Path, stop: signal.Signals, workers: str
) -> None:
    # One process used to take the signal but go on retrying for up to a minute; a SIGKILL
    # then left the embedded server running (review 17b finding 4).
    data_dir = tmp_path / "data"
    env = {
        **environment(data_dir, free_port()),
        "MULTIFRAME_REDIS_TIMEOUT_SECONDS": "1",
        "MULTIFRAME_LOG_LEVEL": "INFO",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "--workers", workers],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    server: int | None = None
    try:
        output = _Output(proc)
        output.wait_for("embedded redis-server on port", 30)
        server = int((data_dir / "redis.pid").read_text())
        os.kill(server, signal.SIGSTOP)  # hung, as a server swapping or stalled on its disk
        output.wait_for("redis not ready at start", 30)
        signalled = time.monotonic()
        proc.send_signal(stop)
        output.wait_for("start-up cancelled before serving", 5)
        os.kill(server, signal.SIGCONT)  # so that it can take the app's SIGTERM
        assert proc.wait(timeout=15) == 0, output.text
        assert time.monotonic() - signalled < 15
        assert "serving on" not in output.text
        _wait("the embedded redis-server stops", 5, lambda: stopped(server or 0))
        assert not children(proc.pid)
        assert _lock_is_free(data_dir)
    finally:
        if server is not None and not stopped(server):
            os.kill(server, signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if server is not None and not stopped(server):
            os.kill(server, signal.SIGKILL)
