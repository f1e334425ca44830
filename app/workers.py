"""``python -m app --workers N``: N API processes serving one port under one parent.

The parent binds the listening sockets, supervises the embedded Redis (app/supervise.py),
does start-up's work on Redis once for all (the first admin and its printed API key, index
builds, setting Redis up again after it lost that: app/startup.py), then starts N workers
(``python -m app.workers``). Each worker is a fresh interpreter serving the sockets it
inherited, with its own event loop and Redis pool, and only follows the parent's index
builds. It serves at once, before it has read Redis (503 until then: app/startup.py
``attach``), since its socket queues connections from the start. Rate limits, tokens,
maintenance and pauses live in Redis, so they hold across workers as across any number of
API processes.

Sockets: the parent binds one SO_REUSEPORT socket per worker (per address) and keeps them
all open, handing each worker its own. Measured (bench section 8, 32 keep-alive connections
opened at once): with one socket shared by every worker, the worker whose loop woke first
accepted most of a burst (32/0, 1/31, 28/4 in three runs), so more workers could serve
no more; with SO_REUSEPORT the kernel spreads connections by their addresses (13/19, 14/18,
22/10). The parent binding them rather than each worker (aiohttp's
``reuse_port=True``): a port in use fails the start once, in the parent, and a plain bind
tried first refuses a port another SO_REUSEPORT group listens on, which joining it would
silently share; a socket outlives its worker, so connections queued on it when the worker
dies wait for the replacement instead of being reset, and the replacement serves the same
socket.

A worker that exits while the service is not stopping is restarted, backing off like the
Redis supervisor (0.5 s doubling to 8 s); after 5 exits in a row, each within 30 s of its
start, the parent stops the service gracefully and exits non-zero for an outer supervisor.
SIGTERM, SIGINT or SIGHUP to the parent stops every worker with SIGTERM (each finishes its
requests in flight, up to ``shutdown_timeout``), then the embedded Redis once. Workers run in
their own process group, so a terminal's Ctrl-C reaches only the parent, which orders the
stop; a worker starts with the stop signals blocked and takes one that came meanwhile once
it serves, so it answers what its socket queued rather than dying with it (app/server.py).
A worker also stops when its parent is gone, SIGKILL included (the lifeline: its stdin).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
from typing import Any

import uvloop
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from keyspace import Keyspace, System, connect

from . import metrics_listener
from .config import Settings
from .main import create_app
from .metrics import MULTIPROC_ENV, Exposition, RedisState, Summed, auth_failures_counter
from .server import STOP_SIGNALS, serve
from .startup import IndexWork, keep_prepared, prepare_at_start
from .state import ATTACHED
from .supervise import Supervisor
from .tracing import configure_logging

log = logging.getLogger("multiframe.workers")

LOG_FORMAT = "%(asctime)s %(name)s [%(process)d] %(message)s"  # which process said it
POLL_SECONDS = 0.1
FIRST_DELAY_SECONDS, MAX_DELAY_SECONDS = 0.5, 8.0
MAX_FAILURES = 5
STABLE_SECONDS = 30.0  # a worker up this long was healthy: its next exit starts afresh
STOP_GRACE_SECONDS = 5.0  # past shutdown_timeout, for a worker's cleanup after its requests
BACKLOG = 128  # as aiohttp's TCPSite
PARENT_POOL = 4  # the parent's Redis connections: start-up work and index builds only
_LENGTH = struct.Struct("!I")


class Restarts:
    """When to start a worker again after it exited on its own."""

    def __init__(self) -> None:
        self.failures = 0

    def delay(self, uptime: float) -> float | None:
        """Seconds to wait before starting again a worker that ran ``uptime`` seconds; None:
        it failed :data:`MAX_FAILURES` times in a row, give up."""
        self.failures = 1 if uptime >= STABLE_SECONDS else self.failures + 1
        if self.failures >= MAX_FAILURES:
            return None
        return min(FIRST_DELAY_SECONDS * 2.0 ** (self.failures - 1), MAX_DELAY_SECONDS)


def _socket(family: int, reuse_port: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    # As aiohttp's TCPSite: connections of a previous run in TIME_WAIT do not block the port.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    return sock


def listen(host: str, port: int, count: int) -> list[list[socket.socket]]:
    """``count`` sets of listening sockets, one per worker, on every address ``host``
    resolves to: each address's sockets form one SO_REUSEPORT group on ``port``. A port
    anyone listens on already (another SO_REUSEPORT group included) is refused: a plain bind
    is tried first, which no listening socket allows."""
    sets: list[list[socket.socket]] = [[] for _ in range(count)]
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        for family, address in dict.fromkeys((info[0], info[4]) for info in infos):
            with _socket(family, reuse_port=False) as probe:
                probe.bind(address)
                bound = probe.getsockname()  # port 0: the one the system chose, for all
            for sockets in sets:
                sock = _socket(family, reuse_port=True)
                sockets.append(sock)
                sock.bind(bound)
                sock.listen(BACKLOG)
    except OSError as exc:
        for sock in (sock for sockets in sets for sock in sockets):
            sock.close()
        raise SystemExit(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sets


def _names(socks: list[list[socket.socket]]) -> list[tuple[Any, ...]]:
    return [sock.getsockname() for sock in socks[0]] if socks else []


def _status(code: int) -> str:
    return f"signal {-code}" if code < 0 else f"status {code}"


def encode(settings: Settings) -> bytes:
    """``settings`` as a worker reads them from its stdin (:func:`receive`)."""
    payload = pickle.dumps(settings)
    return _LENGTH.pack(len(payload)) + payload


class Workers:
    """``len(socks)`` worker processes, each serving its own set of ``socks`` (see
    :func:`listen`), kept running until a stop."""

    command: tuple[str, ...] = (sys.executable, "-m", "app.workers")  # then READY FD...

    def __init__(
        self,
        settings: Settings,
        socks: list[list[socket.socket]],
        metrics_dir: str | None = None,
    ) -> None:
        self.settings = settings
        # Where the workers write their metrics (app/metrics.py), None: nowhere.
        self.metrics_dir = metrics_dir
        self.socks = socks
        self.count = len(socks)
        self.procs: dict[int, subprocess.Popen[bytes]] = {}  # slot -> its current process
        self.gave_up = False
        self.serving: set[int] = set()  # slots whose current process said it accepts
        self.announced = False
        self._payload = encode(settings)
        self._urls = [f"http://{host}:{port}" for host, port, *_ in _names(socks)]
        self._ready_pipes: dict[int, int] = {}  # read end -> slot

    def _spawn(self, slot: int) -> subprocess.Popen[bytes]:
        fds = [sock.fileno() for sock in self.socks[slot]]
        # The worker writes a byte on this pipe once it accepts (EOF: it died before).
        ready, said = os.pipe()
        # prometheus-client reads the directory from the environment as it is imported.
        env = None if self.metrics_dir is None else {**os.environ, MULTIPROC_ENV: self.metrics_dir}
        # The worker starts with the stop signals blocked (a signal mask survives exec) and
        # unblocks them once it accepts (app/server.py): a SIGTERM meanwhile waits, then
        # stops it gracefully, instead of killing it with connections queued on its socket
        # (the kernel resets those when the socket closes).
        masked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            proc = subprocess.Popen(
                [*self.command, str(said), *map(str, fds)],
                stdin=subprocess.PIPE,
                pass_fds=[said, *fds],
                process_group=0,
                env=env,
            )
        except BaseException:
            os.close(ready)
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, masked)
            os.close(said)
        self.procs[slot] = proc
        self._ready_pipes[ready] = slot
        asyncio.get_running_loop().add_reader(ready, self._ready, ready, proc)
        assert proc.stdin is not None
        try:
            proc.stdin.write(self._payload)
            proc.stdin.flush()  # and kept open: the worker's lifeline
        except BrokenPipeError:
            pass  # it died at once: noticed as an exit
        log.info("worker %d started (pid %d)", slot, proc.pid)
        return proc

    def _ready(self, pipe: int, proc: subprocess.Popen[bytes]) -> None:
        slot = self._ready_pipes.pop(pipe)
        asyncio.get_running_loop().remove_reader(pipe)
        try:
            said = os.read(pipe, 1)
        except OSError:
            said = b""
        os.close(pipe)
        if not said or self.procs.get(slot) is not proc:
            return
        self.serving.add(slot)
        if self.announced:
            log.warning("worker %d serving again (pid %d)", slot, proc.pid)
        elif len(self.serving) == self.count:
            self.announced = True
            for url in self._urls:
                log.info("serving on %s with %d workers", url, self.count)

    def _close_ready_pipes(self) -> None:
        loop = asyncio.get_running_loop()
        for pipe in list(self._ready_pipes):
            loop.remove_reader(pipe)
            os.close(pipe)
        self._ready_pipes.clear()

    async def _keep(self, slot: int, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        restarts = Restarts()
        while not stop.is_set():
            started = loop.time()
            proc = self._spawn(slot)
            if not await _exited(proc, stop):
                return  # stopping: run() stops it
            self.serving.discard(slot)
            _release(proc)
            self._dead(proc)
            uptime = loop.time() - started
            delay = restarts.delay(uptime)
            if delay is None:
                log.critical(
                    "worker %d exited %d times in a row, each within %.0fs of its start; "
                    "stopping the service so an outer supervisor can take over",
                    slot,
                    restarts.failures,
                    STABLE_SECONDS,
                )
                self.gave_up = True
                stop.set()
                return
            log.error(
                "worker %d (pid %d) exited with %s after %.1fs; starting it again in %.1fs",
                slot,
                proc.pid,
                _status(proc.returncode),
                uptime,
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def run(self, stop: asyncio.Event) -> bool:
        """Keep the workers running until ``stop`` is set, then stop them all gracefully.
        False when one did not stop in time and was killed."""
        keepers = [asyncio.create_task(self._keep(slot, stop)) for slot in range(self.count)]
        try:
            await stop.wait()
        finally:
            stop.set()
            await asyncio.gather(*keepers, return_exceptions=True)
            # The parent's copies closed, the port refuses new connections once every worker
            # has closed its own (their graceful stop starts with that), as with one process.
            for sock in (sock for sockets in self.socks for sock in sockets):
                sock.close()
            clean = await self._stop_all()
        return clean

    async def _stop_all(self) -> bool:
        loop = asyncio.get_running_loop()
        live = [proc for proc in self.procs.values() if proc.poll() is None]
        for proc in live:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = loop.time() + self.settings.shutdown_timeout + STOP_GRACE_SECONDS
        while True:
            if all(proc.poll() is not None for proc in live) or loop.time() > deadline:
                break
            await asyncio.sleep(POLL_SECONDS)
        clean = True
        for proc in live:
            if proc.poll() is None:
                log.error("worker pid %d did not stop in time; killing it", proc.pid)
                proc.kill()
                proc.wait()
                clean = False
            elif proc.returncode not in (0, -signal.SIGTERM):  # the latter: still starting
                log.warning("worker pid %d stopped with %s", proc.pid, _status(proc.returncode))
        for proc in self.procs.values():
            _release(proc)
            self._dead(proc)
        self._close_ready_pipes()
        return clean

    def _dead(self, proc: subprocess.Popen[bytes]) -> None:
        """Forget an exited worker's live gauges (requests in progress); its counters stay,
        so that totals never go down when a worker is replaced."""
        if self.metrics_dir is not None:
            mark_process_dead(proc.pid, self.metrics_dir)  # type: ignore[no-untyped-call]


async def _exited(proc: subprocess.Popen[bytes], stop: asyncio.Event) -> bool:
    """Wait until ``proc`` exits (True) or ``stop`` is set (False)."""
    while True:
        if stop.is_set():
            return False
        if proc.poll() is not None:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), POLL_SECONDS)


def _release(proc: subprocess.Popen[bytes]) -> None:
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()


async def _prepared(
    ks: Keyspace, system: System, settings: Settings, work: IndexWork, stop: asyncio.Event
) -> bool:
    """Start-up's work on Redis, once for every worker; False when a signal came first."""
    work_done = asyncio.create_task(prepare_at_start(ks, system, settings, work))
    signalled = asyncio.create_task(stop.wait())
    await asyncio.wait([work_done, signalled], return_when=asyncio.FIRST_COMPLETED)
    signalled.cancel()
    if not work_done.done():
        log.info("stopping: start-up cancelled before serving")
        work_done.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work_done
        return False
    if work_done.result().degraded:
        log.warning("RediSearch not available: lists use the slower scan path (degraded mode)")
    return True


async def serve_workers(
    settings: Settings, system: System, supervisor: Supervisor | None
) -> str | None:
    """The parent of ``settings.workers`` workers, until SIGINT, SIGTERM or SIGHUP. Returns
    why the service stopped on a failure, None after a requested stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    try:
        create_app(settings)  # a setting the served system cannot take: one line, not N
    except ValueError as exc:
        raise SystemExit(f"cannot start: {exc}") from None
    watch = asyncio.create_task(supervisor.run()) if supervisor is not None else None
    client = connect(
        settings.redis_url or "", max_connections=PARENT_POOL, timeout=settings.redis_timeout
    )
    ks = Keyspace(client, system.schema)
    work = IndexWork(ks)
    tasks = [t for t in (watch,) if t is not None]
    # This run's metrics directory: each worker's counts, added up by a scrape. A new one per
    # run, so no count of an earlier run's workers (same pids after a reboot) is added in.
    metrics_dir = tempfile.mkdtemp(prefix="multiframe-metrics-")
    listener: web.AppRunner | None = None
    try:
        if not await _prepared(ks, system, settings, work, stop):
            return None
        tasks.append(asyncio.create_task(keep_prepared(ks, system, settings, work)))
        if settings.metrics_listen is not None:  # the parent serves it, on its own pool
            every_worker = MultiProcessCollector(None, path=metrics_dir)  # type: ignore[no-untyped-call]
            # The listener's own 401s, counted here and added to the workers' in a scrape.
            own = CollectorRegistry()
            failures = auth_failures_counter(own)
            state = RedisState(lambda: ks, system, settings.redis_timeout)
            exposition = Exposition(Summed((every_worker, own)), state, settings.metrics_token)
            listener = await metrics_listener.start(exposition, settings, failures)
        socks = listen(settings.host, settings.port, settings.workers)
        try:
            pool = Workers(settings, socks, metrics_dir)
            clean = await pool.run(stop)
        finally:
            for sock in (sock for sockets in socks for sock in sockets):
                sock.close()
        log.info("workers stopped")
        if pool.gave_up:
            return "a worker kept failing"
        return None if clean else "a worker had to be killed"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if listener is not None:
            await listener.cleanup()
        await work.stop()
        await client.aclose()
        shutil.rmtree(metrics_dir, ignore_errors=True)


# The worker ------------------------------------------------------------------------------


def _read_exactly(fd: int, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise SystemExit("the parent went away before handing over the settings")
        data += chunk
    return data


def receive(fd: int) -> Settings:
    """The settings :func:`encode` made, read from ``fd``."""
    (size,) = _LENGTH.unpack(_read_exactly(fd, _LENGTH.size))
    settings = pickle.loads(_read_exactly(fd, size))  # from our own parent, over a pipe
    if not isinstance(settings, Settings):
        raise SystemExit("the parent handed over something other than the settings")
    return settings


def worker(argv: list[str]) -> None:
    """A worker: ``python -m app.workers READY FD...``: serve the inherited listening sockets
    ``FD...`` with the settings read from stdin, until SIGTERM or stdin's end; one byte on
    the pipe ``READY`` tells the parent it accepts and has read what it needs from Redis
    (it answers 503 until then)."""
    settings = receive(sys.stdin.fileno())
    level = os.environ.get("MULTIFRAME_LOG_LEVEL", "INFO")
    configure_logging(level, settings.log_format, LOG_FORMAT)
    ready, *fds = (int(arg) for arg in argv)
    socks = [socket.socket(fileno=fd) for fd in fds]
    app: web.Application = create_app(settings, worker=True)
    telling: list[asyncio.Task[None]] = []  # referenced: the loop keeps only weak ones

    async def tell_parent() -> None:
        await app[ATTACHED].wait()
        with contextlib.suppress(OSError):  # a parent gone meanwhile: the lifeline tells
            os.write(ready, b"1")
        os.close(ready)

    def serving() -> None:
        telling.append(asyncio.get_running_loop().create_task(tell_parent()))

    uvloop.run(serve(app, settings, socks=socks, lifeline=sys.stdin.fileno(), serving=serving))


if __name__ == "__main__":
    worker(sys.argv[1:])
