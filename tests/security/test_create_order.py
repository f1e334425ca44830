"""A create authorizes inside its own commit (one round trip); its refusals keep the order
of every other route: 401/503/429 first, then 403, then 400/422, then 409, and a refused
create writes nothing and draws no id."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from .conftest import (
    Actor,
    Harness,
    World,
    bearer,
    error_of,
    forbidden,
    new_doc,
    new_user,
    settings,
    snapshot,
)

pytestmark = pytest.mark.redis

INVALID_DRIVER = {"chip_id": 7, "version": "1.0"}  # a 422 for anyone allowed to send it
JSON = {"Content-Type": "application/json"}


async def test_unknown_token_answers_401_before_the_body_is_judged(
    world: World, redis: Redis
) -> None:
    api = world.admin.api
    before = await snapshot(redis)
    for body in (b"{not json", b"[]", b'{"chip_id": 7}'):
        resp = await api.post("/api/drivers", data=body, headers=bearer("nope") | JSON)
        assert (await error_of(resp, 401))["code"] == "unauthorized"
    resp = await api.post("/api/drivers", json=new_doc("drivers", "user_1"), headers=bearer("x"))
    await error_of(resp, 401)
    assert await snapshot(redis) == before


async def test_policy_answers_before_validation(world: World) -> None:
    alice, bob = world.alice, world.bob
    await forbidden(
        await bob.post("/api/drivers", json={"user_id": alice.user_id, **INVALID_DRIVER}),
        "own-documents-only",
    )
    await forbidden(await bob.post("/api/users", json={"username": 3}), "admin-only")
    resp = await bob.post("/api/drivers", json={"user_id": bob.user_id, **INVALID_DRIVER})
    assert (await error_of(resp, 422))["code"] == "validation_failed"
    malformed = await bob.post("/api/drivers", data=b"{", headers=JSON)
    assert (await error_of(malformed, 400))["code"] == "malformed_json"


async def test_a_forbidden_create_writes_nothing_and_draws_no_id(
    world: World, redis: Redis
) -> None:
    alice, bob = world.alice, world.bob
    before = await snapshot(redis)
    await forbidden(
        await bob.post("/api/drivers", json=new_doc("drivers", alice.user_id, 5)),
        "own-documents-only",
    )
    await forbidden(await bob.post("/api/users", json=new_user("Mallory", "admin")), "admin-only")
    assert await snapshot(redis) == before
    mine = await bob.create("drivers", new_doc("drivers", bob.user_id, 5))
    assert mine["driver_id"] == "driver_2"  # world holds driver_1; no id was burnt


async def test_admins_create_for_anyone_and_conflicts_come_last(world: World) -> None:
    admin, alice = world.admin, world.alice
    created = await admin.create("drivers", new_doc("drivers", alice.user_id, 6))
    assert created["user_id"] == alice.user_id
    taken = await admin.post("/api/users", json=new_user("Alice", "engineer"))
    assert (await error_of(taken, 409))["code"] == "unique_conflict"
    missing = await admin.post("/api/drivers", json=new_doc("drivers", "user_404", 6))
    assert (await error_of(missing, 409))["code"] == "missing_reference"


async def test_rate_limit_counts_a_refused_create_once(harness: Harness) -> None:
    admin = await harness.admin(settings(write_per_minute=2))
    user = await admin.create("users", new_user("Dora", "designer"))
    token = await admin.post(f"/api/users/{user['user_id']}/tokens", json={})
    dora = Actor(admin.api, user["user_id"], (await token.json())["token"])
    invalid = await dora.post("/api/drivers", json={"user_id": dora.user_id, **INVALID_DRIVER})
    await error_of(invalid, 422)
    ok = await dora.post("/api/drivers", json=new_doc("drivers", dora.user_id, 1))
    assert ok.status == 201
    assert ok.headers["RateLimit-Remaining"] == "0"
    limited = await dora.post("/api/drivers", json=new_doc("drivers", dora.user_id, 2))
    assert (await error_of(limited, 429))["code"] == "rate_limited"
    assert (await dora.json(f"/api/users/{dora.user_id}/drivers"))["total"] == 1
