"""``keyspace.connect`` with a ``redis+sentinel://`` URL keeps what ``redis://`` gives: RESP2 and
raw bytes, the hiredis packing, the blocking pool with its lease fast path (a burst waits for
a connection instead of failing), and it reaches the primary; ``connect_replica`` the
replica."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError

from keyspace import USER, Keyspace, connect, connect_replica, ha
from keyspace.connection import HiredisPacking, Pool, check_client
from keyspace.sentinel import SentinelPool, sync_primary_client

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


async def _info_port(connection: AbstractConnection) -> int:
    await connection.send_command("INFO", "server")
    info = (await connection.read_response()).decode()
    return int(next(line for line in info.splitlines() if line.startswith("tcp_port:"))[9:])


@pytest.mark.parametrize("replica", [False, True], ids=["primary", "replica"])
async def test_a_dropped_connection_reconnects_by_sending_through_the_sentinels(
    ha_cluster: ha.Cluster, replica: bool
) -> None:
    # What a retry does: close the connection, send on it again. redis-py reconnects there
    # with the host and port the connection had: here a stale one, the other node's.
    primary, secondary = ha_cluster.ports.nodes
    found, stale = (secondary, primary) if replica else (primary, secondary)
    client = (connect_replica if replica else connect)(ha_cluster.url(), max_connections=1)
    try:
        pool = client.connection_pool
        assert isinstance(pool, SentinelPool)
        connection = await pool.lease()
        try:
            assert await _info_port(connection) == found
            await connection.disconnect()
            connection.port = stale  # type: ignore[attr-defined]
            assert await _info_port(connection) == found
        finally:
            await pool.give_back(connection)
    finally:
        await client.aclose()


async def test_a_node_the_sentinels_name_is_refused_when_it_is_a_replica(
    ha_cluster: ha.Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    replica_at = ("127.0.0.1", ha_cluster.ports.nodes[1])
    client = connect(ha_cluster.url(), max_connections=1)
    try:
        pool = client.connection_pool
        assert isinstance(pool, SentinelPool)

        async def stale(service: str) -> tuple[str, int]:
            return replica_at  # a sentinel that has not seen the failover yet

        monkeypatch.setattr(pool.sentinel_manager, "discover_master", stale)
        with pytest.raises(RedisConnectionError, match="is a slave, not the primary"):
            await client.ping()
        monkeypatch.undo()
        assert await _port(client) == ha_cluster.ports.nodes[0]
    finally:
        await client.aclose()


async def test_a_reply_after_a_stall_is_used_only_while_the_sentinels_name_its_node(
    ha_cluster: ha.Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    primary = ha_cluster.ports.nodes[0]
    client = connect(ha_cluster.url(), max_connections=2)
    try:
        pool = client.connection_pool
        assert isinstance(pool, SentinelPool)
        connection = await pool.lease()
        asked: list[str] = []
        discover = pool.sentinel_manager.discover_master

        async def counted(service: str) -> Any:
            asked.append(service)
            return await discover(service)

        monkeypatch.setattr(pool.sentinel_manager, "discover_master", counted)
        try:
            assert await _info_port(connection) == primary  # quick: nobody asked
            assert asked == []
            connection._stall_s = 0.0  # type: ignore[attr-defined]  # every reply "waited"
            assert await _info_port(connection) == primary  # asked, still the primary
            assert asked == [ha_cluster.service]

            async def moved(service: str) -> tuple[str, int]:
                return ("127.0.0.1", ha_cluster.ports.nodes[1])  # as after a failover

            monkeypatch.setattr(pool.sentinel_manager, "discover_master", moved)
            with pytest.raises(RedisConnectionError, match="named another primary"):
                await _info_port(connection)
            assert not connection.is_connected
        finally:
            await pool.give_back(connection)
        # Told of another primary, the pool closes what is still connected to the old one.
        idle = pool._available_connections
        assert idle and not any(c.is_connected for c in idle)
    finally:
        monkeypatch.undo()
        await client.aclose()


def test_the_sync_client_reconnects_by_sending_through_the_sentinels(
    ha_cluster: ha.Cluster,
) -> None:
    primary, replica = ha_cluster.ports.nodes
    with sync_primary_client(ha_cluster.url()) as client:
        assert int(client.info("server")["tcp_port"]) == primary
        connection = client.connection_pool.get_connection()
        try:
            connection.disconnect()
            connection.port = replica
            connection.send_command("INFO", "server")
            assert f"tcp_port:{primary}\r\n" in connection.read_response().decode()
        finally:
            client.connection_pool.release(connection)
