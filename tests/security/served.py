"""The app served as ``python -m app`` serves it (``app.server.start_server``) on fakeredis, and
raw sockets to talk to it byte by byte."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import fakeredis
from aiohttp import web

from app import create_app
from app.config import Settings
from app.server import start_server
from app.state import KEYSPACE
from keyspace import Keyspace

from .conftest import ADMIN_TOKEN


@dataclass
class Running:
    runner: web.AppRunner
    port: int
    keyspace: Keyspace

    @property
    def connections(self) -> int:
        return len(self.runner.server.connections) if self.runner.server is not None else 0


@asynccontextmanager
async def running(
    *, keepalive_timeout: float = 75, body_timeout: float = 60, send_timeout: float = 60
) -> AsyncIterator[Running]:
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), protocol=2)
    settings = Settings(
        admin_token=ADMIN_TOKEN,
        port=0,
        shutdown_timeout=1,
        keepalive_timeout=keepalive_timeout,
        body_timeout=body_timeout,
        send_timeout=send_timeout,
    )
    app = create_app(settings, client=redis)
    runner = await start_server(app, settings)
    try:
        yield Running(runner, runner.addresses[0][1], app[KEYSPACE])
    finally:
        await runner.cleanup()
        await redis.aclose()


async def raw(port: int, receive_buffer: int | None = None) -> tuple[Any, Any]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return await asyncio.open_connection(sock=sock, limit=4096)


async def read_until_closed(reader: asyncio.StreamReader) -> tuple[bytes, float]:
    started, out = time.perf_counter(), b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), timeout=5):
            out += chunk
    except ConnectionError:
        pass
    return out, time.perf_counter() - started


async def no_connections(server: Running) -> bool:
    for _ in range(100):
        if not server.connections:
            return True
        await asyncio.sleep(0.05)
    return False
