"""``create_app()``: the aiohttp application factory."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web
from redis.asyncio import Redis

from keyspace import Keyspace, connect

from . import openapi
from .auth import auth_middleware
from .bootstrap import bootstrap
from .config import Settings
from .errors import Handler, error_middleware
from .routes import install, route_table
from .state import KEYSPACE, LIMITS, OPENAPI, SETTINGS

log = logging.getLogger("multiframe.api")


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One line per request: method, path, status, duration."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        elapsed = (time.perf_counter() - started) * 1000
        log.info("%s %s %d %.1fms", request.method, request.path, status, elapsed)


def create_app(settings: Settings | None = None, *, client: Redis | None = None) -> web.Application:
    """Build the application. ``client`` (for tests) replaces the pool made from ``REDIS_URL``;
    the caller then owns it."""
    settings = settings or Settings.from_env()
    if client is None and settings.redis_url is None:
        raise ValueError(
            "create_app needs settings.redis_url or a client (python -m app starts Redis)"
        )
    middlewares = [access_log, error_middleware, auth_middleware]
    app = web.Application(client_max_size=settings.max_body, middlewares=middlewares)
    app[SETTINGS] = settings
    app[LIMITS] = settings.limits()

    async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
        owned = client is None
        redis = (
            client
            if client is not None
            else connect(
                settings.redis_url or "",
                max_connections=settings.max_connections,
                timeout=settings.redis_timeout,
            )
        )
        ks = Keyspace(redis)
        caps = await ks.setup()
        if caps.degraded:
            log.warning("RediSearch not available: lists use the slower scan path (degraded mode)")
        await bootstrap(ks, settings.admin_token)
        app[KEYSPACE] = ks
        yield
        if owned:
            await redis.aclose()

    app.cleanup_ctx.append(redis_ctx)
    table = route_table()
    install(app, table)
    app[OPENAPI] = openapi.build(table)
    return app
