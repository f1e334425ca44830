"""``python -m app`` / ``multiframe``: serve the API (embedded Redis unless REDIS_URL is set)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from dataclasses import replace

import redis
import uvloop

from keyspace import (
    SERVICE_USER,
    EmbeddedRedis,
    EmbeddedRedisError,
    System,
    check_url,
    is_sentinel,
    sync_primary_client,
    systems,
)

from .config import USAGE as USAGE  # the exit status of a malformed setting
from .config import BadSetting, Settings, check_port, check_workers
from .main import create_app, openapi_document
from .server import serve
from .supervise import Supervisor, write_url_file
from .tracing import configure_logging
from .workers import LOG_FORMAT, serve_workers

log = logging.getLogger("multiframe")

URL_FILE = "redis.url"  # multiframe-admin finds the running server through it


def _arguments(settings: Settings) -> Settings:
    return _parse(settings)[0]


def _parse(settings: Settings) -> tuple[Settings, bool]:
    """The settings the command line gives, and whether it asks for the OpenAPI document."""
    parser = argparse.ArgumentParser(prog="multiframe", description=__doc__)
    parser.add_argument("--host", default=settings.host, help="listen address (MULTIFRAME_HOST)")
    parser.add_argument(
        "--port", type=int, default=settings.port, help="listen port (MULTIFRAME_PORT)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=settings.workers,
        help="API processes serving the port (MULTIFRAME_WORKERS; default 1: this process)",
    )
    parser.add_argument(
        "--system",
        default=settings.system,
        choices=systems.names(),
        help="the system to serve (MULTIFRAME_SYSTEM; default multiframe)",
    )
    parser.add_argument(
        "--openapi",
        action="store_true",
        help="print the system's OpenAPI document (what /openapi.json serves) and exit",
    )
    args = parser.parse_args()
    workers = check_workers(args.workers, "--workers")
    port = check_port(args.port, "--port")
    chosen = replace(settings, host=args.host, port=port, system=args.system, workers=workers)
    return chosen, bool(args.openapi)


def shown(url: str) -> str:
    """``url`` without its user and password (nor a sentinel URL's ``sentinel_password``),
    for messages and logs. Never raises: it formats the errors of malformed URLs too."""
    # By hand, not urlsplit: that refuses some malformed URLs (an unclosed "[").
    head, _, query = url.partition("?")
    scheme, sep, rest = head.partition("://")
    if not sep:
        scheme, rest = "", head
    host = rest.rpartition("@")[2]  # the last "@": a password may hold one
    kept = "&".join(p for p in query.split("&") if p and "password" not in p.lower())
    return f"{scheme}{sep}{host}" + (f"?{kept}" if kept else "")


def replica_url(settings: Settings) -> str | None:
    """MULTIFRAME_REPLICA_URL if pure reads go to it; ValueError as ``reader_url()``."""
    return settings.replica_url if settings.reader_url() == settings.replica_url else None


def check_urls(settings: Settings) -> None:
    """Exit 2 with one line naming the setting when REDIS_URL or the replica URL reads go to
    (MULTIFRAME_REPLICA_URL) is malformed: before any process is started or forked."""
    urls = {"REDIS_URL": settings.redis_url, "MULTIFRAME_REPLICA_URL": replica_url(settings)}
    for name, url in urls.items():
        if url is None:
            continue
        try:
            check_url(url)
        except ValueError as exc:
            print(f"multiframe: {name} ({shown(url)}): {exc}", file=sys.stderr)
            raise SystemExit(USAGE) from None


def _client(url: str) -> redis.Redis:
    if is_sentinel(url):  # the primary, as a sentinel names it now
        return sync_primary_client(url, timeout=5)
    return redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)


def preflight(url: str, probe_key: str, replicas: int = 0, name: str = "REDIS_URL") -> None:
    """Fail with a clear message before serving when ``url`` (the setting ``name``) cannot
    serve the keyspace; warn when fewer than ``replicas`` (MULTIFRAME_MIN_REPLICAS) are
    connected to the primary."""
    missing = []
    try:
        with _client(url) as client:
            client.ping()
            if replicas:
                connected = int(client.info("replication").get("connected_slaves", 0))
                if connected < replicas:
                    log.warning(
                        "MULTIFRAME_MIN_REPLICAS is %d, and the primary at %s has %d replica(s) "
                        "connected: writes answer 503 not_durable until enough are",
                        replicas,
                        shown(url),
                        connected,
                    )
            # Probing commands, not MODULE LIST, which a least-privilege user may not run.
            for module, probe in (("ReJSON", ("JSON.TYPE", probe_key)), ("search", ("FT._LIST",))):
                try:
                    client.execute_command(*probe)
                except redis.exceptions.NoPermissionError:
                    raise SystemExit(
                        f"{name}'s user may not touch {probe_key} (its ACL does not cover "
                        "this system's keys); use a user whose key patterns cover the system's "
                        "namespace, e.g. the embedded server's admin user"
                    ) from None
                except redis.ResponseError:
                    missing.append(module)
    except (redis.RedisError, ValueError) as exc:  # ValueError: a malformed sentinel URL
        raise SystemExit(f"cannot use {name} ({shown(url)}): {exc}") from None
    if "ReJSON" in missing:
        raise SystemExit(
            f"the server at {shown(url)} ({name}) lacks the RedisJSON module; use Redis 8, "
            "Redis Stack 7.2+, or unset REDIS_URL to run the embedded server"
        )
    if "search" in missing:
        log.warning(
            "the server at %s lacks RediSearch: lists take the slower scan path", shown(url)
        )


def checked() -> tuple[Settings, System, bool]:
    """The settings, the system they serve and whether ``--openapi`` asks for its document;
    BadSetting (one line naming the setting) for anything they cannot be: checked before any
    process is started or forked."""
    settings, dump = _parse(Settings.from_env())
    configure_logging(
        os.environ.get("MULTIFRAME_LOG_LEVEL", "INFO"),
        settings.log_format,
        LOG_FORMAT if settings.workers > 1 else "%(asctime)s %(name)s %(message)s",
    )
    try:
        system = systems.load(
            settings.system, settings.namespace, settings.ttls, settings.cache_ttl
        )
    except ValueError as exc:  # an unknown name, a malformed namespace, a TTL of no entity's
        raise BadSetting(
            f"MULTIFRAME_SYSTEM / MULTIFRAME_NAMESPACE / MULTIFRAME_TTL_SECONDS: {exc}"
        ) from None
    try:
        settings.check_durability()
        check_urls(settings)
    except ValueError as exc:
        raise BadSetting(str(exc)) from None
    return settings, system, dump


def main() -> None:
    try:
        settings, system, dump = checked()
    except BadSetting as exc:  # exit 2 as a malformed URL, not 1 as a Redis that fails
        print(exc, file=sys.stderr)
        raise SystemExit(USAGE) from None
    if dump:  # no Redis needed: client generators read it (README, "Use it from your service")
        print(json.dumps(openapi_document(settings, system), indent=2))
        return
    if (replica := replica_url(settings)) is not None:
        # As REDIS_URL: a replica that cannot be read stops the start, not every list later.
        preflight(replica, system.schema.names.probe_key(), name="MULTIFRAME_REPLICA_URL")
    # Until the event loop installs its own handlers, SIGTERM/SIGHUP unwind like Ctrl-C, so the
    # finally below stops an embedded server started meanwhile (their default kills at once).
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _unwind)
    embedded: EmbeddedRedis | None = None
    supervisor: Supervisor | None = None
    failure: str | None = None  # why --workers' parent stopped the service, if it had to
    try:
        if settings.redis_url is None:
            settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # holds redis.url
            # ACL users (passwords from the env) that may touch only this system's keys.
            # Not the API's port, free until the API listens on it (a CI run saw them clash).
            embedded = EmbeddedRedis(
                settings.data_dir, schema=system.schema, avoid=(settings.port,)
            )
            try:
                url = embedded.start()
            except EmbeddedRedisError as exc:
                # Not ours to clean up: the directory may be another running server's.
                embedded = None
                raise SystemExit(f"could not start the embedded Redis: {exc}") from None
            log.info(
                "embedded redis-server on port %d as ACL user %r, data in %s",
                embedded.port,
                SERVICE_USER,
                settings.data_dir.resolve(),
            )
            write_url_file(settings.data_dir / URL_FILE, url)
            supervisor = Supervisor(embedded, settings.data_dir / URL_FILE)
            settings = replace(settings, redis_url=url)
        else:
            replicas = settings.durability.replicas
            preflight(settings.redis_url, system.schema.names.probe_key(), replicas)
        # uvloop: measured faster than asyncio's loop for this service (docs/benchmarks.md).
        if settings.workers == 1:
            uvloop.run(_serve(settings, supervisor))
        else:
            failure = uvloop.run(serve_workers(settings, system, supervisor))
    finally:
        if embedded is not None:
            (settings.data_dir / URL_FILE).unlink(missing_ok=True)
            embedded.stop()
            log.info("embedded redis-server stopped")
    if supervisor is not None and supervisor.gave_up:
        raise SystemExit("stopped: the embedded Redis could not be kept running")
    if failure is not None:
        raise SystemExit(f"stopped: {failure}")


def _unwind(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


async def _serve(settings: Settings, supervisor: Supervisor | None) -> None:
    watch = asyncio.create_task(supervisor.run()) if supervisor is not None else None
    try:
        try:
            app = create_app(settings)
        except ValueError as exc:  # a setting the served system cannot take: one line
            raise SystemExit(f"cannot start: {exc}") from None
        await serve(app, settings)
    finally:
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch


if __name__ == "__main__":
    main()
