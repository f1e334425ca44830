"""``python -m app --workers 2`` as a real process tree: start-up work done once, one rate
limit shared by both workers, a worker killed is replaced, and SIGTERM to the parent lets
every request in flight finish before the workers and then the embedded Redis stop."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from keyspace.server import free_port

from .test_service_process import children, environment, stopped

pytestmark = pytest.mark.redis

START_SECONDS = 30.0
LIMIT = 20  # admin reads per minute: GCRA allows a burst of LIMIT, then one every 3 s
TOKEN = "workers-test-admin-token-0123456789"


@dataclass
class Service:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def workers(self) -> list[int]:
        """The worker processes (the parent's children but the embedded redis-server)."""
        return [pid for pid in children(self.proc.pid) if b"app.workers" in _cmdline(pid)]

    def redis(self) -> int:
        (pid,) = [pid for pid in children(self.proc.pid) if b"redis-server" in _cmdline(pid)]
        return pid


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def status(port: int, path: str, token: str | None = None) -> int:
    """One request on a connection of its own, so the kernel hands each to a worker anew."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@contextmanager
def service(tmp_path: Path, **extra: str) -> Iterator[Service]:
    port = free_port()
    env = {**environment(tmp_path / "data", port), **extra}
    if "MULTIFRAME_ADMIN_TOKEN" not in extra:
        env.pop("MULTIFRAME_ADMIN_TOKEN")  # the first start creates the admin and prints its key
    log = tmp_path / "service.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "--workers", "2"], env=env, stdout=out, stderr=out
        )
    running = Service(proc, port, log)
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            assert proc.poll() is None, running.output()
            if f"serving on http://127.0.0.1:{port} with 2 workers" in running.output():
                break  # the parent heard from both: each accepts
            assert time.monotonic() < deadline, f"not ready in {START_SECONDS} s"
            time.sleep(0.1)
        yield running
    finally:
        if proc.poll() is None:
            orphans = children(proc.pid)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                for pid in orphans:
                    if not stopped(pid):
                        os.kill(pid, signal.SIGKILL)


def test_two_workers_share_one_rate_limit_and_start_up_runs_once(tmp_path: Path) -> None:
    with service(tmp_path, MULTIFRAME_RATE_ADMIN_READ_PER_MINUTE=str(LIMIT)) as running:
        output = running.output()
        # The first admin is made, and its key printed, by the parent alone.
        assert output.count("First start: created the admin user") == 1, output
        (token,) = re.findall(r"^    (\S+)$", output, flags=re.MULTILINE)
        assert output.count("building the current index version") == 1, output

        requests = 6 * LIMIT
        with ThreadPoolExecutor(max_workers=8) as pool:
            started = time.monotonic()
            statuses = list(
                pool.map(lambda _: status(running.port, "/api/users", token), range(requests))
            )
            elapsed = time.monotonic() - started
        assert set(statuses) <= {200, 429}, statuses
        # One GCRA state in Redis for user admin: a burst of LIMIT, plus one per 3 s elapsed.
        # Per-process limits would have let both workers allow LIMIT each.
        assert LIMIT <= statuses.count(200) <= LIMIT + 1 + int(elapsed / 3), (statuses, elapsed)

        # Both workers answered (each logs a line per request, under its pid, once it sent
        # the response: waited for).
        deadline = time.monotonic() + 5
        while len(served := re.findall(r"\[(\d+)\] GET /api/users ", running.output())) < requests:
            assert time.monotonic() < deadline, running.output()
            time.sleep(0.05)
        assert {int(pid) for pid in served} == set(running.workers()), served


def test_a_killed_worker_is_replaced(tmp_path: Path) -> None:
    with service(tmp_path, MULTIFRAME_ADMIN_TOKEN=TOKEN) as run:
        first, second = run.workers()
        os.kill(first, signal.SIGKILL)
        # New connections meanwhile are not refused nor reset: those the kernel puts on the
        # dead worker's socket (the parent keeps it open) wait for its replacement.
        with ThreadPoolExecutor(max_workers=10) as pool:
            assert list(pool.map(lambda _: status(run.port, "/ready"), range(10))) == [200] * 10
        deadline = time.monotonic() + 10
        while " serving again (pid " not in run.output():  # its replacement accepts
            assert time.monotonic() < deadline, run.output()
            time.sleep(0.1)
        assert len(run.workers()) == 2 and first not in run.workers()
        assert second in run.workers()
        assert f"(pid {first}) exited with signal 9" in run.output()
        for _ in range(20):  # served by both, the new one included
            assert status(run.port, "/ready") == 200
        assert run.proc.poll() is None


def _holder(port: int, client: socket.socket, pids: list[int]) -> int | None:
    """The worker holding the server side of ``client``'s connection (Linux /proc)."""
    ours = client.getsockname()[1]
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == port and int(remote.split(":")[1], 16) == ours:
            inode = fields[9]
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
    return None


# Holds the Redis server busy for ARGV[1] seconds of CPU (a script runs alone; TIME is frozen
# inside one), so every request reaching a worker meanwhile is in flight, awaiting Redis.
BUSY = "local s = os.clock() while os.clock() - s < tonumber(ARGV[1]) do end"
BUSY_SECONDS = 2.0


def _request(sock: socket.socket, path: str) -> None:
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode()
    )


def _reply(sock: socket.socket) -> int:
    """The status of the response to the request last sent on ``sock``, read whole."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    response.read()
    return response.status


def test_sigterm_finishes_requests_in_flight_then_stops_everything(tmp_path: Path) -> None:
    with service(tmp_path, MULTIFRAME_ADMIN_TOKEN=TOKEN) as running:
        workers, server = running.workers(), running.redis()
        # Connections until each worker holds some (the kernel picks the accepting one).
        conns: list[socket.socket] = []
        holders: set[int] = set()
        while holders != set(workers) or len(conns) < 6:
            assert len(conns) < 40, "the connections all went to one worker"
            conns.append(socket.create_connection(("127.0.0.1", running.port), timeout=20))
            _request(conns[-1], "/ready")  # accepted and answered: the holder is known
            assert _reply(conns[-1]) == 200
            holder = _holder(running.port, conns[-1], workers)
            assert holder is not None
            holders.add(holder)

        url = (tmp_path / "data" / "redis.url").read_text().strip()
        with redis.Redis.from_url(url) as busy, ThreadPoolExecutor(1) as pool:
            stalled = pool.submit(busy.eval, BUSY, 0, str(BUSY_SECONDS))
            time.sleep(0.2)
            for conn in conns:
                _request(conn, "/api/users")
            time.sleep(0.3)
            stopping = time.monotonic()
            running.proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            assert not stalled.done()  # the requests are still waiting for Redis
            with pytest.raises(ConnectionRefusedError):  # no new connection is accepted
                status(running.port, "/ready")
            replies = [_reply(conn) for conn in conns]
            stalled.result()
        assert replies == [200] * len(conns), (replies, running.output())

        assert running.proc.wait(timeout=20) == 0, running.output()
        assert time.monotonic() - stopping < 15
        assert all(stopped(pid) for pid in [*workers, server])
        output = running.output()
        assert output.count("embedded redis-server stopped") == 1, output
        assert output.index("workers stopped") < output.index("embedded redis-server stopped")


def _statuses(port: int, count: int, timeout: float) -> list[int | str]:
    """``count`` GET /health on connections of their own, opened at once: each one's status,
    or the name of the error that took its place (no answer, a reset)."""

    def one(_: int) -> int | str:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request("GET", "/health")
            response = conn.getresponse()
            response.read()
            return response.status
        except OSError as exc:
            return type(exc).__name__
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def test_a_worker_restarted_while_redis_hangs_answers_its_connections(tmp_path: Path) -> None:
    with service(tmp_path, MULTIFRAME_ADMIN_TOKEN=TOKEN) as run:
        server, (victim, _) = run.redis(), run.workers()
        os.kill(server, signal.SIGSTOP)  # hung, as a primary behind a partition
        try:
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while " started (pid " not in run.output().partition(f"(pid {victim}) exited")[2]:
                assert time.monotonic() < deadline, run.output()
                time.sleep(0.05)
            time.sleep(1.0)  # the replacement is up, and cannot read Redis
            started = time.monotonic()
            # Half of them, about, on the replacement's socket: answered, not held.
            assert _statuses(run.port, 16, timeout=8) == [503] * 16
            assert time.monotonic() - started < 5
        finally:
            os.kill(server, signal.SIGCONT)
        deadline = time.monotonic() + 20
        while " serving again (pid " not in run.output():  # attached once Redis answers
            assert time.monotonic() < deadline, run.output()
            time.sleep(0.1)
        assert _statuses(run.port, 8, timeout=10) == [200] * 8


def test_a_stop_while_a_worker_starts_answers_its_queued_connections(tmp_path: Path) -> None:
    with service(tmp_path, MULTIFRAME_ADMIN_TOKEN=TOKEN) as run:
        victim, _ = run.workers()
        os.kill(victim, signal.SIGKILL)
        time.sleep(0.1)  # noticed: the parent waits 0.5 s before starting a replacement
        conns = [socket.create_connection(("127.0.0.1", run.port), timeout=20) for _ in range(20)]
        for conn in conns:
            _request(conn, "/ready")  # some queue on the dead worker's socket meanwhile
        deadline = time.monotonic() + 10
        while " started (pid " not in run.output().partition(f"(pid {victim}) exited")[2]:
            assert time.monotonic() < deadline, run.output()
            time.sleep(0.01)
        run.proc.send_signal(signal.SIGTERM)  # while the replacement is still starting
        replies: list[int | str] = []
        for conn in conns:
            try:
                replies.append(_reply(conn))
            except OSError as exc:
                replies.append(type(exc).__name__)
            finally:
                conn.close()
        assert replies == [200] * len(conns), (replies, run.output())
        assert run.proc.wait(timeout=30) == 0, run.output()
