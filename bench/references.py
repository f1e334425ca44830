"""The HTTP servers the service is measured against, and how to run any app on a real port.

Two references bracket what ``app/`` can reach on this machine:

* :func:`trivial_app`: GET returns a constant small JSON, POST parses the JSON body
  and echoes it. No Redis: the ceiling of aiohttp itself (server and client).
* :func:`one_call_app`: GET ``/docs/{id}`` does exactly one ``JSON.GET driver:<id>``,
  POST ``/docs`` exactly one ``JSON.SET`` of the body, through the service's client
  (:func:`keyspace.connect`) without its automatic pipelining: one command per request on a
  pooled connection, as twenty lines of aiohttp and redis-py do.

Every server here gets its own client from :func:`redis_client`, which counts the
round trips it makes (see :class:`CountingConnection`), so requests can be priced
in round trips as well as in time.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp
import orjson
from aiohttp import web
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection

from app import create_app
from app.config import Settings
from keyspace import DRIVER, USER, Keyspace, connect
from keyspace.connection import call
from keyspace.pipelining import Pipeliner, pipeliner
from keyspace.server import free_port

TOKEN = "mf_bench_" + secrets.token_urlsafe(24)
"""The admin API key every instance of our app is started with (admins are unlimited)."""

JSON = "application/json"
CONSTANT = orjson.dumps(
    {
        "driver_id": "driver_1",
        "user_id": "user_1",
        "chip_id": "chip_quantum_1",
        "status": "optimized",
        "version": "2.1.0",
    }
)


class CountingConnection(AbstractConnection):
    """Mixed into a client's connection class: counts the writes it sends, one per round
    trip (a pipeline is one write). One counter for the process: measure one server at a time."""

    sends: ClassVar[int] = 0

    async def send_packed_command(
        self, command: bytes | str | Any, check_health: bool = True
    ) -> None:
        CountingConnection.sends += 1
        await super().send_packed_command(command, check_health)


_PIPELINED: list[Pipeliner] = []


def _sent() -> int:
    """Writes so far: the counting connections' and every pipeliner's (one per round trip)."""
    return CountingConnection.sends + sum(p.writes for p in _PIPELINED)


def redis_client(url: str, *, pipelining: bool = True) -> Redis:
    """``keyspace.connect(url)`` whose plain TCP connections and pipeliner count their round
    trips."""
    client = connect(url, pipelining=pipelining)
    piped = pipeliner(client)
    if piped is not None:
        _PIPELINED.append(piped)
    pool = client.connection_pool
    pool.connection_class = type(
        "Counting" + pool.connection_class.__name__,
        (CountingConnection, pool.connection_class),
        {},
    )
    return client


def trivial_app() -> web.Application:
    """The framework's ceiling: no Redis, no auth, one small JSON in and out."""

    async def get(request: web.Request) -> web.Response:
        return web.Response(body=CONSTANT, content_type=JSON)

    async def post(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        return web.Response(body=orjson.dumps(body), status=201, content_type=JSON)

    app = web.Application()
    app.router.add_get("/docs/{id}", get)
    app.router.add_post("/docs", post)
    return app


def one_call_app(client: Redis) -> web.Application:
    """The floor: exactly one Redis command per request, nothing else.

    POST stores the body under ``driver:ref_<n>`` (``n`` counted in the process, no
    INCR), so RediSearch indexes it just like the service's drivers.
    """
    numbers = itertools.count(1)

    async def get(request: web.Request) -> web.Response:
        raw: bytes | None = await call(client, "JSON.GET", f"driver:{request.match_info['id']}")
        if raw is None:
            return web.Response(status=404, body=b'{"error": "not found"}', content_type=JSON)
        return web.Response(body=raw, content_type=JSON)

    async def post(request: web.Request) -> web.Response:
        raw = await request.read()
        orjson.loads(raw)  # any service must at least know it got JSON
        await call(client, "JSON.SET", f"driver:ref_{next(numbers)}", "$", raw)
        return web.Response(body=raw, status=201, content_type=JSON)

    app = web.Application()
    app.router.add_get("/docs/{id}", get)
    app.router.add_post("/docs", post)
    return app


def our_settings(*, read_per_minute: int = 600, write_per_minute: int = 120) -> Settings:
    """The defaults with :data:`TOKEN` as the admin key (admins are unlimited)."""
    return Settings(
        admin_token=TOKEN, read_per_minute=read_per_minute, write_per_minute=write_per_minute
    )


@dataclass
class Running:
    """An app served on ``url`` (``http://127.0.0.1:<port>``) until :meth:`stop`."""

    runner: web.AppRunner
    url: str
    client: Redis | None = None  # closed on stop

    async def stop(self) -> None:
        await self.runner.cleanup()
        if self.client is not None:
            await self.client.aclose()


async def serve(app: web.Application, client: Redis | None = None) -> Running:
    """Serve ``app`` on 127.0.0.1 on a free port (no access log, no signal handlers)."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    for attempt in range(3):
        port = free_port()
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
            return Running(runner, f"http://127.0.0.1:{port}", client)
        except OSError:  # someone took the port between free_port() and bind
            if attempt == 2:
                await runner.cleanup()
                raise
    raise AssertionError("unreachable")


async def serve_ours(url: str, settings: Settings | None = None) -> Running:
    """The service (``create_app``) with its own client; default :func:`our_settings`."""
    client = redis_client(url)
    return await serve(create_app(settings or our_settings(), client=client), client)


async def serve_trivial() -> Running:
    return await serve(trivial_app())


async def serve_one_call(url: str) -> Running:
    # One command per request on a pooled connection: the hand-written service's way.
    client = redis_client(url, pipelining=False)
    return await serve(one_call_app(client), client)


@dataclass(frozen=True)
class Trips:
    """What a request costs in Redis: round trips from the counting client, and the
    commands the server executed per request (including those run inside scripts)."""

    per_request: float
    commands: dict[str, float]

    def describe(self) -> str:
        listed = ", ".join(f"{name} {n:.2f}" for name, n in self.commands.items())
        return f"{self.per_request:.2f} round trips/request; server commands/request: {listed}"


async def count_trips(admin: Redis, run: Callable[[], Awaitable[int]]) -> Trips:
    """Price ``run`` (which returns how many requests it made) in round trips of the
    counting clients and in server-side ``INFO commandstats`` deltas."""
    sends = _sent()
    before = await admin.info("commandstats")
    requests = max(1, await run())
    after = await admin.info("commandstats")
    trips = (_sent() - sends) / requests
    commands: dict[str, float] = {}
    for name, stats in after.items():
        calls = stats["calls"] - before.get(name, {}).get("calls", 0)
        command = name.removeprefix("cmdstat_")
        if calls > 0 and command != "info":
            commands[command] = calls / requests
    ordered = dict(sorted(commands.items(), key=lambda item: (-item[1], item[0])))
    return Trips(trips, ordered)


# Data --------------------------------------------------------------------------------------

CHIPS = ("quantum_processor", "neural_processor", "crypto_processor")


def user_body(n: int) -> dict[str, Any]:
    """A user as a client sends it (the service assigns ``user_id`` and ``created_at``)."""
    return {"username": f"bench_{n}", "email": f"bench_{n}@bench.example", "role": "designer"}


def driver_body(n: int, user_id: str) -> dict[str, Any]:
    """A driver as a client sends it (the service assigns ``driver_id`` and ``timestamp``)."""
    return {
        "user_id": user_id,
        "chip_id": f"chip_{n % 97}",
        "status": "optimized" if n % 3 else "generated",
        "version": "2.1.0",
        "chip_data": {
            "type": CHIPS[n % 3],
            "cores": 8 * (1 + n % 16),
            "frequency": "4.5GHz",
            "architecture": "QubitCore",
        },
    }


async def fresh(admin: Redis, ks: Keyspace) -> None:
    """Empty the server (FLUSHALL also drops the indexes) and set the keyspace up again."""
    await admin.flushall()
    await ks.setup()


async def seed(ks: Keyspace, users: int, drivers: int) -> tuple[list[str], list[str]]:
    """Create ``users`` users and ``drivers`` drivers spread over them, through the keyspace,
    32 at a time. Returns their ids."""
    user_ids: list[str] = []
    driver_ids: list[str] = []
    gate = asyncio.Semaphore(32)

    async def user(n: int) -> None:
        async with gate:
            user_ids.append((await ks.create(USER, user_body(n))).doc["user_id"])

    async def driver(n: int) -> None:
        async with gate:
            stored = await ks.create(DRIVER, driver_body(n, user_ids[n % len(user_ids)]))
            driver_ids.append(stored.doc["driver_id"])

    await asyncio.gather(*(user(n) for n in range(users)))
    await asyncio.gather(*(driver(n) for n in range(drivers)))
    return sorted(user_ids), sorted(driver_ids)


async def mint_designer(client: aiohttp.ClientSession, base: str, n: int = 0) -> str:
    """Create a designer through the API (as the admin) and mint an API key for it."""
    admin = {"Authorization": f"Bearer {TOKEN}"}
    async with client.post(f"{base}/api/users", json=user_body(10**9 + n), headers=admin) as made:
        if made.status != 201:
            raise RuntimeError(f"creating the designer failed: {made.status} {await made.text()}")
        user_id = (await made.json())["user_id"]
    async with client.post(
        f"{base}/api/users/{user_id}/tokens", json={"kind": "api_key"}, headers=admin
    ) as minted:
        if minted.status != 201:
            raise RuntimeError(f"minting a token failed: {minted.status} {await minted.text()}")
        token: str = (await minted.json())["token"]
    return token
