"""``python -m app`` as ``make run`` starts it: its own embedded Redis, the API on a port, one
server per data directory, a graceful stop on SIGTERM, SIGINT or SIGHUP that also stops Redis,
and the data still there on the next start."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from keyspace.server import free_port

pytestmark = pytest.mark.redis

TOKEN = "process-test-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def call(
    port: int, method: str, path: str, body: object = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        payload = None if body is None else orjson.dumps(body)
        sent = {**AUTH, **(headers or {})}
        if payload is not None:
            sent["Content-Type"] = "application/json"
        conn.request(method, path, body=payload, headers=sent)
        response = conn.getresponse()
        return response.status, orjson.loads(response.read())
    finally:
        conn.close()


def environment(data_dir: Path, port: int) -> dict[str, str]:
    env = {
        **os.environ,
        "MULTIFRAME_DATA_DIR": str(data_dir),
        "MULTIFRAME_PORT": str(port),
        "MULTIFRAME_HOST": "127.0.0.1",
        "MULTIFRAME_ADMIN_TOKEN": TOKEN,
    }
    env.pop("REDIS_URL", None)
    return env


@contextmanager
def service(data_dir: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "app"],
        env=environment(data_dir, port),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (proc.stdout.read() if proc.stdout else b"").decode()
            try:
                if call(port, "GET", "/ready")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the service did not become ready in 60 s"
            time.sleep(0.2)
        yield proc
    finally:
        # SIGTERM, so the service stops its Redis: a SIGKILL would leave that server running.
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                orphans = children(proc.pid)
                proc.kill()
                proc.wait()
                for pid in orphans:
                    os.kill(pid, signal.SIGKILL)


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # exited meanwhile
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def stopped(pid: int) -> bool:
    """The process is gone, or a zombie nobody reaped (an orphan's new parent may not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


def test_a_killed_service_comes_back_on_its_data(tmp_path: Path) -> None:
    """SIGKILL (the OOM killer, ``kill -9``) leaves the embedded server running without its
    launcher; the next start stops that orphan (it saves its data) and serves the same data,
    where it used to be refused until someone killed the orphan (review-15b finding 3)."""
    data_dir, port = tmp_path / "data", free_port()
    body = {"username": "Survivor", "email": "s@x.io", "role": "engineer"}
    with service(data_dir, port) as proc:
        status, made = call(port, "POST", "/api/users", body)
        assert status == 201, made
        (server,) = children(proc.pid)
        proc.kill()
        proc.wait()
        assert not stopped(server)  # the orphan, holding the data directory
    with service(data_dir, port):
        assert stopped(server)
        status, again = call(port, "GET", f"/api/users/{made['user_id']}")
        assert status == 200, again
        assert again["username"] == "Survivor"


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=str)
def test_serves_stops_on_a_signal_and_keeps_its_data(tmp_path: Path, stop: signal.Signals) -> None:
    data_dir, port = tmp_path / "data", free_port()
    body = {"username": "Persisted", "email": "p@x.io", "role": "engineer"}
    with service(data_dir, port) as proc:
        status, made = call(port, "POST", "/api/users", body)
        assert status == 201, made
        user_id = made["user_id"]
        status, bad = call(port, "GET", "/api/users", headers={"X-Big": "a" * 9000})
        assert status == 400
        assert bad["error"]["code"] == "bad_request"
        assert (data_dir / "redis.url").exists()
        (server,) = children(proc.pid)  # the embedded redis-server

        second = subprocess.run(
            [sys.executable, "-m", "app"],
            env={**environment(data_dir, free_port())},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0
        assert f"another redis-server (pid {server})" in second.stderr, second.stderr
        # The refused start leaves the running server's URL file, which the CLI finds it by.
        assert (data_dir / "redis.url").exists()

        proc.send_signal(stop)
        assert proc.wait(timeout=30) == 0
        output = (proc.stdout.read() if proc.stdout else b"").decode()
        assert "embedded redis-server stopped" in output, output
        assert stopped(server)
        assert not (data_dir / "redis.url").exists()

    with service(data_dir, port):
        status, again = call(port, "GET", f"/api/users/{user_id}")
        assert status == 200, again
        assert again["username"] == "Persisted"
