"""keyspace.connect's pool: the lean lease the scripts use keeps the pool's guarantees."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from keyspace import connect
from keyspace.connection import Pool, call
from keyspace.server import EmbeddedRedis

pytestmark = pytest.mark.redis


def _pool(client: Redis) -> Pool:
    pool = client.connection_pool
    assert isinstance(pool, Pool)
    return pool


async def test_lease_reuses_an_idle_connection(real_client: Redis) -> None:
    pool = _pool(real_client)
    first = await pool.lease()
    await first.send_command("PING")
    assert await first.read_response() == b"PONG"
    await pool.give_back(first)
    again = await pool.lease()
    assert again is first
    assert first in pool._in_use_connections and first not in pool._available_connections
    await pool.give_back(again)
    assert first in pool._available_connections and not pool._in_use_connections


async def test_a_full_pool_makes_a_lease_wait_for_a_give_back(redis_server: EmbeddedRedis) -> None:
    client = connect(redis_server.url, max_connections=1, timeout=5.0)
    pool = _pool(client)
    try:
        held = await pool.lease()
        waiting = asyncio.create_task(pool.lease())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await pool.give_back(held)
        woken = await asyncio.wait_for(waiting, 2)
        assert woken is held
        await pool.give_back(woken)
    finally:
        await client.aclose()


async def test_a_full_pool_times_out_like_get_connection(redis_server: EmbeddedRedis) -> None:
    client = connect(redis_server.url, max_connections=1, timeout=0.1)
    pool = _pool(client)
    try:
        held = await pool.lease()
        with pytest.raises(RedisConnectionError, match="No connection available"):
            await pool.lease()
        await pool.give_back(held)
    finally:
        await client.aclose()


async def test_a_connection_the_server_closed_is_reconnected(
    real_client: Redis, redis_server: EmbeddedRedis
) -> None:
    pool = _pool(real_client)
    connection = await pool.lease()
    await connection.send_command("CLIENT", "ID")
    old_id = await connection.read_response()
    await pool.give_back(connection)
    killer = connect(redis_server.url)
    try:
        await call(killer, "CLIENT", "KILL", "ID", old_id)
    finally:
        await killer.aclose()
    await asyncio.sleep(0.05)
    again = await pool.lease()
    try:
        await again.send_command("CLIENT", "ID")
        assert await again.read_response() != old_id
    finally:
        await pool.give_back(again)


async def test_a_connection_with_unread_data_is_not_handed_out(real_client: Redis) -> None:
    pool = _pool(real_client)
    connection = await pool.lease()
    await connection.send_command("PING")  # the reply is never read
    await pool.give_back(connection)
    await asyncio.sleep(0.05)
    again = await pool.lease()
    try:
        await again.send_command("ECHO", "mine")
        assert await again.read_response() == b"mine"
    finally:
        await pool.give_back(again)
