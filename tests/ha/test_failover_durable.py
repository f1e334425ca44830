"""The failover of tests/ha/test_failover.py with ``MULTIFRAME_MIN_REPLICAS=1``: SIGKILL the
primary under a mixed read/write load through the API; a sentinel promotes the replica and the
service follows by itself. With its only replica promoted the new primary has none, so writes
answer 503 ``not_durable`` (never a 2xx) until the killed node is started again as its replica
(``ha.restart``, as a supervisor would); then they are acknowledged again.

Asserted: every create that got a 201 is on the new primary (counted; none missing), no id was
acknowledged for two documents, the counter on the new primary is at or past every acknowledged
id, each document a ``not_durable`` answer named holds what that request sent, no 500, and
``check`` is clean on the new primary."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from keyspace import USER, ha
from keyspace.acl import AclUsers
from keyspace.keys import counter_key, counter_value_of
from scripts.cli import run_cli

from .conftest import Seen, api, load_client

pytestmark = pytest.mark.redis

UNAVAILABLE = ("redis_unavailable", "not_ready", "not_durable")
PROMOTION_BOUND_S = 15.0  # kill to the sentinels naming the replica the primary
UNCONFIRMED_BOUND_S = 10.0  # promotion to the first create answered not_durable
RECOVERY_BOUND_S = 15.0  # restart of the killed node to the first run of acknowledged creates
SETTLED = 10  # this many 201 creates in a row: writes are acknowledged again
WAIT_MS = "500"


@dataclass(frozen=True)
class Load:
    clients: int
    before_s: float  # load before the kill
    after_s: float  # at least this long after the writes recovered


CI = Load(clients=8, before_s=1.5, after_s=2.0)
SOAK = Load(clients=32, before_s=5.0, after_s=10.0)


def _creates_recovered_at(seen: Seen, since: float) -> float | None:
    """The start of the first run of SETTLED 201 creates after ``since``."""
    run, start = 0, None
    for at, kind, reply in seen.replies:
        if at < since or kind != "create":
            continue
        if reply.status == 201:
            start = at if run == 0 else start
            run += 1
            if run >= SETTLED:
                return start
        else:
            run = 0
    return None


async def _promoted(cluster: ha.Cluster) -> None:
    deadline = time.monotonic() + PROMOTION_BOUND_S
    while (await asyncio.to_thread(ha.status, cluster)).get("redis-2") != "master":
        assert time.monotonic() < deadline, "the replica was not promoted"
        await asyncio.sleep(0.2)


@pytest.mark.parametrize(
    "load", [pytest.param(CI, id="ci"), pytest.param(SOAK, id="soak", marks=pytest.mark.soak)]
)
async def test_with_min_replicas_every_acknowledged_write_survives_a_failover(
    tmp_path: Path, load: Load
) -> None:
    cluster = await asyncio.to_thread(ha.up, tmp_path / "ha", ha.Ports.free(), acl=AclUsers())
    durable = {"MULTIFRAME_MIN_REPLICAS": "1", "MULTIFRAME_MIN_REPLICAS_TIMEOUT_MS": WAIT_MS}
    try:
        async with api(cluster.url(), tmp_path, **durable) as served:
            seen, stop, names = Seen(), asyncio.Event(), itertools.count()
            clients = [
                asyncio.create_task(load_client(n, served.port, seen, stop, names))
                for n in range(load.clients)
            ]
            await asyncio.sleep(load.before_s)
            before = len(seen.created)
            killed = time.monotonic()
            await asyncio.to_thread(ha.kill, cluster, "redis-1")
            await _promoted(cluster)
            promoted = time.monotonic()
            # The promoted node has no replica: creates are written and answered not_durable.
            while not seen.unconfirmed:
                assert time.monotonic() - promoted < UNCONFIRMED_BOUND_S, "no not_durable"
                await asyncio.sleep(0.1)
            restarting = time.monotonic()
            await asyncio.to_thread(ha.restart, cluster, "redis-1")
            restarted = time.monotonic()
            deadline = restarted + RECOVERY_BOUND_S + load.after_s
            while time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                recovered = _creates_recovered_at(seen, restarted)
                if recovered is not None and time.monotonic() - recovered >= load.after_s:
                    break
            stop.set()
            await asyncio.gather(*clients)
            assert served.proc.poll() is None, "the API died"

        recovered = _creates_recovered_at(seen, restarted)
        statuses = sorted({(kind, r.status, r.code) for _, kind, r in seen.replies})
        assert recovered is not None, f"writes were not acknowledged again: {statuses}"
        assert recovered - restarted < RECOVERY_BOUND_S
        assert not seen.transport_errors, seen.transport_errors[:5]
        for at, kind, reply in seen.replies:
            if reply.status >= 500:
                assert reply.status == 503 and reply.code in UNAVAILABLE, (kind, reply)
                assert reply.retry_after is not None, (kind, reply)
            else:
                assert reply.status in (200, 201), (kind, reply)  # no acknowledged create lost
            if reply.code == "not_durable":
                assert kind == "create" and at > killed, (at - killed, reply)
        assert before > 0 and len(seen.created) > before, "writes before and after the kill"
        # While the promoted node had no replica, no create was acknowledged.
        alone = [r for at, k, r in seen.replies if promoted < at < restarting and k == "create"]
        assert {r.code for r in alone} <= {"not_durable", "redis_unavailable"}, alone

        roles = await asyncio.to_thread(ha.status, cluster)
        assert roles["redis-1"] == "slave" and roles["redis-2"] == "master", roles
        with redis.Redis.from_url(cluster.node_url("redis-2")) as new_primary:
            present = [
                new_primary.json().get(USER.key(i), "$.username") == [name]
                for i, name in seen.created
            ]
            counter = int(new_primary.get(counter_key(USER.prefix)) or 0)
            # A create answered not_durable names its id: whatever holds that id now is the
            # document that request sent, if anything (how a client checks before retrying).
            named = [
                (d["id"], new_primary.json().get(USER.key(d["id"]), "$.username"), n)
                for d, n in seen.unconfirmed
            ]
        lost = present.count(False)
        ids = [i for i, _ in seen.created]
        reissued = len(ids) - len(set(ids))
        print(
            f"\ndurable failover ({load.clients} clients): {len(seen.created)} creates "
            f"acknowledged, {lost} missing on the new primary, {reissued} ids issued twice; "
            f"{len(seen.unconfirmed)} answered not_durable, "
            f"{sum(bool(held) for _, held, _ in named)} of them there; writes acknowledged "
            f"again {recovered - restarted:.2f}s after the restart, {len(seen.replies)} requests"
        )
        assert lost == 0
        assert reissued == 0
        assert counter >= max(counter_value_of(USER.prefix, i) or 0 for i in ids)
        assert all(held in ([], [name]) for _, held, name in named), named
        assert await run_cli(["--redis-url", cluster.url(admin=True), "check"]) == 0
    finally:
        await asyncio.to_thread(ha.down, tmp_path / "ha")
