"""The HA suite: a local primary, replica and three sentinels (keyspace.ha, as
``multiframe-admin ha up`` starts them) and the API as ``python -m app`` serves it with
``REDIS_URL=redis+sentinel://...``. Every process runs on 127.0.0.1 and is stopped by its pid."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from keyspace import ha
from keyspace.acl import AclUsers
from keyspace.server import free_port

TOKEN = "ha-suite-admin-token-4f2a9c1e7b3d"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
START_S = 60.0


@pytest.fixture(scope="session")
def ha_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ha.Cluster]:
    """One primary, replica and three sentinels for the tests that keep them (the failover
    test starts its own); everything stopped by pid afterwards, whatever happened."""
    directory = tmp_path_factory.mktemp("ha")
    cluster = ha.up(directory, ha.Ports.free(), acl=AclUsers())
    try:
        yield cluster
    finally:
        ha.down(directory)


def user_body(name: str) -> dict[str, Any]:
    return {"username": name, "email": f"{name.lower()}@example.com", "role": "engineer"}


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    retry_after: str | None

    @property
    def code(self) -> str | None:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return error.get("code") if isinstance(error, dict) else None


async def request(
    http: aiohttp.ClientSession, port: int, method: str, path: str, body: Any = None
) -> Reply:
    async with http.request(
        method, f"http://127.0.0.1:{port}{path}", json=body, headers=AUTH
    ) as resp:
        raw = await resp.read()
        return Reply(
            resp.status, orjson.loads(raw) if raw else None, resp.headers.get("Retry-After")
        )


@dataclass
class Api:
    """A ``python -m app`` process and its port."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path


def _spawn(environ: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "app"], env=environ, stdout=out, stderr=subprocess.STDOUT
        )


@asynccontextmanager
async def api(redis_url: str, tmp: Path, **env: str) -> AsyncIterator[Api]:
    """``python -m app`` on a free port with ``REDIS_URL=redis_url`` (and ``env``), ready
    (GET /ready 200) before the block; SIGTERM (SIGKILL after 30 s) after it."""
    port = free_port()
    log = tmp / f"api-{port}.log"
    environ = {
        **os.environ,
        "REDIS_URL": redis_url,
        "MULTIFRAME_PORT": str(port),
        "MULTIFRAME_HOST": "127.0.0.1",
        "MULTIFRAME_ADMIN_TOKEN": TOKEN,
        "MULTIFRAME_DATA_DIR": str(tmp / "unused"),
        "MULTIFRAME_LOG_LEVEL": "WARNING",
        **env,
    }
    proc = _spawn(environ, log)
    served = Api(proc, port, log)
    try:
        deadline = time.monotonic() + START_S
        async with aiohttp.ClientSession() as http:
            while True:
                assert proc.poll() is None, log.read_text()
                try:
                    if (await request(http, port, "GET", "/ready")).status == 200:
                        break
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, f"the API was not ready: {log.read_text()}"
                await asyncio.sleep(0.1)
        yield served
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass
class Seen:
    replies: list[tuple[float, str, Reply]] = field(default_factory=list)
    created: list[tuple[str, str]] = field(default_factory=list)  # (id, username) acknowledged
    # Creates answered 503 not_durable: (their error's details, the username sent)
    unconfirmed: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    transport_errors: list[str] = field(default_factory=list)


async def load_client(
    n: int, port: int, seen: Seen, stop: asyncio.Event, names: itertools.count[int]
) -> None:
    """Client ``n`` of a mixed load until ``stop``: creates users (``Fail<n>x<k>``), lists them
    and reads its own last one by id, in turn; every reply goes into ``seen``."""
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        mine: list[str] = []
        for step in itertools.count():
            if stop.is_set():
                return
            kind = ("create", "list", "get")[step % 3] if mine else "create"
            try:
                if kind == "create":
                    name = f"Fail{n}x{next(names)}"
                    reply = await request(http, port, "POST", "/api/users", user_body(name))
                    if reply.status == 201:
                        seen.created.append((reply.body["user_id"], name))
                        mine.append(reply.body["user_id"])
                    elif reply.code == "not_durable":
                        seen.unconfirmed.append((reply.body["error"]["details"], name))
                elif kind == "list":
                    reply = await request(http, port, "GET", "/api/users?limit=5")
                else:
                    reply = await request(http, port, "GET", f"/api/users/{mine[-1]}")
            except (aiohttp.ClientError, TimeoutError) as exc:
                seen.transport_errors.append(repr(exc))
                continue
            seen.replies.append((time.monotonic(), kind, reply))
            if reply.status == 503:
                await asyncio.sleep(0.05)  # as a client honouring Retry-After would, briefly
