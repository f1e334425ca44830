"""Maintenance mode: non-admin writes get 503 with Retry-After, reads and admin writes work."""

from __future__ import annotations

import pytest
from aiohttp import ClientResponse
from redis.asyncio import Redis

from .conftest import Harness, World, error_of, make_actor, new_doc, new_user, settings, snapshot

pytestmark = pytest.mark.redis


async def set_maintenance(world: World, on: bool) -> None:
    resp = await world.admin.patch("/api/config/system", json={"system": {"maintenance": on}})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["system"]["maintenance"] is on


async def assert_maintenance(resp: ClientResponse) -> None:
    error = await error_of(resp, 503)
    assert error["code"] == "maintenance"
    assert int(resp.headers["Retry-After"]) > 0


async def non_admin_writes(world: World) -> list[ClientResponse]:
    """One write of each kind a non-admin may normally make (own documents, self)."""
    alice, docs = world.alice, world.docs
    collab = f"/api/collabs/{docs['collabs']}"
    driver = f"/api/drivers/{docs['drivers']}"
    return [
        await alice.post("/api/drivers", json=new_doc("drivers", alice.user_id, 3)),
        await alice.post("/api/quests", json=new_doc("quests", alice.user_id, 3)),
        await alice.patch(driver, json={"version": "9"}),
        await alice.put(
            f"/api/quests/{docs['quests']}",
            json={"user_id": alice.user_id, "title": "T", "description": "", "reward": "r"}
            | {"status": "active", "timestamp": "2025-09-29T10:30:00"},
        ),
        await alice.delete(f"/api/processes/{docs['processes']}"),
        await alice.patch(f"/api/users/{alice.user_id}", json={"username": "Ally"}),
        await alice.post(f"{collab}/collaborators", json={"user_id": world.bob.user_id}),
        await world.carol.patch(collab, json={"status": "completed"}),
        await world.carol.delete(f"{collab}/collaborators/{world.carol.user_id}"),
        await alice.post(f"/api/users/{alice.user_id}/tokens", json={}),
        await alice.delete("/api/tokens/current"),
        # refused by policy anyway: maintenance answers first, nothing is revealed
        await world.bob.patch("/api/config/system", json={"subscription_price": 1}),
    ]


async def test_non_admin_writes_get_503_and_write_nothing(world: World, redis: Redis) -> None:
    await set_maintenance(world, True)
    before = await snapshot(redis)
    for resp in await non_admin_writes(world):
        await assert_maintenance(resp)
    assert await snapshot(redis) == before


async def test_reads_keep_working_in_maintenance(world: World) -> None:
    await set_maintenance(world, True)
    for actor in (world.alice, world.bob):
        for collection, doc_id in world.docs.items():
            assert (await actor.json(f"/api/{collection}"))["total"] >= 1
            assert await actor.json(f"/api/{collection}/{doc_id}")
        assert (await actor.json("/api/config/system"))["system"]["maintenance"] is True
        assert await actor.json("/api/analytics/metrics")
    assert (await world.alice.get("/health")).status == 200


async def test_admin_writes_still_work_and_writes_resume_afterwards(world: World) -> None:
    admin, alice = world.admin, world.alice
    await set_maintenance(world, True)
    await admin.create("users", new_user("Maint", "engineer"))
    await admin.create("drivers", new_doc("drivers", alice.user_id, 4))
    resp = await admin.patch(f"/api/drivers/{world.docs['drivers']}", json={"version": "2"})
    assert resp.status == 200
    assert (await admin.post(f"/api/users/{alice.user_id}/tokens", json={})).status == 201
    await set_maintenance(world, False)
    *writes, refused = await non_admin_writes(world)
    for resp in writes:
        assert resp.status < 300, await resp.text()
    assert refused.status == 403


async def test_refused_maintenance_writes_do_not_use_the_rate_limit(harness: Harness) -> None:
    admin = await harness.admin(settings(write_per_minute=2))
    alice = await make_actor(admin, "Alice", "designer")
    assert (await admin.patch("/api/config/system", json={"system": {"maintenance": True}})).ok
    for n in range(5):
        resp = await alice.post("/api/drivers", json=new_doc("drivers", alice.user_id, n))
        await assert_maintenance(resp)
    assert (await admin.patch("/api/config/system", json={"system": {"maintenance": False}})).ok
    for n in range(2):
        await alice.create("drivers", new_doc("drivers", alice.user_id, n))
    resp = await alice.post("/api/drivers", json=new_doc("drivers", alice.user_id, 9))
    assert resp.status == 429
