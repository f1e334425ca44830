"""``MULTIFRAME_MIN_REPLICAS`` with a replica attached (the session's primary, replica and
sentinels): a confirmed write is acknowledged and is on the replica the moment it is; more
replicas required than attached is NotDurable counting the one that confirmed; a refused
script on a node that is no longer a primary (WAIT refused there) reads as a failover."""

from __future__ import annotations

import os
import signal

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


def _replica_of(cluster: ha.Cluster) -> str:
    for name in ha.NODES:
        with redis.Redis.from_url(cluster.node_url(name)) as node:
            if node.info("replication")["role"] == "slave":
                return name
    raise AssertionError("no node is a replica")


async def test_a_not_durable_write_is_confirmed_only_by_writing_it_again(
    ha_cluster: ha.Cluster,
) -> None:
    """README "API behaviour": a read of a not_durable write finds it on the primary, which
    says nothing about the replicas; writing the same document again with If-Match its
    revision is acknowledged only once its WAIT covers the first write too."""
    replica = _replica_of(ha_cluster)
    pid = ha_cluster.pids[replica]
    client = connect(ha_cluster.url(admin=True))
    try:
        ks = Keyspace(client, durability=Durability(1, timeout_ms=300))
        await ks.setup()
        os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises(NotDurable) as caught:
                await ks.create(USER, user_body("DurableConfirmLater"))
            named = caught.value.details
            found = await ks.get(USER, named["id"])
            assert found.revision == named["revision"]  # on the primary: proves nothing
            with pytest.raises(NotDurable):  # the replica is still away: not confirmed again
                await ks.replace(USER, named["id"], found.doc, if_revision=named["revision"])
        finally:
            os.kill(pid, signal.SIGCONT)
        confirmed = await ks.replace(USER, named["id"], found.doc, if_revision=named["revision"])
        assert confirmed.revision == named["revision"]  # the same bytes, now on the replica
        with redis.Redis.from_url(ha_cluster.node_url(replica)) as node:
            stored = node.execute_command("JSON.GET", USER.key(named["id"]), ".")
            assert stored == confirmed.raw
    finally:
        await client.aclose()
