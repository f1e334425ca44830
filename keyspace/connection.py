"""Creating the Redis client the keyspace expects."""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


def connect(url: str, *, max_connections: int = 64, timeout: float = 5.0) -> Redis:
    """A pooled asyncio client for ``url`` (``redis://`` or ``rediss://``).

    RESP2 and raw bytes: revisions hash the exact bytes the server stores, and
    replies are parsed in one documented shape. No connection is opened here.
    """
    # A blocking pool makes a burst of requests wait for a connection instead of failing.
    pool = BlockingConnectionPool.from_url(
        url,
        timeout=timeout,
        protocol=2,
        decode_responses=False,
        max_connections=max_connections,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=15,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.02), retries=2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return Redis.from_pool(pool)


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
