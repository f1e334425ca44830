"""Creating the Redis client the keyspace expects."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import hiredis
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
    parse_url,
)
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


class HiredisPacking(AbstractConnection):
    """Packs commands with hiredis, as redis-py's synchronous client already does.

    The asyncio client packs in Python, which costs a commit (two dozen
    arguments) about 17 us against 3 us here: the largest client-side cost of a
    create after validation (docs/benchmarks.md, "Profile").
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str):
            args = (*args[0].encode().split(), *args[1:])
        elif b" " in args[0]:
            args = (*args[0].split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:  # a type hiredis does not pack (memoryview): redis-py's own way
            return super().pack_command(*args)


class _FastConnection(HiredisPacking, Connection):
    pass


class _FastSSLConnection(HiredisPacking, SSLConnection):
    pass


class _FastUnixConnection(HiredisPacking, UnixDomainSocketConnection):
    pass


_FAST: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: _FastConnection,
    SSLConnection: _FastSSLConnection,
    UnixDomainSocketConnection: _FastUnixConnection,
}


class Pool(BlockingConnectionPool):
    """redis-py's blocking pool, with a lean lease for the one script call each request makes.

    ``get_connection`` and ``release`` take the pool's condition and a timeout scope, check
    deprecated arguments and call observability hooks and an event dispatcher: ~18 us of
    client CPU per call under load, a third of a script call (docs/profiling.md).
    :meth:`lease` takes an idle connection directly and :meth:`give_back` returns it under
    the condition, waking one waiter, without the hooks: :func:`connect` configures no
    metrics exporter and no credential provider that listens for releases. With no idle
    connection, :meth:`lease` waits in ``get_connection`` as usual.
    """

    on_disconnect: Callable[[], Awaitable[None]] | None = None
    """Also closed by :meth:`disconnect` (``client.aclose()``): the pipeliner's connections."""

    async def disconnect(self, inuse_connections: bool = True) -> None:
        if self.on_disconnect is not None:
            await self.on_disconnect()
        await super().disconnect(inuse_connections)

    async def lease(self) -> AbstractConnection:
        if not self._available_connections:
            connection: AbstractConnection = await self.get_connection()  # type: ignore[no-untyped-call]
            return connection
        connection = self._available_connections.pop()
        self._in_use_connections.add(connection)
        try:
            # As get_connection does: reconnect one the server closed, refuse one with
            # unread data.
            await self.ensure_connection(connection)
        except BaseException:
            await self.give_back(connection)
            raise
        return connection

    async def give_back(self, connection: AbstractConnection) -> None:
        async with self._condition:
            self._in_use_connections.remove(connection)
            if connection.should_reconnect():  # type: ignore[no-untyped-call]
                await connection.disconnect()
            self._available_connections.append(connection)
            self._condition.notify()


class _Timed(AbstractConnection):
    """Reports each round trip: from sending commands (one command, a pipeline, a script and
    its WAIT) to the first reply read. The rest of a pipeline's replies are in the same
    buffer by then, and a WAIT's is time spent waiting for replicas, not a round trip."""

    observe: Callable[[float], None]  # set per pool by observe_round_trips
    _sent = 0.0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        started = time.perf_counter()
        await super().send_packed_command(command, check_health)
        # Set after the send: a health check's PING inside it was read, and timed, already.
        self._sent = started

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        sent, self._sent = self._sent, 0.0
        try:
            reply = await super().read_response(*args, **kwargs)
        except ResponseError:  # an error reply is a round trip too
            if sent:
                self.observe(time.perf_counter() - sent)
            raise
        if sent:
            self.observe(time.perf_counter() - sent)
        return reply


def observe_round_trips(client: Redis, observe: Callable[[float], None]) -> None:
    """Call ``observe(seconds)`` after each round trip of the connections ``client``'s pool
    makes from now on (before its first command: all of them). Calling it again replaces
    ``observe``. ``observe`` runs on the event loop: it must be quick."""
    from .pipelining import pipeliner

    pipelined = pipeliner(client)
    if pipelined is not None:
        pipelined.observe = observe
    pool = client.connection_pool
    base: type[AbstractConnection] = getattr(
        pool.connection_class, "untimed", pool.connection_class
    )
    pool.connection_class = type(
        f"Timed{base.__name__}",
        (_Timed, base),
        {"observe": staticmethod(observe), "untimed": base},
    )


def client_options(timeout: float) -> dict[str, Any]:
    """The options every pool of :func:`connect` gets: RESP2, raw bytes, timeouts and the
    retry policy (a dropped connection or a timeout is retried twice, quickly)."""
    return {
        "protocol": 2,
        "decode_responses": False,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": 15,
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.02), retries=2),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
    }


URL_FORMS = (
    "redis://[user:password@]host:port/db or "
    "redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]"
)


def check_url(url: str) -> None:
    """ValueError, with a message that never quotes a password, unless :func:`connect` can
    make a client of ``url``: a scheme it knows and a host, port and db it can parse."""
    from .sentinel import SCHEMES, parse  # it builds on this module

    scheme = url.partition("://")[0].lower()
    if scheme not in ("redis", "rediss", "unix", *SCHEMES):
        raise ValueError(f"not a Redis URL; use {URL_FORMS}")
    if scheme in SCHEMES:
        parse(url)
        return
    try:
        parse_url(url)
    except ValueError as exc:  # redis-py's messages name the part, never the password
        raise ValueError(f"not a Redis URL ({exc}); use {URL_FORMS}") from None


def connect(
    url: str, *, max_connections: int = 64, timeout: float = 5.0, pipelining: bool = True
) -> Redis:
    """A pooled asyncio client for ``url`` (``redis://``, ``rediss://``, ``unix://``, or
    ``redis+sentinel://``: the primary found through Sentinel, :mod:`keyspace.sentinel`).

    RESP2 and raw bytes: revisions hash the exact bytes the server stores, and
    replies are parsed in one documented shape. No connection is opened here.
    ``pipelining``: the keyspace's scripts and reads by id from concurrent callers share one
    connection's writes and reads (:mod:`keyspace.pipelining`); not through Sentinel, whose
    connections confirm a reply after a stall with the sentinels one command at a time.
    """
    from .pipelining import attach  # it builds on this module
    from .sentinel import connect_sentinel, is_sentinel

    if is_sentinel(url):
        return connect_sentinel(url, max_connections=max_connections, timeout=timeout)
    # A blocking pool makes a burst of requests wait for a connection instead of failing.
    pool = Pool.from_url(
        url, timeout=timeout, max_connections=max_connections, **client_options(timeout)
    )
    pool.connection_class = _FAST.get(pool.connection_class, pool.connection_class)
    client = Redis.from_pool(pool)
    if pipelining:
        attach(client, timeout=timeout)
    return client


def connect_replica(
    url: str, *, max_connections: int = 64, timeout: float = 5.0, pipelining: bool = True
) -> Redis:
    """A client for the pure reads (``Keyspace(reader=...)``): through Sentinel, one of the
    service's replicas (a connection error while none is up: ``Keyspace`` then reads from
    the primary, counted); otherwise the server ``url`` names
    (a replica's own URL). Same properties as :func:`connect`."""
    from .sentinel import connect_sentinel, is_sentinel

    if is_sentinel(url):
        return connect_sentinel(url, max_connections=max_connections, timeout=timeout, replica=True)
    return connect(url, max_connections=max_connections, timeout=timeout, pipelining=pipelining)


def check_client(client: Redis) -> None:
    """Refuse clients whose replies the keyspace cannot read."""
    options = client.connection_pool.connection_kwargs
    if options.get("decode_responses"):
        raise ValueError("Keyspace needs a client with decode_responses=False")
    if str(options.get("protocol", 2)) not in ("2", "None"):
        raise ValueError("Keyspace needs a RESP2 client (protocol=2); use keyspace.connect(url)")


async def call(client: Redis, *args: str | bytes | int | float) -> Any:
    """Send one raw command; redis-py leaves ``execute_command`` untyped."""
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]
