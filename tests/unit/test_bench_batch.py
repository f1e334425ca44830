"""The batch create row of the writes benchmark (bench/writes.py), run briefly on fakeredis:
each call creates PIPELINE documents in one script, none refused."""

from __future__ import annotations

from pathlib import Path

from bench import writes
from bench.common import Context
from bench.http_load import Budget
from keyspace import DRIVER, USER
from keyspace.testing import fake_redis_client, keyspace_on
from tests import factories as f


async def test_batch_create_variant_creates_pipeline_documents_per_call() -> None:
    client = fake_redis_client()
    ks = await keyspace_on(client, f.MULTIFRAME.schema)
    owner = (await f.user(ks, "Owner")).doc["user_id"]
    ctx = Context("", client, ks, [], 1, Path("."), True)
    for spec in (USER, DRIVER):
        variants = writes._variants(ctx, spec, [owner], Budget(1, 30.0, 3))
        (name,) = [n for n in variants if n.startswith("keyspace batch create")]
        run, per_call = variants[name]
        load = await run()
        assert (load.ok, load.errors, per_call) == (3, 0, writes.PIPELINE), load.first_error
    drivers = [k async for k in client.scan_iter(match="driver:*")]
    assert len(drivers) == 3 * writes.PIPELINE
    await client.aclose()


def test_batch_bodies_number_users_and_spread_drivers_over_owners() -> None:
    users = writes.batch_bodies(USER, range(5, 8), [])
    assert [u["username"] for u in users] == ["bench_5", "bench_6", "bench_7"]
    drivers = writes.batch_bodies(DRIVER, range(4), ["user_1", "user_2"])
    assert [d["user_id"] for d in drivers] == ["user_1", "user_2", "user_1", "user_2"]
