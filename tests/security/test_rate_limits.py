"""Per-user GCRA rate limits by route class (all of a user's tokens share them; minting has its
own), enforced in Redis across server processes."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import ClientResponse
from redis.asyncio import Redis

from .conftest import Actor, Harness, error_of, make_actor, mint, new_doc, new_user, settings

pytestmark = pytest.mark.redis


async def assert_limited(resp: ClientResponse, limit: int) -> None:
    error = await error_of(resp, 429)
    assert error["code"] == "rate_limited"
    assert error["details"]["limit"] == limit
    assert int(resp.headers["Retry-After"]) >= 1
    assert resp.headers["RateLimit-Limit"] == str(limit)
    assert resp.headers["RateLimit-Remaining"] == "0"
    assert int(resp.headers["RateLimit-Reset"]) >= 1


async def drivers_of(actor: Actor) -> int:
    total: int = (await actor.json(f"/api/users/{actor.user_id}/drivers"))["total"]
    return total


async def test_writes_are_limited_per_user_with_headers(harness: Harness) -> None:
    admin = await harness.admin(settings(write_per_minute=3))
    alice = await make_actor(admin, "Alice", "designer")
    remaining = []
    for n in range(3):
        resp = await alice.post("/api/drivers", json=new_doc("drivers", alice.user_id, n))
        assert resp.status == 201
        assert resp.headers["RateLimit-Limit"] == "3"
        assert 1 <= int(resp.headers["RateLimit-Reset"]) <= 60
        remaining.append(int(resp.headers["RateLimit-Remaining"]))
    assert remaining == [2, 1, 0]
    await assert_limited(
        await alice.post("/api/drivers", json=new_doc("drivers", alice.user_id, 9)), 3
    )
    await assert_limited(await alice.patch(f"/api/users/{alice.user_id}", json={}), 3)
    await assert_limited(await alice.delete("/api/tokens/current"), 3)
    assert await drivers_of(alice) == 3  # the refused create wrote nothing

    other = Actor(alice.api, alice.user_id, (await mint(admin, alice.user_id))["token"])
    await assert_limited(  # a new token of the same user draws on the same budget
        await other.post("/api/drivers", json=new_doc("drivers", alice.user_id, 10)), 3
    )
    bob = await make_actor(admin, "Bob", "engineer")
    await bob.create("drivers", new_doc("drivers", bob.user_id, 1))  # another user has his own


async def test_reads_and_writes_are_limited_separately(harness: Harness) -> None:
    admin = await harness.admin(settings(read_per_minute=4, write_per_minute=2))
    bob = await make_actor(admin, "Bob", "engineer")
    for _ in range(4):
        resp = await bob.get("/api/users")
        assert resp.status == 200
        assert resp.headers["RateLimit-Limit"] == "4"
    await assert_limited(await bob.get("/api/drivers"), 4)
    for n in range(2):  # reads exhausted, writes untouched
        resp = await bob.post("/api/quests", json=new_doc("quests", bob.user_id, n))
        assert resp.status == 201
        assert resp.headers["RateLimit-Limit"] == "2"
    await assert_limited(await bob.post("/api/quests", json=new_doc("quests", bob.user_id, 5)), 2)
    await assert_limited(await bob.get("/api/quests"), 4)


async def test_admin_is_unlimited_by_default(harness: Harness) -> None:
    admin = await harness.admin(settings(read_per_minute=1, write_per_minute=1))
    for n in range(25):
        resp = await admin.post("/api/users", json=new_user(f"User{n}", "designer"))
        assert resp.status == 201
        assert "RateLimit-Limit" not in resp.headers
        assert (await admin.get("/api/users")).status == 200


async def test_admin_limits_apply_when_configured(harness: Harness) -> None:
    admin = await harness.admin(settings(admin_write_per_minute=3, admin_read_per_minute=5))
    for n in range(3):
        resp = await admin.post("/api/users", json=new_user(f"User{n}", "designer"))
        assert resp.status == 201
        assert resp.headers["RateLimit-Limit"] == "3"
    await assert_limited(await admin.post("/api/users", json=new_user("Late", "designer")), 3)
    for _ in range(5):
        assert (await admin.get("/api/users")).status == 200
    await assert_limited(await admin.get("/api/users"), 5)


async def test_limit_holds_under_concurrency_across_two_processes(
    harness: Harness, redis: Redis
) -> None:
    limited = settings(write_per_minute=10)
    first = await harness.admin(limited)
    second = await harness.admin(limited)  # another app with its own Redis client and pool
    assert first.api is not second.api
    alice = await make_actor(first, "Alice", "designer")
    on_second = Actor(second.api, alice.user_id, alice.token)

    async def write(actor: Actor, n: int) -> int:
        resp = await actor.post("/api/drivers", json=new_doc("drivers", alice.user_id, n))
        await resp.read()
        return resp.status

    statuses = await asyncio.gather(*(write(alice if n % 2 else on_second, n) for n in range(40)))
    assert sorted(statuses) == [201] * 10 + [429] * 30
    assert await drivers_of(alice) == 10
    keys = [k async for k in redis.scan_iter(match="mf:rate:*:write")]
    assert keys == [f"mf:rate:{alice.user_id}:write".encode()]  # one state, shared


async def test_limit_is_shared_by_the_processes_sequentially(harness: Harness) -> None:
    limited = settings(read_per_minute=6)
    first, second = await harness.admin(limited), await harness.admin(limited)
    bob = await make_actor(first, "Bob", "engineer")
    views = [bob, Actor(second.api, bob.user_id, bob.token)]
    for n in range(6):
        assert (await views[n % 2].get("/api/users")).status == 200
    for view in views:
        await assert_limited(await view.get("/api/users"), 6)


async def test_tokens_of_one_user_share_one_read_budget(harness: Harness, redis: Redis) -> None:
    admin = await harness.admin(settings(read_per_minute=4))
    alice = await make_actor(admin, "Alice", "designer")
    views = [alice]
    for kind in ("session", "api_key", "session"):
        minted = await mint(alice, alice.user_id, {"kind": kind})
        views.append(Actor(alice.api, alice.user_id, minted["token"]))
    for n in range(4):
        resp = await views[n].get("/api/users")
        assert resp.status == 200
        assert resp.headers["RateLimit-Remaining"] == str(3 - n)
    for view in views:  # the fifth read, whichever token sends it
        await assert_limited(await view.get("/api/users"), 4)
    keys = [k async for k in redis.scan_iter(match="mf:rate:*:read")]
    assert keys == [f"mf:rate:{alice.user_id}:read".encode()]


async def test_the_operator_token_shares_the_budget_of_user_admin(harness: Harness) -> None:
    admin = await harness.admin(settings(admin_read_per_minute=3))
    body = {"user_id": "admin", **new_user("Root", "admin")}
    assert (await admin.post("/api/users", json=body)).status == 201
    root = Actor(admin.api, "admin", (await mint(admin, "admin"))["token"])
    assert (await admin.get("/api/users")).status == 200
    assert (await root.get("/api/users")).status == 200
    assert (await admin.get("/api/users")).status == 200
    await assert_limited(await root.get("/api/users"), 3)
    await assert_limited(await admin.get("/api/users"), 3)


async def assert_mint_limited(resp: ClientResponse, limit: int) -> None:
    await assert_limited(resp, limit)
    assert "token" not in (await resp.json())


async def test_minting_is_limited_per_user(harness: Harness, redis: Redis) -> None:
    admin = await harness.admin(settings(tokens_per_minute=2, write_per_minute=50))
    alice = await make_actor(admin, "Alice", "designer")  # the admin's mint is not counted
    tokens = set()
    for n in range(2):
        resp = await alice.post(f"/api/users/{alice.user_id}/tokens", json={})
        assert resp.status == 201
        assert resp.headers["RateLimit-Limit"] == "2"
        assert resp.headers["RateLimit-Remaining"] == str(1 - n)
        tokens.add((await resp.json())["token"])
    before = len([k async for k in redis.scan_iter(match="mf:token:*")])
    await assert_mint_limited(await alice.post(f"/api/users/{alice.user_id}/tokens", json={}), 2)
    minted_with_new = Actor(alice.api, alice.user_id, tokens.pop())
    await assert_mint_limited(
        await minted_with_new.post(f"/api/users/{alice.user_id}/tokens", json={}), 2
    )
    assert len([k async for k in redis.scan_iter(match="mf:token:*")]) == before
    # Other writes keep their own budget; an admin's mints follow the admin limits (unlimited).
    await alice.create("drivers", new_doc("drivers", alice.user_id))
    for _ in range(5):
        await mint(admin, alice.user_id)


@pytest.mark.parametrize("planted", ["junk", "hash"])
async def test_an_unreadable_rate_state_is_an_empty_bucket_not_a_500(
    harness: Harness, redis: Redis, planted: str
) -> None:
    admin = await harness.admin(settings(read_per_minute=4))
    alice = await make_actor(admin, "Alice", "designer")
    key = f"mf:rate:{alice.user_id}:read"
    if planted == "hash":
        await redis.hset(key, "f", "v")
    else:
        await redis.set(key, planted)
    resp = await alice.get("/api/users")
    assert resp.status == 200, await resp.text()
    assert resp.headers["RateLimit-Remaining"] == "3"
    assert float(await redis.get(key) or 0) > 0  # rewritten as a GCRA state
