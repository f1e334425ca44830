"""``python -m app`` / ``multiframe``: serve the API (embedded Redis unless REDIS_URL is set)."""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import replace

import redis
from aiohttp import web

from keyspace.server import EmbeddedRedis, EmbeddedRedisError, check_modules

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


def preflight(url: str) -> None:
    """Fail with a clear message before serving when REDIS_URL cannot serve the keyspace."""
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5) as client:
            missing = check_modules(client)
    except redis.RedisError as exc:
        raise SystemExit(f"cannot use REDIS_URL={url}: {exc}") from None
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
        embedded = EmbeddedRedis(settings.data_dir)
        try:
            url = embedded.start()
        except EmbeddedRedisError as exc:
            raise SystemExit(f"could not start the embedded Redis: {exc}") from None
        log.info("embedded redis-server on %s, data in %s", url, settings.data_dir.resolve())
        # multiframe-admin finds the running server through this file.
        (settings.data_dir / "redis.url").write_text(url + "\n")
        settings = replace(settings, redis_url=url)
    else:
        preflight(settings.redis_url)
    try:
        web.run_app(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            access_log=None,
            shutdown_timeout=settings.shutdown_timeout,
            print=lambda message: log.info(message.strip()),
        )
    finally:
        if embedded is not None:
            (settings.data_dir / "redis.url").unlink(missing_ok=True)
            embedded.stop()
            log.info("embedded redis-server stopped")


if __name__ == "__main__":
    main()
