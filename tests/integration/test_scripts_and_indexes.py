"""Script loading (NOSCRIPT), index versions behind the alias, readiness."""

from __future__ import annotations

import dataclasses

import orjson
import pytest
from redis.asyncio import Redis

from keyspace import DRIVER, USER, Keyspace, NotReady, parse, search
from keyspace.connection import call
from keyspace.schema import FieldKind, Indexed
from tests import factories as f

pytestmark = pytest.mark.redis


async def test_scripts_reload_after_script_flush(real_client: Redis) -> None:
    ks = Keyspace(real_client)
    await ks.setup()
    await f.user(ks, "A")
    await real_client.script_flush()
    assert await real_client.script_exists(ks.scripts._commit.sha) == [False]
    made = await f.user(ks, "B")
    assert made.doc["user_id"] == "user_2"
    assert await real_client.exists("user:user_2") == 1


async def test_setup_is_idempotent_and_sets_timeout_policy(real_client: Redis) -> None:
    ks = Keyspace(real_client)
    await ks.setup()
    await ks.setup()
    names = await search.list_indexes(real_client)
    assert names == {search.current_name(spec) for spec in ks.schema.entities}
    policy = await call(real_client, "FT.CONFIG", "GET", "ON_TIMEOUT")
    assert policy[0][1].lower() == b"fail"
    readiness = await ks.readiness()
    assert readiness["ready"] is True and all(readiness["indexes"].values())


async def test_changed_definition_builds_new_version_and_switches_alias(real_client: Redis) -> None:
    ks = Keyspace(real_client)
    await ks.setup()
    await f.user(ks, "A")
    await f.driver(ks, "user_1", version="1.0")
    old_name = search.current_name(DRIVER)
    extra = Indexed("arch_tag", "chip_data.architecture", FieldKind.TAG)
    changed = dataclasses.replace(DRIVER, fields=(*DRIVER.fields, extra))
    new_name = await search.ensure(real_client, changed)
    assert new_name != old_name
    assert old_name not in await search.list_indexes(real_client)
    page = await ks.list(DRIVER, parse(DRIVER, {"version": ["1.0"]}))
    assert [d["driver_id"] for d in page.items] == ["driver_1"]


async def test_queries_never_answer_from_a_half_built_index(real_client: Redis) -> None:
    ks = Keyspace(real_client)
    await ks.setup()
    await f.user(ks, "A")
    base = {
        "user_id": "user_1",
        "chip_id": "c",
        "chip_data": f.chip(),
        "status": "generated",
        "version": "1",
        "timestamp": "2025-01-01T00:00:00",
    }
    count = 40_000
    async with real_client.pipeline(transaction=False) as pipe:
        for i in range(count):
            pipe.execute_command(
                "JSON.SET", f"driver:d{i}", "$", orjson.dumps({**base, "driver_id": f"d{i}"})
            )
        await pipe.execute()
    await call(real_client, "FT.DROPINDEX", search.current_name(DRIVER))
    name = await search.build(real_client, DRIVER)
    await call(real_client, "FT.ALIASUPDATE", "mf:idx:driver", name)
    outcomes = set()
    for _ in range(200):
        try:
            page = await ks.list(DRIVER, parse(DRIVER, {"user_id": ["user_1"]}))
        except NotReady:
            outcomes.add("not-ready")
            continue
        assert page.total == count
        outcomes.add("complete")
        break
    assert "complete" in outcomes or "not-ready" in outcomes


async def test_degraded_mode_is_reported(real_client: Redis) -> None:
    ks = Keyspace(real_client, use_search=False)
    caps = await ks.setup()
    assert caps.degraded and ks.degraded
    await f.user(ks, "A")
    page = await ks.list(USER, parse(USER, {}))
    assert page.total == 1
