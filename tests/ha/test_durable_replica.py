"""``MULTIFRAME_MIN_REPLICAS`` with a replica attached (the session's primary, replica and
sentinels): a confirmed write is acknowledged and is on the replica the moment it is; more
replicas required than attached is NotDurable counting the one that confirmed; a refused
script on a node that is no longer a primary (WAIT refused there) reads as a failover."""

from __future__ import annotations

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError

from keyspace import USER, Durability, Keyspace, NotDurable, connect, ha
from keyspace.plan import Plan

from .conftest import user_body

pytestmark = pytest.mark.redis


async def test_a_confirmed_write_is_on_the_replica_when_it_is_acknowledged(
    ha_cluster: ha.Cluster,
) -> None:
    client = connect(ha_cluster.url(admin=True))
    try:
        ks = Keyspace(client, durability=Durability(1, timeout_ms=2000))
        await ks.setup()
        created = await ks.create(USER, user_body("DurableConfirmed"))
        doc_id = created.doc["user_id"]
        patched = await ks.patch(USER, doc_id, {"role": "designer"})
        with redis.Redis.from_url(ha_cluster.node_url("redis-2")) as replica:
            # Read at once, no polling: WAIT returned once the replica had applied it.
            assert replica.execute_command("JSON.GET", USER.key(doc_id), ".") == patched.raw

        two = Keyspace(client, durability=Durability(2, timeout_ms=100))
        with pytest.raises(NotDurable) as caught:
            await two.create(USER, user_body("DurableTwoWanted"))
        assert caught.value.details["replicas"] == {"required": 2, "confirmed": 1}
    finally:
        await client.aclose()


async def test_a_refused_script_on_a_replica_reads_as_a_failover(ha_cluster: ha.Cluster) -> None:
    primary = connect(ha_cluster.url(admin=True))
    demoted = connect(ha_cluster.node_url("redis-2"))  # as a demoted primary would answer
    try:
        taken = await Keyspace(primary).create(USER, user_body("DurableOnReplica"))
        key = USER.key(taken.doc["user_id"])
        plan = Plan(USER.names.pause_key())
        plan.check("absent", key)  # refused: the script writes nothing, so no READONLY
        plan.write("sadd", "mf:ref:durable-replica-probe", "x")
        with redis.Redis.from_url(ha_cluster.node_url("redis-2")) as replica:
            assert replica.exists(key)  # replicated: the check refuses there too
        ks = Keyspace(demoted, durability=Durability(1, timeout_ms=100))
        with pytest.raises(RedisConnectionError, match="no longer the primary"):
            await ks.commit(plan)
    finally:
        await primary.aclose()
        await demoted.aclose()
