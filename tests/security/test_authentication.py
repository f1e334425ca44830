"""Bearer tokens: required on every /api/ route, random, shown once, stored only as a hash
with a TTL, minted and revoked through the API; the bootstrap admin; demo data."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from app.routes import route_table
from keyspace import MULTIFRAME, AlreadyExists, Keyspace, connect, systems
from keyspace.server import EmbeddedRedis

from .conftest import (
    ADMIN_TOKEN,
    Actor,
    Harness,
    World,
    all_keys,
    bearer,
    error_of,
    forbidden,
    mint,
    new_user,
    settings,
    snapshot,
    value_of,
)

MF = systems.load()

pytestmark = pytest.mark.redis

DAY_MS = 24 * 3600 * 1000
DEMO = Path(__file__).resolve().parents[2] / "demo_data" / "multiframe" / "demo.json"
OPEN_PATHS = ("/health", "/ready", "/openapi.json", "/docs")


def token_key(token: str) -> str:
    return "mf:token:" + hashlib.sha256(token.encode()).hexdigest()


async def assert_unauthorized(resp: Any) -> None:
    error = await error_of(resp, 401)
    assert error["code"] == "unauthorized"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_every_api_route_needs_a_token_and_service_routes_do_not(admin: Actor) -> None:
    api = admin.api
    routes = [r for r in route_table(MF) if r.path.startswith("/api/")]
    assert len(routes) >= 40
    for route in routes:
        path = route.path.replace("{id}", "user_1").replace("{user_id}", "user_2")
        path = path.replace("{chip_id}", "chip_1")
        for headers in ({}, {"Authorization": "Basic YWRtaW46YWRtaW4="}, bearer("")):
            resp = await api.request(route.method, path, json={}, headers=headers)
            await assert_unauthorized(resp)
        resp = await api.request(route.method, path, json={}, headers=bearer("mf_nope"))
        await assert_unauthorized(resp)
        assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    for path in OPEN_PATHS:
        assert (await api.get(path)).status == 200, path


@pytest.mark.parametrize(
    "token",
    ["x" * 600, "tökén-ünicode", ADMIN_TOKEN[:-1], ADMIN_TOKEN + "0", ADMIN_TOKEN.upper()],
)
async def test_unknown_malformed_and_near_miss_tokens_are_401(admin: Actor, token: str) -> None:
    resp = await admin.api.get("/api/users", headers={"Authorization": f"Bearer {token}"})
    await assert_unauthorized(resp)


async def test_minted_tokens_are_random_hashed_and_expire_as_asked(
    world: World, redis: Redis
) -> None:
    admin, alice = world.admin, world.alice
    resp = await admin.post(f"/api/users/{alice.user_id}/tokens", json={})
    assert resp.status == 201
    assert resp.headers["Cache-Control"] == "no-store"
    session = await resp.json()
    assert set(session) == {"token", "user_id", "kind", "expires_in"}
    assert (session["user_id"], session["kind"], session["expires_in"]) == (
        alice.user_id,
        "session",
        86400,
    )
    api_key = await mint(admin, alice.user_id, {"kind": "api_key"})
    assert (api_key["kind"], api_key["expires_in"]) == ("api_key", None)
    short = await mint(alice, alice.user_id, {"kind": "session", "ttl_seconds": 120})
    expiring_key = await mint(admin, alice.user_id, {"kind": "api_key", "ttl_seconds": 3600})
    tokens = [session["token"], api_key["token"], short["token"], expiring_key["token"]]
    tokens += [alice.token, world.bob.token, admin.token]
    assert len(set(tokens)) == len(tokens)
    for token in tokens[:4]:
        raw = base64.urlsafe_b64decode(token.removeprefix("mf_") + "==")
        assert len(raw) >= 16  # at least 128 random bits
        assert (await alice.api.get("/api/users", headers=bearer(token))).status == 200

    stored = await redis.hgetall(token_key(session["token"]))
    assert stored == {b"user_id": b"user_1", b"role": b"designer", b"kind": b"session"}
    assert DAY_MS - 60_000 < await redis.pttl(token_key(session["token"])) <= DAY_MS
    assert await redis.pttl(token_key(alice.token)) > DAY_MS - 60_000
    assert await redis.pttl(token_key(api_key["token"])) == -1
    assert not await redis.exists(token_key(admin.token))  # the operator's is never stored
    assert 100_000 < await redis.pttl(token_key(short["token"])) <= 120_000
    assert 3_500_000 < await redis.pttl(token_key(expiring_key["token"])) <= 3_600_000

    for key in await all_keys(redis):
        value = await value_of(redis, key)
        for token in tokens:
            assert token.encode() not in key, key
            assert token.encode() not in value, key


async def test_a_token_stops_working_when_its_ttl_ends(world: World) -> None:
    short = await mint(world.alice, world.alice.user_id, {"ttl_seconds": 1})
    assert (await world.alice.get("/api/users", headers=bearer(short["token"]))).status == 200
    await asyncio.sleep(1.3)
    await assert_unauthorized(await world.alice.get("/api/users", headers=bearer(short["token"])))
    assert (await world.alice.get("/api/users")).status == 200


async def test_minting_is_admin_for_anyone_or_self_only(world: World, redis: Redis) -> None:
    alice, bob = world.alice, world.bob
    before = await snapshot(redis)
    for target in (bob.user_id, "admin", "user_404"):
        await forbidden(await alice.post(f"/api/users/{target}/tokens", json={}), "self-or-admin")
    assert await snapshot(redis) == before
    await mint(bob, bob.user_id, {"kind": "api_key"})
    await error_of(await world.admin.post("/api/users/user_404/tokens", json={}), 404)
    for body in ({"kind": "root"}, {"ttl_seconds": 0}, {"ttl_seconds": True}, {"role": "admin"}):
        error = await error_of(await alice.post("/api/users/user_1/tokens", json=body), 422)
        assert error["code"] == "validation_failed"


async def test_revoking_the_current_token(world: World, redis: Redis) -> None:
    alice = world.alice
    other = await mint(alice, alice.user_id)
    resp = await alice.delete("/api/tokens/current")
    assert resp.status == 204
    assert not await redis.exists(token_key(alice.token))
    await assert_unauthorized(await alice.get("/api/users"))
    await assert_unauthorized(await alice.delete("/api/tokens/current"))
    assert (await alice.get("/api/users", headers=bearer(other["token"]))).status == 200
    assert (await world.bob.get("/api/users")).status == 200


async def test_deleting_a_user_revokes_all_their_tokens(world: World, redis: Redis) -> None:
    alice = world.alice
    tokens = [alice.token, (await mint(alice, alice.user_id, {"kind": "api_key"}))["token"]]
    assert (await world.admin.delete(f"/api/users/{alice.user_id}")).status == 204
    for token in tokens:
        await assert_unauthorized(await alice.get("/api/users", headers=bearer(token)))
        assert not await redis.exists(token_key(token))
    assert not await redis.exists(f"mf:tokens:{alice.user_id}")
    assert (await world.bob.get("/api/users")).status == 200


async def test_a_role_change_applies_to_existing_tokens_at_once(world: World) -> None:
    alice, admin = world.alice, world.admin
    await forbidden(await alice.post("/api/users", json=new_user("Dave", "designer")), "admin-only")
    resp = await admin.patch(f"/api/users/{alice.user_id}", json={"role": "admin"})
    assert resp.status == 200
    assert (await alice.post("/api/users", json=new_user("Dave", "designer"))).status == 201
    resp = await admin.patch(f"/api/users/{alice.user_id}", json={"role": "engineer"})
    assert resp.status == 200
    await forbidden(await alice.post("/api/users", json=new_user("Eve", "designer")), "admin-only")


async def test_configured_admin_token_is_an_admin_api_key(
    harness: Harness, redis: Redis, capfd: pytest.CaptureFixture[str]
) -> None:
    admin = await harness.admin()
    # The operator's token acts as "admin" without a user document in the user lists.
    assert (await admin.get("/api/users/admin")).status == 404
    assert (await admin.json("/api/users"))["total"] == 0
    assert (await admin.post("/api/users", json=new_user("Zed", "engineer"))).status == 201
    # Recognised in process, never stored: nothing in Redis names it or its hash.
    for key in await all_keys(redis):
        blob = key + await value_of(redis, key)
        assert admin.token.encode() not in blob
        assert hashlib.sha256(admin.token.encode()).hexdigest().encode() not in blob
    again = await harness.admin()  # a restart with the same value keeps working
    assert (await again.get("/api/users")).status == 200
    assert "mf_" not in capfd.readouterr().err


async def test_first_start_prints_a_working_admin_token_once(
    harness: Harness, redis: Redis, capfd: pytest.CaptureFixture[str]
) -> None:
    api = await harness.client(settings(admin_token=None))
    printed = re.findall(r"mf_[A-Za-z0-9_\-]{20,}", capfd.readouterr().err)
    assert len(printed) == 1
    admin = Actor(api, "admin", printed[0])
    assert (await admin.json("/api/users/admin"))["role"] == "admin"
    assert (await admin.post("/api/users", json=new_user("Zed", "engineer"))).status == 201
    assert await redis.pttl(token_key(admin.token)) == -1
    for key in await all_keys(redis):
        assert admin.token.encode() not in key + await value_of(redis, key)

    second = await harness.client(settings(admin_token=None))
    assert capfd.readouterr().err.count("mf_") == 0
    assert (await second.get("/api/users", headers=admin.headers)).status == 200


async def test_demo_data_contains_nothing_that_authenticates(
    redis_server: EmbeddedRedis, harness: Harness, redis: Redis
) -> None:
    data: dict[str, Any] = orjson.loads(DEMO.read_bytes())
    client = connect(redis_server.url)
    try:
        ks = Keyspace(client)
        await ks.setup()
        for spec in MULTIFRAME.entities:
            for record in data.get(spec.collection, []):
                with contextlib.suppress(AlreadyExists):
                    await ks.create(spec, record)
        await ks.replace_config(data["config:system"])
    finally:
        await client.aclose()
    assert not [k for k in await all_keys(redis) if k.startswith(b"mf:token")]

    strings: set[str] = set()

    def collect(value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                strings.add(k)
                collect(v)
        elif isinstance(value, list):
            for v in value:
                collect(v)
        elif isinstance(value, str | int | float):
            strings.add(str(value))

    collect(data)
    api = await harness.client()  # also bootstraps the configured admin
    assert len(strings) > 50
    for candidate in sorted(strings):
        if candidate.strip() and candidate.isascii():
            resp = await api.get("/api/users", headers=bearer(candidate.strip()))
            await assert_unauthorized(resp)
