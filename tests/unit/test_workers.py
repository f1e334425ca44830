"""``--workers``' parent without the service: the setting's bounds, the listening sockets, the
restart rule, giving up on a worker that keeps exiting, a graceful stop of every worker (and
the kill of one that ignores it), and a worker's lifeline to its parent."""

from __future__ import annotations

import ast
import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import pytest

from app import server, workers
from app.__main__ import _arguments
from app.config import Settings
from keyspace.server import free_port


@pytest.mark.parametrize("raw", ["0", "65", "-2"])
def test_a_worker_count_outside_1_to_64_stops_the_start(raw: str) -> None:
    with pytest.raises(SystemExit, match=f"MULTIFRAME_WORKERS must be from 1 to 64 .* got {raw}"):
        Settings.from_env({"MULTIFRAME_WORKERS": raw})


def test_worker_count_from_the_environment() -> None:
    assert Settings.from_env({}).workers == 1
    assert Settings.from_env({"MULTIFRAME_WORKERS": "64"}).workers == 64
    with pytest.raises(SystemExit, match="MULTIFRAME_WORKERS must be an integer, got 'two'"):
        Settings.from_env({"MULTIFRAME_WORKERS": "two"})


def test_restarts_back_off_and_give_up_on_a_crash_loop() -> None:
    rule = workers.Restarts()
    assert [rule.delay(1.0) for _ in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert rule.delay(1.0) is None  # the fifth exit in a row, each soon after its start
    again = workers.Restarts()
    for _ in range(10):  # exits after a healthy run each start afresh
        assert again.delay(workers.STABLE_SECONDS) == 0.5


def test_listen_gives_each_worker_a_socket_of_one_group_and_refuses_a_port_in_use() -> None:
    port = free_port()
    sets = workers.listen("127.0.0.1", port, 2)
    try:
        assert [[sock.getsockname() for sock in socks] for socks in sets] == [
            [("127.0.0.1", port)]
        ] * 2
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass  # listening: the kernel completes the handshake before any accept
        # Neither a second --workers service nor a one-process one can share the port.
        with pytest.raises(SystemExit, match=f"cannot listen on 127.0.0.1:{port}: .*in use"):
            workers.listen("127.0.0.1", port, 2)
        with socket.socket() as plain:
            plain.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with pytest.raises(OSError, match="in use"):
                plain.bind(("127.0.0.1", port))
    finally:
        for sock in (sock for socks in sets for sock in socks):
            sock.close()


def test_listen_on_port_0_puts_every_worker_on_the_one_port_chosen() -> None:
    sets = workers.listen("127.0.0.1", 0, 3)
    try:
        ports = {sock.getsockname()[1] for socks in sets for sock in socks}
        assert len(ports) == 1 and ports != {0}
    finally:
        for sock in (sock for socks in sets for sock in socks):
            sock.close()


# A worker's stand-in leaves a file named by its pid in $UP_DIR once it runs.
STARTED = (
    "import os, sys\nopen(os.path.join(os.environ['UP_DIR'], str(os.getpid())), 'w').close()\n"
)


def _pool(monkeypatch: pytest.MonkeyPatch, script: str, count: int = 2) -> workers.Workers:
    """Workers whose processes run ``script`` instead of the API (the settings on stdin)."""
    monkeypatch.setattr(workers, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(workers, "FIRST_DELAY_SECONDS", 0.0)
    monkeypatch.setattr(workers, "STOP_GRACE_SECONDS", 0.0)
    monkeypatch.setattr(workers.Workers, "command", (sys.executable, "-c", script))
    return workers.Workers(Settings(shutdown_timeout=1.0), [[] for _ in range(count)])


async def test_a_worker_that_keeps_exiting_stops_the_service(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("UP_DIR", str(tmp_path))
    pool = _pool(monkeypatch, STARTED + "sys.exit(3)\n", count=1)
    stop = asyncio.Event()
    clean = await asyncio.wait_for(pool.run(stop), 30)
    assert pool.gave_up and stop.is_set() and clean
    assert len(os.listdir(tmp_path)) == workers.MAX_FAILURES  # started that many times
    assert pool.procs[0].returncode == 3


WAITS_FOR_SIGTERM = (
    "import signal, time\nsignal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
    + STARTED
    # Serving, as app.server says it: the stop signals it started with blocked are taken now.
    + "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})\n"
    + "os.write(int(sys.argv[1]), b'1')\n"  # serving, as app.workers says it
    + "time.sleep(60)\n"
)


# Records the signals it started with blocked, serves only after 0.5 s, then as above.
RECORDS_ITS_MASK = (
    "import signal, time\nsignal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
    + STARTED
    + "blocked = sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, ()))\n"
    + "open(os.path.join(os.environ['UP_DIR'], 'mask'), 'w').write(repr(blocked))\n"
    + "time.sleep(0.5)\n"
    + "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})\n"
    + "os.write(int(sys.argv[1]), b'1')\n"
    + "time.sleep(60)\n"
)


async def test_a_worker_starts_with_the_stop_signals_blocked_and_takes_them_once_serving(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("UP_DIR", str(tmp_path))
    pool = _pool(monkeypatch, RECORDS_ITS_MASK, count=1)
    stop = asyncio.Event()
    running = asyncio.create_task(pool.run(stop))
    await _until_up(tmp_path, 2)  # its pid file and its mask
    stop.set()  # the SIGTERM comes before it serves: it waits, and does not kill it
    assert await asyncio.wait_for(running, 10)
    assert pool.procs[0].returncode == 0  # its handler ran (sys.exit(0)): not killed by it
    blocked = set(ast.literal_eval((tmp_path / "mask").read_text()))
    assert {int(signum) for signum in server.STOP_SIGNALS} <= blocked
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, ())  # ours as was


async def _until_up(up: Path, count: int) -> None:
    """Until ``count`` workers have their SIGTERM handler (each leaves a file in ``up``)."""
    for _ in range(1000):
        if len(os.listdir(up)) == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} workers did not start in 10 s")


async def test_a_stop_sigterms_every_worker_and_waits_for_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("UP_DIR", str(tmp_path))
    pool = _pool(monkeypatch, WAITS_FOR_SIGTERM, count=3)
    stop = asyncio.Event()
    running = asyncio.create_task(pool.run(stop))
    await _until_up(tmp_path, 3)
    for _ in range(100):
        if pool.announced:
            break
        await asyncio.sleep(0.01)
    assert pool.serving == {0, 1, 2} and pool.announced
    stop.set()
    assert await asyncio.wait_for(running, 10)  # clean: every worker stopped by itself
    assert [proc.returncode for proc in pool.procs.values()] == [0, 0, 0]
    assert not pool.gave_up


async def test_a_worker_ignoring_sigterm_is_killed_after_the_shutdown_timeout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("UP_DIR", str(tmp_path))
    ignores = WAITS_FOR_SIGTERM.replace("lambda *_: sys.exit(0)", "signal.SIG_IGN")
    pool = _pool(monkeypatch, ignores, count=1)
    stop = asyncio.Event()
    running = asyncio.create_task(pool.run(stop))
    await _until_up(tmp_path, 1)
    stop.set()
    assert not await asyncio.wait_for(running, 10)  # not clean: it had to be killed
    assert pool.procs[0].returncode == -9


async def test_a_worker_stops_when_its_parent_is_gone() -> None:
    read, write = os.pipe()
    stop = asyncio.Event()
    try:
        server._watch_lifeline(read, stop)
        os.write(write, b"settings")  # data is not the end
        await asyncio.sleep(0.05)
        assert not stop.is_set()
        os.close(write)  # what the parent's exit, however it dies, does to the pipe
        await asyncio.wait_for(stop.wait(), 2)
    finally:
        os.close(read)


def test_the_settings_reach_the_worker_whole(tmp_path: Path) -> None:
    sent = Settings(port=1234, workers=3, ttls={"session": 5}, data_dir=tmp_path)
    read, write = os.pipe()
    try:
        payload = workers.encode(sent)
        os.write(write, payload)
        assert workers.receive(read) == sent
    finally:
        os.close(read)
        os.close(write)


def test_workers_on_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["multiframe", "--workers", "3"])
    assert _arguments(Settings(workers=5)).workers == 3
    monkeypatch.setattr(sys, "argv", ["multiframe"])
    assert _arguments(Settings(workers=5)).workers == 5  # MULTIFRAME_WORKERS, then
    monkeypatch.setattr(sys, "argv", ["multiframe", "--workers", "65"])
    with pytest.raises(SystemExit, match="--workers must be from 1 to 64 API processes, got 65"):
        _arguments(Settings())
