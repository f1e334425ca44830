"""``redis+sentinel://`` URLs: the primary (or a replica) found through Redis Sentinel.

``redis+sentinel://[user:password@]host:port[,host:port...]/<service>[/db]`` names the
sentinels, the service (Sentinel's master name) and the database. The URL's user and
password authenticate to the data nodes and to the sentinels alike (as ``multiframe-admin ha
up`` sets them up); ``?sentinel_username=`` and ``?sentinel_password=`` give the sentinels
other credentials, an empty ``sentinel_password`` none at all.

Clients made here follow a failover without a restart, on redis-py's Sentinel machinery:

- Every (re)connect asks a sentinel for the address: ``connect()`` (a pool handing out a closed
  connection) and also the reconnect redis-py makes when a dropped connection is sent on (a
  retry), which in redis-py itself reuses the old host and port.
- A primary connection, once its handshake is done, asks its node for its role (``INFO
  replication``) and the sentinels again; a node that is a replica, or that the sentinels no
  longer name (its handshake outlasted a failover), is dropped: a connection error, so the
  request answers 503 or its retry reconnects.
- A reply on a primary connection that waited longer than half the sentinels'
  ``down-after-milliseconds`` (or that is the first after the connection stayed silent that
  long) is used only once a sentinel, asked after it arrived, still names the connection's
  node: a primary that hung long enough to be replaced and then came back answers requests
  sent before or during its hang, and those writes go when Sentinel demotes it. Faster
  exchanges cost nothing more: a node that answered within that time cannot have been
  replaced meanwhile.
- A new address from the sentinels closes the idle connections to the old one (redis-py), and
  a connection to it that is given back is closed.
- A replica connection goes only to a replica the sentinels list as up that answers as one;
  with none, it fails (redis-py's pool would connect to the primary in silence).
- The sentinels are asked within a bound (:mod:`keyspace.discovery`): a hung one is not
  waited for again and again.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from time import monotonic
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.retry
import redis.sentinel
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import (
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
    SlaveNotFoundError,
)
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError

from .connection import HiredisPacking, Pool, client_options
from .discovery import SENTINEL_TIMEOUT_S, BoundedSentinel

SCHEME = "redis+sentinel"
SCHEMES = (SCHEME, "rediss+sentinel")  # rediss: TLS to the data nodes and the sentinels
DEFAULT_SENTINEL_PORT = 26379
# Until a sentinel reported the service's down-after-milliseconds (the first connect asks):
# half of the smallest a deployment plausibly sets.
DEFAULT_STALL_S = 0.5


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
        """Connection options of the sentinels: at most :data:`SENTINEL_TIMEOUT_S` (or
        ``timeout`` when shorter) per question and no retry of their own (the caller's
        retry of the request, and the next sentinel, stand in for it)."""
        bound = min(timeout, SENTINEL_TIMEOUT_S)
        return {
            "username": self.sentinel_username,
            "password": self.sentinel_password,
            "socket_timeout": bound,
            "socket_connect_timeout": bound,
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


def _role(info: bytes | str) -> str:
    """The ``role`` of an ``INFO replication`` reply."""
    text = info.decode() if isinstance(info, bytes) else info
    for line in text.splitlines():
        if line.startswith("role:"):
            return line[5:].strip()
    return "?"


class _NotPrimary(RedisConnectionError):
    """A primary connection's node is not (or no longer) the primary."""


class _NotReplica(RedisConnectionError):
    """A replica connection's node is the primary."""


class _FollowingConnection(SentinelManagedConnection):
    """A connection that finds its node through the sentinels on every (re)connect and, on a
    primary pool, checks what it is told after a stall (module docstring)."""

    _watch = False  # a primary connection past its checks: replies are timed
    _stall_s = DEFAULT_STALL_S
    _sent_at = 0.0
    _heard_at = 0.0

    async def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        # redis-py reconnects here when a command is sent on a closed connection (inside a
        # retry), with the host and port it had: through the sentinels instead.
        if self.is_connected:
            return
        if retry_socket_connect:
            await self.connect()  # type: ignore[no-untyped-call]
        else:
            await self._connect_retry()  # type: ignore[no-untyped-call]

    async def connect_to(self, address: tuple[str, int]) -> None:
        self._watch = False
        self.host, self.port = address
        pool = self.connection_pool
        await super().connect_check_health(  # the socket and handshake, on this address
            check_health=pool.check_connection, retry_socket_connect=False
        )
        try:
            await (self._confirm_primary if pool.is_master else self._confirm_replica)(address)
        except BaseException:
            await self.disconnect()
            raise
        if not pool.is_master:
            return
        self._stall_s = pool.stall_s
        self._heard_at = monotonic()
        self._watch = True

    async def _role(self, unknown: str) -> str:
        await self.send_command("INFO", "replication", check_health=False)
        try:
            return _role(await self.read_response())
        except NoPermissionError:  # a user without INFO: the sentinels' word alone
            return unknown

    async def _confirm_replica(self, address: tuple[str, int]) -> None:
        # A node the sentinels still list as a replica after its promotion: the next one.
        if (role := await self._role("slave")) != "slave":
            raise _NotReplica(f"{self.host}:{self.port} is a {role}, not a replica")

    async def _confirm_primary(self, address: tuple[str, int]) -> None:
        if (role := await self._role("master")) != "master":
            raise _NotPrimary(f"{self.host}:{self.port} is a {role}, not the primary")
        # Asked again after the handshake: one that hung across a failover ends on a node the
        # sentinels have replaced, which still calls itself master until they demote it.
        named = await self.connection_pool.get_master_address()
        if tuple(named) != tuple(address):
            raise _NotPrimary(f"{self.host}:{self.port} is no longer the primary ({named})")

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self.is_connected:
            await self.connect_check_health(check_health=False)
        self._sent_at = monotonic()
        await super().send_packed_command(command, check_health)

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        reply = await super().read_response(*args, **kwargs)
        if self._watch:
            now = monotonic()
            # Waited long, or sent after a long silence: a failover may have replaced the node
            # meanwhile (it cannot within _stall_s: half of down-after-milliseconds).
            if (
                now - self._sent_at > self._stall_s
                or self._sent_at - self._heard_at > self._stall_s
            ):
                await self._still_primary(now)
                self._sent_at = now  # what was read so far is confirmed
            self._heard_at = now
        return reply

    async def _still_primary(self, since: float) -> None:
        try:
            primary = await self.connection_pool.still_primary((self.host, self.port), since)
        except BaseException:
            await self.disconnect()
            raise
        if not primary:
            await self.disconnect()
            raise _NotPrimary(
                f"{self.host}:{self.port} answered after the sentinels named another primary; "
                "its reply is not used (a write it made goes when the node is demoted)"
            )


class _FastSentinelConnection(HiredisPacking, _FollowingConnection):
    pass


class _FastSentinelSSLConnection(
    HiredisPacking, _FollowingConnection, SentinelManagedSSLConnection
):
    pass


class SentinelPool(Pool, SentinelConnectionPool):
    """:class:`~keyspace.connection.Pool` (blocking, with its ``lease``/``give_back`` fast
    path) whose connections find their server through Sentinel, as redis-py's
    ``SentinelConnectionPool``: the address is asked on every (re)connect, idle connections
    to an old primary are closed once a sentinel names another, and one given back is
    closed then too. :meth:`still_primary` answers the connections' checks after a stall."""

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        # BlockingConnectionPool passes its keywords on to SentinelConnectionPool (next in
        # the MRO), which takes the service and the manager by these names.
        super().__init__(service_name=service_name, sentinel_manager=sentinel_manager, **kwargs)
        self._answered_at = -math.inf  # when the sentinels were last asked (successfully)
        self._asking: asyncio.Future[Any] | None = None

    @property
    def stall_s(self) -> float:
        """Half the service's ``down-after-milliseconds``: a primary answering within that
        time cannot have been replaced meanwhile."""
        known: dict[str, float] = getattr(self.sentinel_manager, "down_after_s", {})
        down_after = known.get(self.service_name)
        return down_after / 2 if down_after else DEFAULT_STALL_S

    async def get_master_address(self) -> tuple[str, int]:
        asked = monotonic()
        address: tuple[str, int] = await super().get_master_address()  # type: ignore[no-untyped-call]
        self._answered_at = max(self._answered_at, asked)
        return address

    async def still_primary(self, address: tuple[str, int], since: float) -> bool:
        """Whether a sentinel asked at ``since`` or later names ``address`` the primary;
        concurrent callers share the question. MasterNotFoundError (a connection error)
        when no sentinel names one."""
        while self._answered_at < since:
            asking = self._asking
            if asking is None or asking.get_loop() is not asyncio.get_running_loop():
                asking = self._asking = asyncio.ensure_future(self._ask())
                # Retrieved even when every caller was cancelled meanwhile (no warning).
                asking.add_done_callback(lambda done: done.cancelled() or done.exception())
            await asyncio.shield(asking)
        return self.master_address is not None and tuple(self.master_address) == tuple(address)

    async def _ask(self) -> None:
        try:
            await self.get_master_address()
        finally:
            self._asking = None

    async def rotate_slaves(self) -> AsyncIterator[tuple[str, int]]:
        """The replicas the sentinels list as up, in turn. Unlike redis-py's, never the
        primary: with no replica up a replica connection fails (SlaveNotFoundError, a
        connection error), so ``ReplicaReads`` asks the primary itself, counts the
        fallback and reports the replica unreachable, instead of a replica pool that
        silently reads from the primary."""
        replicas = await self.sentinel_manager.discover_slaves(self.service_name)
        if replicas:
            if self.slave_rr_counter is None:
                self.slave_rr_counter = random.randrange(len(replicas))
            for _ in replicas:
                self.slave_rr_counter = (self.slave_rr_counter + 1) % len(replicas)
                yield replicas[self.slave_rr_counter]
        raise SlaveNotFoundError(f"no replica of {self.service_name!r} is up")

    def _drop_if_moved(self, connection: AbstractConnection) -> None:
        master = self.master_address
        at = (getattr(connection, "host", None), getattr(connection, "port", None))
        if self.is_master and master is not None and at != tuple(master):
            connection.mark_for_reconnect()  # type: ignore[no-untyped-call]  # closed when given back

    async def give_back(self, connection: AbstractConnection) -> None:
        self._drop_if_moved(connection)
        await super().give_back(connection)

    async def release(self, connection: AbstractConnection) -> None:
        self._drop_if_moved(connection)
        await super().release(connection)


def connect_sentinel(
    url: str, *, max_connections: int = 64, timeout: float = 5.0, replica: bool = False
) -> Redis:
    """A pooled asyncio client of the service's primary (``replica``: of one of its replicas;
    a connection error when none is up) with :func:`keyspace.connect`'s properties. No connection
    is opened here."""
    parsed = parse(url)
    sentinel = BoundedSentinel(
        parsed.sentinels,
        sentinel_kwargs={**parsed.sentinel_options(timeout), "retry": Retry(NoBackoff(), 0)},
        budget=timeout,
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


class _SyncFollowingConnection(redis.sentinel.SentinelManagedConnection):
    """The synchronous counterpart of :class:`_FollowingConnection`'s (re)connect: through
    the sentinels, and a primary connection checked after its handshake. (Its users, the
    preflight, send a few commands: replies are not timed.)"""

    def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if self._sock:
            return
        if retry_socket_connect:
            self.connect()  # type: ignore[no-untyped-call]
        else:
            self._connect_retry()  # type: ignore[no-untyped-call]

    def connect_to(self, address: tuple[str, int]) -> None:
        self.host, self.port = address
        pool = self.connection_pool
        super().connect_check_health(check_health=pool.check_connection, retry_socket_connect=False)
        if not pool.is_master:
            return
        try:
            self.send_command("INFO", "replication", check_health=False)  # type: ignore[no-untyped-call]
            try:
                role = _role(self.read_response())
            except NoPermissionError:
                role = "master"
            if role != "master":
                raise _NotPrimary(f"{self.host}:{self.port} is a {role}, not the primary")
            named = pool.get_master_address()
            if tuple(named) != tuple(address):
                raise _NotPrimary(f"{self.host}:{self.port} is no longer the primary ({named})")
        except BaseException:
            self.disconnect()  # type: ignore[no-untyped-call]
            raise


class _SyncFollowingSSLConnection(
    _SyncFollowingConnection, redis.sentinel.SentinelManagedSSLConnection
):
    pass


def sync_primary_client(url: str, timeout: float = 5.0) -> redis.Redis:
    """A synchronous client of the service's primary (the service's preflight, the CLI)."""
    parsed = parse(url)
    no_retry = redis.retry.Retry(NoBackoff(), 0)
    sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        parsed.sentinels, sentinel_kwargs={**parsed.sentinel_options(timeout), "retry": no_retry}
    )
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        parsed.service,
        connection_class=_SyncFollowingSSLConnection if parsed.tls else _SyncFollowingConnection,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        **parsed.node_options(),
    )
    return client
