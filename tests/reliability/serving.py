"""The app served the way ``python -m app`` serves it (``app.server.start_server``: the
runner and TCPSite it builds, with the same options) on a free port.

``live_app`` in conftest.py serves through aiohttp's TestServer, whose runner is built with
aiohttp's defaults; timeouts and connection handling are only realistic through this path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

from aiohttp import web
from redis.asyncio import Redis

from app import create_app
from app.config import Settings
from app.server import start_server
from app.state import KEYSPACE
from keyspace import Keyspace, connect

from .conftest import reliability_settings


@dataclass
class Served:
    """A running app, its runner (``runner.server.connections`` are the open connections)
    and the Redis client it uses."""

    app: web.Application
    runner: web.AppRunner
    redis: Redis

    @property
    def port(self) -> int:
        port: int = self.runner.addresses[0][1]
        return port

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def keyspace(self) -> Keyspace:
        return self.app[KEYSPACE]

    @property
    def connections(self) -> int:
        server = self.runner.server
        return len(server.connections) if server is not None else 0


@asynccontextmanager
async def served(redis_url: str, settings: Settings | None = None) -> AsyncIterator[Served]:
    """Serve a new app on 127.0.0.1 (a port the OS picks) until the block ends."""
    settings = replace(settings or reliability_settings(), host="127.0.0.1", port=0)
    redis = connect(redis_url)
    try:
        app = create_app(settings, client=redis)
        runner = await start_server(app, settings)
        try:
            yield Served(app, runner, redis)
        finally:
            await runner.cleanup()
    finally:
        await redis.aclose()
