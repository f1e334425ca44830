"""9. API workers: HTTP read and create throughput of ``python -m app --workers N``, N = 1, 2.

Both services run as real process trees (``python -m app``, ``REDIS_URL`` = the benchmark
server) at the same time, so their runs interleave round by round:

* ``GET /api/drivers/{id}`` as a designer the limiter counts (limits too high to refuse),
  as section 3's HTTP read;
* ``POST /api/drivers`` as the admin, as section 2's HTTP create.

The load generator is this process (one event loop, :data:`CONCURRENCY` keep-alive
connections), so on a small machine it competes with the workers for the cores: the
ratio shows what a second process adds here, not on a machine with cores to spare. How
the kernel spread the connections over the workers (one SO_REUSEPORT socket each) is
counted from ``/proc`` and shown beside the figures. A service counts as started once every
worker has been seen accepting a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from keyspace.server import free_port

from .common import Context, Report, Result
from .http_load import Load, budget, closed_loop, http_call, interleaved, result, session
from .references import TOKEN, driver_body, fresh, mint_designer, seed

SECTION = "9. API workers"
CONCURRENCY = 32
COUNTS = (1, 2)
USERS, DRIVERS = 8, 1000
UNLIMITED = 10**9
START_SECONDS = 60.0


@dataclass
class Service:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def workers(self) -> list[int]:
        """The processes serving: the parent's children running ``app.workers``, or the
        parent itself for one worker."""
        found = [pid for pid in _children(self.proc.pid) if b"app.workers" in _cmdline(pid)]
        return found or [self.proc.pid]

    def connections(self) -> dict[int, int]:
        """Worker pid -> established connections to the port it holds (Linux /proc)."""
        inodes = _established(self.port)
        counts = {}
        for pid in self.workers():
            held = 0
            with contextlib.suppress(OSError):
                for fd in os.scandir(f"/proc/{pid}/fd"):
                    with contextlib.suppress(OSError):
                        held += os.readlink(fd.path) in inodes
            counts[pid] = held
        return counts


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rpartition(")")[2].split()[1]) == pid:
                out.append(int(stat.parent.name))
    return out


def _established(port: int) -> set[str]:
    """``socket:[inode]`` of the server side of every established connection to ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    found.add(f"socket:[{fields[9]}]")
    return found


def _launch(url: str, workers: int, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "REDIS_URL": url,
        "MULTIFRAME_PORT": str(port),
        "MULTIFRAME_ADMIN_TOKEN": TOKEN,
        "MULTIFRAME_RATE_READ_PER_MINUTE": str(UNLIMITED),
        "MULTIFRAME_RATE_WRITE_PER_MINUTE": str(UNLIMITED),
        "MULTIFRAME_LOG_LEVEL": "WARNING",  # as the in-process servers of sections 2 and 3
    }
    return subprocess.Popen(
        [sys.executable, "-m", "app", "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _start(url: str, workers: int) -> Service:
    port = free_port()
    proc = _launch(url, workers, port)
    service = Service(proc, port)
    deadline = asyncio.get_running_loop().time() + START_SECONDS
    accepted: set[int] = set()  # the workers seen holding a connection
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"python -m app --workers {workers} exited: {proc.returncode}")
        with contextlib.suppress(OSError):
            accepted |= await _accepting(service)
            if len(service.workers()) == workers and accepted >= set(service.workers()):
                return service
        if asyncio.get_running_loop().time() > deadline:
            _stop(service)
            raise RuntimeError(f"python -m app --workers {workers} not ready")
        await asyncio.sleep(0.05)


async def _accepting(service: Service) -> set[int]:
    """The worker that answers ``GET /ready`` on a new connection, if 200 (the kernel gives a
    new connection to an idle worker: every worker has been seen once all accept)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
    try:
        writer.write(b"GET /ready HTTP/1.1\r\nHost: bench\r\n\r\n")
        if not (await reader.readline()).startswith(b"HTTP/1.1 200"):
            return set()
        return {pid for pid, count in service.connections().items() if count}
    finally:
        writer.close()
        await writer.wait_closed()


def _stop(service: Service) -> None:
    if service.proc.poll() is None:
        service.proc.send_signal(signal.SIGTERM)
        try:
            service.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.proc.kill()
            service.proc.wait()


@contextlib.asynccontextmanager
async def _services(url: str) -> AsyncIterator[list[Service]]:
    started: list[Service] = []
    try:
        for count in COUNTS:
            started.append(await _start(url, count))
        yield started
    finally:
        for service in started:
            _stop(service)


def _by_id(collection: str, ids: list[str]) -> Callable[[int], str]:
    """The URL of request ``n``: the collection's, or a document's of ``ids`` in turn."""
    if not ids:
        return lambda n: collection
    return lambda n: f"{collection}/{ids[n % len(ids)]}"


def _name(kind: str, workers: int) -> str:
    plural = "s" if workers > 1 else ""
    return f"{kind}, {workers} worker{plural}, {CONCURRENCY} concurrent"


async def run(ctx: Context, report: Report) -> None:
    plan = budget(ctx)
    await fresh(ctx.client, ctx.keyspace)
    try:
        owners, drivers = await seed(ctx.keyspace, USERS, DRIVERS)
        bodies = [orjson.dumps(driver_body(n, owners[n % len(owners)])) for n in range(64)]
        admin = {"Authorization": f"Bearer {TOKEN}"}
        async with session(CONCURRENCY) as client, _services(ctx.url) as services:
            designer = {"Authorization": f"Bearer {await mint_designer(client, services[0].url)}"}

            def loop(call: Callable[[int], Awaitable[object]]) -> Callable[[], Awaitable[Load]]:
                return lambda: closed_loop(
                    call, concurrency=CONCURRENCY, requests=plan.requests, max_seconds=plan.seconds
                )

            variants: dict[str, Callable[[], Awaitable[Load]]] = {}
            for count, service in zip(COUNTS, services, strict=True):
                read = http_call(
                    client,
                    "GET",
                    _by_id(f"{service.url}/api/drivers", drivers),
                    expect=200,
                    headers=designer,
                )
                create = http_call(
                    client,
                    "POST",
                    _by_id(f"{service.url}/api/drivers", []),
                    expect=201,
                    body=lambda n: bodies[n % len(bodies)],
                    headers=admin,
                )
                variants[_name("HTTP read: GET /api/drivers/{id}", count)] = loop(read)
                variants[_name("HTTP create: POST /api/drivers", count)] = loop(create)
            loads = await interleaved(variants, plan.rounds)
            spread = list(services[-1].connections().values())
    finally:
        await fresh(ctx.client, ctx.keyspace)
    found = {name: result(SECTION, name, loads[name], unit="req/s") for name in variants}
    report.results.extend(found.values())
    for kind in ("HTTP read: GET /api/drivers/{id}", "HTTP create: POST /api/drivers"):
        one, two = found[_name(kind, COUNTS[0])], found[_name(kind, COUNTS[1])]
        report.results.append(
            Result(
                SECTION,
                f"{kind.split(':')[0]}: 2 workers / 1 worker",
                two.value / one.value if one.value else 0.0,
                "x",
                detail=f"{two.value:,.0f} / {one.value:,.0f} req/s; {os.cpu_count()} cores "
                f"shared with the load generator; the 2 workers held "
                f"{' + '.join(map(str, spread))} of its {CONCURRENCY} connections",
            )
        )
