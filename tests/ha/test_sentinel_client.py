"""``keyspace.connect`` with a ``redis+sentinel://`` URL keeps what ``redis://`` gives: RESP2 and
raw bytes, the hiredis packing, the blocking pool with its lease fast path (a burst waits for
a connection instead of failing), and it reaches the primary; ``connect_replica`` the
replica."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from keyspace import USER, Keyspace, connect, connect_replica, ha
from keyspace.connection import HiredisPacking, Pool, check_client
from keyspace.sentinel import SentinelPool

from .conftest import user_body

pytestmark = pytest.mark.redis


async def _port(client: Redis) -> int:
    return int((await client.info("server"))["tcp_port"])


async def test_the_primary_through_sentinel_with_the_pool_s_properties(
    ha_cluster: ha.Cluster,
) -> None:
    client = connect(ha_cluster.url(admin=True), max_connections=1, timeout=5)
    try:
        pool = client.connection_pool
        assert isinstance(pool, SentinelPool) and isinstance(pool, Pool)
        assert issubclass(pool.connection_class, HiredisPacking)
        check_client(client)  # RESP2, raw bytes
        assert await _port(client) == ha_cluster.ports.nodes[0]
        ks = Keyspace(client)
        await ks.setup()
        stored = await ks.create(USER, user_body("SentinelLease"))  # through Pool.lease
        assert isinstance(stored.raw, bytes)
        assert not pool._in_use_connections  # given back
        # One connection, two leases: the second waits for the first instead of failing.
        first = await pool.lease()
        second = asyncio.ensure_future(pool.lease())
        await asyncio.sleep(0.1)
        assert not second.done()
        await pool.give_back(first)
        await pool.give_back(await asyncio.wait_for(second, 5))
    finally:
        await client.aclose()


async def test_the_replica_through_sentinel(ha_cluster: ha.Cluster) -> None:
    reader = connect_replica(ha_cluster.url())
    try:
        check_client(reader)
        assert issubclass(reader.connection_pool.connection_class, HiredisPacking)
        assert (await reader.info("replication"))["role"] == "slave"
        assert await _port(reader) == ha_cluster.ports.nodes[1]
    finally:
        await reader.aclose()
