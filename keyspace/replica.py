"""Where pure reads go under ``MULTIFRAME_READ_FROM=replica``: the replica, or the primary
while the replica cannot be reached.

A read the replica fails to answer for lack of a connection (refused, reset, timed out,
loading, or cut off from its primary: ``MASTERDOWN``) is asked again of the primary, and
the replica is left alone for :data:`RETRY_SECONDS` (so a replica that is down costs one
failed attempt per period, not one per read), then tried again. The primary's answer is
never staler than the replica's, so a fallback changes no guarantee; it is counted
(:attr:`ReplicaReads.fallbacks`) and logged once per outage.

Readiness asks the reader's server its role: one that is a primary (a replica promoted by a
failover while connected, or ``MULTIFRAME_REPLICA_URL`` naming a primary) is reported as
such, its connections are closed and reads are left to the primary (counted) as for a replica
that is down. Through Sentinel a new reader connection only ever goes to a replica
(:meth:`keyspace.sentinel.SentinelPool.rotate_slaves`), never to the primary in silence.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger("multiframe.replica")

T = TypeVar("T")

RETRY_SECONDS = 5.0
PROBE_SECONDS = 1.0  # readiness's PING of the replica, within the probe's own time


def _unreachable(exc: BaseException) -> bool:
    """The replica could not answer (``OSError``: TimeoutError and the socket's errors; a
    loading server is a redis-py ConnectionError), as opposed to a refused command."""
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError):
        return True
    return isinstance(exc, ResponseError) and str(exc).startswith("MASTERDOWN")


class ReplicaReads:
    """The client of each pure read: ``reader`` (a replica) unless the read asks to be
    fresh or the replica is being left alone; ``reader is primary``: no replica."""

    def __init__(self, primary: Redis, reader: Redis) -> None:
        self.primary = primary
        self.reader = reader
        self.fallbacks = 0  # reads the primary answered instead of the replica
        self._down_until = 0.0
        self._down = False

    @property
    def separate(self) -> bool:
        """Whether pure reads have a replica of their own."""
        return self.reader is not self.primary

    def client(self, fresh: bool = False) -> Redis:
        """Where a read goes now (``fresh``: the primary)."""
        if fresh or time.monotonic() < self._down_until:
            return self.primary
        return self.reader

    async def run(self, read: Callable[[Redis], Awaitable[T]], *, fresh: bool = False) -> T:
        """``read(client)`` on :meth:`client`, asked again of the primary when the replica
        cannot answer it."""
        client = self.client(fresh)
        if client is self.primary:
            if self.separate and not fresh:
                self.fallbacks += 1
            return await read(client)
        try:
            answer = await read(client)
        except (RedisError, OSError) as exc:
            if not _unreachable(exc):
                raise
            self._failed(exc)
        else:
            self._answered()
            return answer
        self.fallbacks += 1
        return await read(self.primary)

    async def state(self) -> str | None:
        """For readiness: None without a replica, else ``"ok"``, ``"unreachable"`` or
        ``"primary"`` (the reader's server is a primary). One question, at most
        :data:`PROBE_SECONDS`; its outcome also steers the reads."""
        if not self.separate:
            return None
        try:
            async with asyncio.timeout(PROBE_SECONDS):
                role = await self._role()
        except (RedisError, OSError) as exc:  # TimeoutError included
            self._failed(exc)
            return "unreachable"
        if role == "master":
            self._failed(RedisConnectionError("the reader's server is a primary, not a replica"))
            # Connections opened anew go through the replica checks (Sentinel: to a replica).
            await self.reader.connection_pool.disconnect()
            return "primary"
        self._answered()
        self._down_until = 0.0  # it answers: reads may go there again at once
        return "ok"

    async def _role(self) -> str:
        """The reader's server's replication role (``"slave"`` when it refuses INFO but
        answers PING: nothing says otherwise)."""
        try:
            info = await self.reader.info("replication")
        except ResponseError as exc:  # NOPERM, or a server without INFO
            if _unreachable(exc):
                raise
            await self.reader.ping()
            return "slave"
        return str(info.get("role", "slave"))

    def _failed(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + RETRY_SECONDS
        if not self._down:
            self._down = True
            log.warning(
                "the replica cannot answer (%s: %s): pure reads go to the primary, and the "
                "replica is tried again every %gs",
                type(exc).__name__,
                exc,
                RETRY_SECONDS,
            )

    def _answered(self) -> None:
        if self._down:
            self._down = False
            log.warning("the replica answers again: pure reads go to it")
