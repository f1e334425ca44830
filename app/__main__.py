"""``python -m app`` / ``multiframe``: serve the API (embedded Redis unless REDIS_URL is set)."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
from dataclasses import replace
from typing import Any

import redis
import uvloop
from aiohttp import web

from keyspace.acl import SERVICE_USER, AclUsers
from keyspace.server import EmbeddedRedis, EmbeddedRedisError

from .config import Settings
from .main import create_app

log = logging.getLogger("multiframe")


def _arguments(settings: Settings) -> Settings:
    parser = argparse.ArgumentParser(prog="multiframe", description=__doc__)
    parser.add_argument("--host", default=settings.host, help="listen address (MULTIFRAME_HOST)")
    parser.add_argument(
        "--port", type=int, default=settings.port, help="listen port (MULTIFRAME_PORT)"
    )
    args = parser.parse_args()
    return replace(settings, host=args.host, port=args.port)


def server_options(settings: Settings) -> dict[str, Any]:
    """How connections are served: the keyword arguments ``main`` gives ``web.run_app``, which
    hands them to the ``web.AppRunner`` it builds (so :func:`start_server` can use them too)."""
    return {
        "access_log": None,  # the app logs one line per request itself
        "shutdown_timeout": settings.shutdown_timeout,
        # aiohttp arms this timer when a connection opens and re-arms it after each response;
        # it closes the connection if no complete request head has arrived by then, so it
        # bounds idle keep-alive connections and slowly sent headers (slow-loris) alike.
        "keepalive_timeout": settings.keepalive_timeout,
        # After answering without reading the whole body (401, 413, 408, ...) aiohttp keeps
        # reading it for up to 10 s so the client sees the response; a body that timed out
        # has had its time already.
        "lingering_time": min(10.0, settings.body_timeout),
    }


async def start_server(app: web.Application, settings: Settings) -> web.AppRunner:
    """Serve ``app`` on ``settings.host``/``port`` as ``main`` does (``web.run_app`` builds this
    same runner and site), minus the signal handlers; stop it with ``runner.cleanup()``."""
    runner = web.AppRunner(app, **server_options(settings))
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def preflight(url: str) -> None:
    """Fail with a clear message before serving when REDIS_URL cannot serve the keyspace."""
    missing = []
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5) as client:
            client.ping()
            # Probing commands, not MODULE LIST, which a least-privilege user may not run.
            for module, probe in (("ReJSON", ("JSON.TYPE", "mf:probe")), ("search", ("FT._LIST",))):
                try:
                    client.execute_command(*probe)
                except redis.ResponseError:
                    missing.append(module)
    except redis.RedisError as exc:
        raise SystemExit(f"cannot use REDIS_URL: {exc}") from None
    if "ReJSON" in missing:
        raise SystemExit(
            f"the server at {url} lacks the RedisJSON module; use Redis 8, Redis Stack 7.2+, "
            "or unset REDIS_URL to run the embedded server"
        )
    if "search" in missing:
        log.warning("the server at %s lacks RediSearch: lists take the slower scan path", url)


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("MULTIFRAME_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(name)s %(message)s",
    )
    settings = _arguments(Settings.from_env())
    embedded: EmbeddedRedis | None = None
    if settings.redis_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        acl = AclUsers(
            service_password=os.environ.get("MULTIFRAME_REDIS_PASSWORD")
            or secrets.token_urlsafe(24),
            admin_password=os.environ.get("MULTIFRAME_REDIS_ADMIN_PASSWORD")
            or secrets.token_urlsafe(24),
        )
        embedded = EmbeddedRedis(settings.data_dir, acl=acl)
        try:
            url = embedded.start()
        except EmbeddedRedisError as exc:
            raise SystemExit(f"could not start the embedded Redis: {exc}") from None
        log.info(
            "embedded redis-server on port %d as ACL user %r, data in %s",
            embedded.port,
            SERVICE_USER,
            settings.data_dir.resolve(),
        )
        # multiframe-admin finds the running server through this file.
        url_file = settings.data_dir / "redis.url"
        url_file.touch(mode=0o600, exist_ok=True)
        url_file.chmod(0o600)  # it holds the service user's password
        url_file.write_text(url + "\n")
        settings = replace(settings, redis_url=url)
    else:
        preflight(settings.redis_url)
    try:
        web.run_app(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            print=lambda message: log.info(message.strip()),
            # uvloop: measured faster than asyncio's loop for this service (docs/benchmarks.md).
            loop=uvloop.new_event_loop(),
            **server_options(settings),
        )
    finally:
        if embedded is not None:
            (settings.data_dir / "redis.url").unlink(missing_ok=True)
            embedded.stop()
            log.info("embedded redis-server stopped")


if __name__ == "__main__":
    main()
