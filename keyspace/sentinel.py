"""``redis+sentinel://`` URLs: the primary (or a replica) found through Redis Sentinel.

``redis+sentinel://[user:password@]host:port[,host:port...]/<service>[/db]`` names the
sentinels, the service (Sentinel's master name) and the database. The URL's user and
password authenticate to the data nodes and to the sentinels alike (as ``multiframe-admin ha
up`` sets them up); ``?sentinel_username=`` and ``?sentinel_password=`` give the sentinels
other credentials, an empty ``sentinel_password`` none at all.

Clients made here ask a sentinel for the primary's address whenever a connection (re)connects,
so they follow a failover without a restart: connections to the old primary fail (refused, or
``READONLY`` once it was demoted, which redis-py turns into a connection error and a
reconnect), and the next connection goes to the promoted replica.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.sentinel
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.sentinel import (
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)

from .connection import HiredisPacking, Pool, client_options

SCHEME = "redis+sentinel"
SCHEMES = (SCHEME, "rediss+sentinel")  # rediss: TLS to the data nodes and the sentinels
DEFAULT_SENTINEL_PORT = 26379


def is_sentinel(url: str) -> bool:
    """Whether ``url`` names its server through Sentinel."""
    return url.partition("://")[0].lower() in SCHEMES


@dataclass(frozen=True)
class SentinelUrl:
    """A parsed ``redis+sentinel://`` URL."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    tls: bool = False

    def node_options(self) -> dict[str, Any]:
        """Connection options of the data nodes (primary and replicas)."""
        return {"username": self.username, "password": self.password, "db": self.db}

    def sentinel_options(self, timeout: float) -> dict[str, Any]:
        """Connection options of the sentinels."""
        return {
            "username": self.sentinel_username,
            "password": self.sentinel_password,
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "ssl": self.tls,
        }


def _host_port(text: str) -> tuple[str, int]:
    host, port = text, str(DEFAULT_SENTINEL_PORT)
    if text.startswith("["):  # [::1]:26379
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") or port
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not a sentinel address: {text!r}; use host:port")
    return host, int(port)


def parse(url: str) -> SentinelUrl:
    """The parts of a ``redis+sentinel://`` URL; ValueError naming what is wrong."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES:
        raise ValueError(f"not a {SCHEME}:// URL: {parts.scheme}://")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    sentinels = tuple(_host_port(h) for h in hosts.split(",") if h)
    if not sentinels:
        raise ValueError(f"{SCHEME}:// needs at least one sentinel host:port")
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError(f"{SCHEME}:// needs /<service-name>[/db] after the sentinels")
    if len(path) == 2 and not path[1].isdigit():
        raise ValueError(f"the database must be a number, not {path[1]!r}")
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = set(query) - {"sentinel_username", "sentinel_password"}
    if unknown:
        raise ValueError(f"unknown {SCHEME}:// option(s): {', '.join(sorted(unknown))}")
    username = unquote(user) or None
    secret = unquote(password) or None
    s_user: str | None = query.get("sentinel_username") or None
    s_secret: str | None = query.get("sentinel_password") or None
    if "sentinel_password" not in query:  # the URL's credentials serve the sentinels too
        s_user, s_secret = s_user or username, secret
    return SentinelUrl(
        sentinels=sentinels,
        service=unquote(path[0]),
        db=int(path[1]) if len(path) == 2 else 0,
        username=username,
        password=secret,
        sentinel_username=s_user if s_secret else None,
        sentinel_password=s_secret or None,
        tls=parts.scheme.lower() == "rediss+sentinel",
    )


class _FastSentinelConnection(HiredisPacking, SentinelManagedConnection):
    pass


class _FastSentinelSSLConnection(HiredisPacking, SentinelManagedSSLConnection):
    pass


class SentinelPool(Pool, SentinelConnectionPool):
    """:class:`~keyspace.connection.Pool` (blocking, with its ``lease``/``give_back`` fast
    path) whose connections find their server through Sentinel, as redis-py's
    ``SentinelConnectionPool``: the primary's address is asked on every (re)connect, and idle
    connections to an old primary are closed once a sentinel names another."""

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        # BlockingConnectionPool passes its keywords on to SentinelConnectionPool (next in
        # the MRO), which takes the service and the manager by these names.
        super().__init__(service_name=service_name, sentinel_manager=sentinel_manager, **kwargs)


def connect_sentinel(
    url: str, *, max_connections: int = 64, timeout: float = 5.0, replica: bool = False
) -> Redis:
    """A pooled asyncio client of the service's primary (``replica``: of one of its replicas,
    the primary when none is up) with :func:`keyspace.connect`'s properties. No connection
    is opened here."""
    parsed = parse(url)
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        parsed.sentinels, sentinel_kwargs=parsed.sentinel_options(timeout)
    )
    connection_class: type[AbstractConnection] = (
        _FastSentinelSSLConnection if parsed.tls else _FastSentinelConnection
    )
    pick = sentinel.slave_for if replica else sentinel.master_for
    client: Redis = pick(
        parsed.service,
        connection_pool_class=SentinelPool,
        connection_class=connection_class,
        max_connections=max_connections,
        timeout=timeout,
        # A fresh connection PINGs its server, so a replica that is still loading (LOADING)
        # is refused at connect rather than on the first query.
        check_connection=replica,
        **client_options(timeout),
        **parsed.node_options(),
    )
    return client


def sync_primary_client(url: str, timeout: float = 5.0) -> redis.Redis:
    """A synchronous client of the service's primary (the service's preflight, the CLI)."""
    parsed = parse(url)
    sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        parsed.sentinels, sentinel_kwargs=parsed.sentinel_options(timeout)
    )
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        parsed.service,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        ssl=parsed.tls,
        **parsed.node_options(),
    )
    return client
