"""Shared pieces of the reliability suite: private embedded servers a test may kill, a live
app on a real TCP port, and a figures report printed at the end of every run (CI shows it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from app import create_app
from app.config import Settings
from keyspace import connect
from keyspace.acl import AclUsers
from keyspace.server import EmbeddedRedis

ADMIN_TOKEN = "reliability-admin-token-5b1e0c7a9d3f42e8"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

_FIGURES = pytest.StashKey[list[str]]()


@dataclass
class Figures:
    """Collects one line of figures per scenario; printed in the terminal summary."""

    lines: list[str]

    def record(self, scenario: str, **numbers: Any) -> None:
        shown = ", ".join(f"{name}={value}" for name, value in numbers.items())
        self.lines.append(f"{scenario}: {shown}")


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    return Figures(request.config.stash.setdefault(_FIGURES, []))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    lines = config.stash.get(_FIGURES, [])
    if lines:
        terminalreporter.section("reliability figures")
        for line in lines:
            terminalreporter.write_line(line)


def reliability_settings(**overrides: Any) -> Settings:
    """Settings of the suite: the admin token; rate limits high enough not to interfere."""
    base: dict[str, Any] = {"admin_token": ADMIN_TOKEN}
    return Settings(**{**base, **overrides})


ServerFactory = Callable[..., EmbeddedRedis]


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start servers this test owns (and may kill or restart); all are stopped afterwards.

    ``private_server(appendfsync="always", name="a")`` returns a started EmbeddedRedis with
    the ACL users ``python -m app`` runs with: ``url`` is the service user's, ``admin_url``
    the operator's (FLUSHALL, SCRIPT FLUSH, CONFIG SET, DEBUG).
    """
    started: list[EmbeddedRedis] = []

    def start(name: str = "redis", **kwargs: Any) -> EmbeddedRedis:
        kwargs.setdefault("acl", AclUsers())
        server = EmbeddedRedis(tmp_path / name, **kwargs)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


@dataclass
class LiveApp:
    """The app served on a real 127.0.0.1 port, with its own Redis client."""

    server: TestServer
    redis: Redis
    _closers: list[Any] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return str(self.server.make_url(""))

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))


@pytest.fixture
async def live_app() -> AsyncIterator[Callable[..., Any]]:
    """``await live_app(redis_url, settings=None)`` serves a new app; closed after the test."""
    apps: list[LiveApp] = []

    async def serve(redis_url: str, settings: Settings | None = None) -> LiveApp:
        redis = connect(redis_url)
        app: web.Application = create_app(settings or reliability_settings(), client=redis)
        server = TestServer(app)
        await server.start_server()
        live = LiveApp(server, redis)
        apps.append(live)
        return live

    yield serve
    for live in apps:
        await live.server.close()
        await live.redis.aclose()
