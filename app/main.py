"""``create_app()``: the aiohttp application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from keyspace import (
    Keyspace,
    System,
    connect,
    connect_replica,
    endpoint_name,
    observe_round_trips,
    systems,
)

from . import metrics_listener, openapi, tracing
from .admin_routes import RUNS, Runs
from .auth import auth_middleware
from .changes import install_feed
from .config import Settings
from .cors import cors_middleware
from .errors import ApiError, Handler, error_middleware, sent_path
from .metrics import EXPOSITION, METRICS, Exposition, Metrics, RedisState
from .routes import install, route_table
from .routing import Route
from .startup import IndexWork, attach, cancel, keep_prepared, prepare_at_start
from .state import ATTACHED, KEYSPACE, LIMITS, OPENAPI, SETTINGS, SYSTEM

log = logging.getLogger("multiframe.api")


ATTACH_WAIT_SECONDS = 1.0


@web.middleware
async def until_attached(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A worker serving before it could read Redis (app/startup.py attach) answers as one
    process does while its Redis is down: 503 ``redis_unavailable``, after waiting a moment
    (a worker just started on a working Redis is attached in milliseconds)."""
    attached = request.app[ATTACHED]
    if not attached.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(attached.wait(), ATTACH_WAIT_SECONDS)
    if not attached.is_set():
        raise ApiError(
            503,
            "redis_unavailable",
            "the data store is unreachable; retry shortly",
            headers={"Retry-After": "2"},
        )
    return await handler(request)


HEADERS_ALLOWANCE = 8192  # the status line and headers of any response this API sends


def _fits(request: web.Request, response: web.StreamResponse) -> bool:
    """Whether the whole response fits in the transport's write buffer. Writing then never
    waits for the client: the transport pauses the writer only above its high-water mark."""
    transport = request.transport
    body = response.body if isinstance(response, web.Response) else None
    if transport is None or not isinstance(body, bytes):
        return False
    _, high = transport.get_write_buffer_limits()
    return transport.get_write_buffer_size() + len(body) + HEADERS_ALLOWANCE <= high


async def _send(request: web.Request, response: web.StreamResponse) -> None:
    await response.prepare(request)
    await response.write_eof()


@web.middleware
async def deliver(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Send the response here, within ``send_timeout``: aiohttp would otherwise wait forever
    for a client that stops reading, holding the response body and the connection. On
    expiry the connection is aborted (the buffered response is dropped)."""
    response = await handler(request)
    if response.prepared:  # a streaming handler has sent it already
        return response
    timeout = request.app[SETTINGS].send_timeout
    try:
        if _fits(request, response):
            # Nothing can wait, so no timeout to arm: a timeout scope costs ~6 us per request.
            await _send(request, response)
        else:
            async with asyncio.timeout(timeout):
                await _send(request, response)
    except TimeoutError:
        log.warning(
            "%s %s: the client did not take the response within %gs; connection aborted",
            request.method,
            sent_path(request),
            timeout,
        )
        if request.transport is not None:
            request.transport.abort()
    except ConnectionError:
        pass  # the client hung up; aiohttp notices when it finishes the response
    return response


def _endpoint_limits(app: web.Application, served: System, settings: Settings) -> System:
    """``served`` with ``MULTIFRAME_ENDPOINT_LIMITS`` applied; ValueError for a system that
    declares no per-endpoint limits or an endpoint it does not serve (a typo limits nothing)."""
    overrides = settings.endpoint_limits
    if not overrides:
        return served
    if served.rate_limits is None:
        raise ValueError(f"MULTIFRAME_ENDPOINT_LIMITS: {served.name} has no per-endpoint limits")
    served_routes = {
        endpoint_name(r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.resource is not None
    }
    for name in overrides:
        if name not in ("read", "write") and name not in served_routes:
            raise ValueError(f"MULTIFRAME_ENDPOINT_LIMITS: {served.name} serves no {name}")
    return replace(served, rate_limits=served.rate_limits.configured(overrides))


def create_app(
    settings: Settings | None = None,
    *,
    client: Redis | None = None,
    reader: Redis | None = None,
    worker: bool = False,
) -> web.Application:
    """Build the application. ``client`` (for tests) replaces the pool made from ``REDIS_URL``,
    ``reader`` the one for replica reads (``MULTIFRAME_READ_FROM``); the caller then owns
    them. ``worker``: one of ``--workers`` processes, whose parent does start-up's work on
    Redis (the first admin, index builds) once for all of them."""
    settings = settings or Settings.from_env()
    if client is None and settings.redis_url is None:
        raise ValueError(
            "create_app needs settings.redis_url or a client (python -m app starts Redis)"
        )
    reader_url = None if client is not None else settings.reader_url()
    if client is None:
        settings.check_durability()
    # deliver sits outside error_middleware so error responses are sent under its timeout too.
    # telemetry outermost: the request id is known to every log line, then the request logged
    # and counted.
    middlewares = [
        tracing.telemetry,
        deliver,
        cors_middleware,
        error_middleware,
        auth_middleware,
    ]
    if worker:
        middlewares.insert(-1, until_attached)  # before auth, which reads Redis
    app = web.Application(client_max_size=settings.max_body, middlewares=middlewares)
    tracing.install(app)
    app[METRICS] = Metrics()
    app[SETTINGS] = settings
    app[ATTACHED] = asyncio.Event()
    app[LIMITS] = settings.limits()
    try:
        served = systems.load(
            settings.system, settings.namespace, settings.ttls, settings.cache_ttl
        )
    except ValueError as exc:
        raise ValueError(
            f"MULTIFRAME_SYSTEM / MULTIFRAME_NAMESPACE / MULTIFRAME_TTL_SECONDS: {exc}"
        ) from None
    app[SYSTEM] = served
    app[RUNS] = Runs()
    state = RedisState(lambda: app[KEYSPACE], served, settings.redis_timeout)
    app[EXPOSITION] = Exposition(app[METRICS].registry, state, settings.metrics_token)

    async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
        owned = client is None
        redis = (
            client
            if client is not None
            else connect(
                settings.redis_url or "",
                max_connections=settings.max_connections,
                timeout=settings.redis_timeout,
                pipelining=settings.pipelining,
            )
        )
        replica = (
            connect_replica(
                reader_url,
                max_connections=settings.max_connections,
                timeout=settings.redis_timeout,
                pipelining=settings.pipelining,
            )
            if reader is None and reader_url is not None
            else None
        )
        if owned:  # a caller's client is the caller's to observe
            observe_round_trips(redis, app[METRICS].round_trips("primary"))
        if replica is not None:
            observe_round_trips(replica, app[METRICS].round_trips("replica"))
        ks = Keyspace(
            redis,
            app[SYSTEM].schema,
            reader=reader or replica,
            durability=settings.durability,
            changes_cap=settings.changes_cap(),
        )
        # The operator's token lives here, never in Redis: valid exactly while configured.
        ks.tokens.configure_operator(settings.admin_token)
        work = IndexWork(ks)
        if worker:  # serving at once; 503 until attached (the parent says what it found)
            watchdog = asyncio.create_task(attach(ks, app[ATTACHED], settings.encryption_key))
        else:
            caps = await prepare_at_start(ks, served, settings, work)
            watchdog = asyncio.create_task(keep_prepared(ks, served, settings, work))
            app[ATTACHED].set()
            if caps.degraded:
                log.warning(
                    "RediSearch not available: lists use the slower scan path (degraded mode)"
                )
        app[KEYSPACE] = ks
        yield
        await app[RUNS].stop()
        await cancel(watchdog)
        await work.stop()
        if owned:
            await redis.aclose()
        if replica is not None:
            await replica.aclose()

    app.cleanup_ctx.append(redis_ctx)
    install_feed(app)  # its reader needs the keyspace redis_ctx makes
    table = served_routes(served, settings)
    if settings.metrics_listen is not None and not worker:  # under --workers, their parent's
        app.cleanup_ctx.append(
            metrics_listener.listening(app[EXPOSITION], settings, app[METRICS].auth_failures)
        )
    install(app, table)
    app[SYSTEM] = _endpoint_limits(app, served, settings)
    app[OPENAPI] = openapi.build(table, served)
    return app


def served_routes(served: System, settings: Settings) -> list[Route]:
    """The routes the app serves: ``/metrics`` is on its own listener when
    MULTIFRAME_METRICS_LISTEN is set."""
    table = route_table(served)
    if settings.metrics_listen is not None:
        table = [r for r in table if r.path != "/metrics"]
    return table


def openapi_document(settings: Settings, served: System) -> dict[str, Any]:
    """The /openapi.json the app of ``settings`` serves for ``served``, without starting it."""
    return openapi.build(served_routes(served, settings), served)
