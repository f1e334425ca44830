"""One script call on the wire: EVALSHA, and the WAIT that follows a durable write, sent on
one connection of the client's pool.

redis-py's own script call path adds ~14 µs of client CPU to every call and its pool ~18 µs
more (docs/profiling.md), so keyspace.scripts sends EVALSHA through here, on a connection
leased from ``keyspace.connect``'s pool (through any other pool's own calls otherwise). WAIT
counts what its own connection wrote, so it goes out with the script, in the same write on
the same connection. Apart from keyspace.scripts, which registers the scripts, decides which
may be sent twice and what their replies mean.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from .connection import Pool
from .plan import Arg

Wait = tuple[str, int, int] | None
"""``WAIT replicas timeout`` to pipeline after a script (Durability.wait), or None."""


class Sent(NamedTuple):  # a tuple: made on every script call, at a fraction of a dataclass's cost
    """A script's reply, and how many replicas confirmed it (None: no WAIT was sent)."""

    reply: Any
    confirmed: int | None = None


async def _round_trip(connection: AbstractConnection, args: tuple[Arg, ...], wait: Wait) -> Sent:
    if wait is None:
        await connection.send_command("EVALSHA", *args)
        return Sent(await connection.read_response())
    # One write of both commands: the WAIT costs no round trip of its own, only the time the
    # replicas take to confirm. WAIT counts what this connection wrote, the script included.
    await connection.send_packed_command(connection.pack_commands([("EVALSHA", *args), wait]))
    try:
        reply = await connection.read_response()
    except ResponseError:
        # The script failed (NOSCRIPT: it did not run): nothing to confirm. Dropping the
        # connection discards WAIT's reply, which, without replicas, comes only after the
        # timeout; no later command can read it as its own.
        await connection.disconnect()
        raise
    return Sent(reply, await _wait_reply(connection))


async def _wait_reply(connection: AbstractConnection) -> int:
    try:
        confirmed: int = await connection.read_response()
    except ResponseError as exc:
        if "replica" not in str(exc):
            raise
        # A refused script (it wrote nothing) on a primary that a failover demoted: as
        # READONLY would, reconnect, so that the next connection finds the new primary.
        await connection.disconnect()
        raise RedisConnectionError(f"the server is no longer the primary: {exc}") from None
    return confirmed


async def _exchange(
    connection: AbstractConnection, args: tuple[Arg, ...], retry: bool, wait: Wait
) -> Sent:
    """EVALSHA (then ``wait``) on ``connection``; ``retry`` applies the client's retry policy."""
    if not retry:
        # An error or a cancel while sending or reading disconnects the connection
        # (redis-py), so a late reply can never be read as another command's.
        return await _round_trip(connection, args, wait)
    return await connection.retry.call_with_retry(
        lambda: _round_trip(connection, args, wait), lambda _: connection.disconnect()
    )


async def send_pooled(client: Redis, *args: Arg, retry: bool, wait: Wait) -> Sent:
    # One pooled connection, as execute_command uses, without its per-call layers
    # (argument filtering, metrics, option parsing) and, from keyspace.connect's
    # pool, without the pool's own (docs/profiling.md). WAIT needs the connection that
    # wrote, so it goes on this one.
    pool = client.connection_pool
    if isinstance(pool, Pool):
        leased = await pool.lease()
        try:
            return await _exchange(leased, args, retry, wait)
        finally:
            await pool.give_back(leased)
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        return await _exchange(connection, args, retry, wait)
    finally:
        await pool.release(connection)


async def lease(client: Redis) -> AbstractConnection:
    """A connection of ``client``'s pool, held until :func:`give_back` (a pipelined batch
    reads its replies on the connection that sent it)."""
    pool = client.connection_pool
    if isinstance(pool, Pool):
        return await pool.lease()
    connection: AbstractConnection = await pool.get_connection()  # type: ignore[no-untyped-call]
    return connection


async def give_back(client: Redis, connection: AbstractConnection) -> None:
    pool = client.connection_pool
    if isinstance(pool, Pool):
        await pool.give_back(connection)
    else:
        await pool.release(connection)
