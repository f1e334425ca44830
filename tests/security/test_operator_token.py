"""The operator's MULTIFRAME_ADMIN_TOKEN: an admin exactly while it is configured (only its
current value), whatever user documents, revocations, restarts or backups say."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from redis.asyncio import Redis

from scripts.cli import run_cli
from scripts.exits import OK

from .conftest import (
    ADMIN_TOKEN,
    Actor,
    Harness,
    all_keys,
    bearer,
    error_of,
    forbidden,
    mint,
    new_user,
    settings,
    value_of,
)

pytestmark = pytest.mark.redis

ROTATED = "security-rotated-token-0d9e2c4b7a1f5e38"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def assert_admin(actor: Actor, name: str) -> None:
    """The caller may do what only admins may: create a user."""
    resp = await actor.post("/api/users", json=new_user(name, "designer"))
    assert resp.status == 201, await resp.text()


async def assert_unauthorized(harness: Harness, configured: str | None, token: str) -> None:
    """On a new app started with ``configured`` as its operator token, ``token`` is 401."""
    api = await harness.client(settings(admin_token=configured))
    resp = await api.get("/api/users", headers=bearer(token))
    error = await error_of(resp, 401)
    assert error["code"] == "unauthorized"


async def assert_not_stored(redis: Redis, token: str) -> None:
    for key in await all_keys(redis):
        blob = key + b"=" + await value_of(redis, key)
        assert digest(token).encode() not in blob, key
        assert token.encode() not in blob, key


async def test_a_user_named_admin_cannot_demote_the_operator_token(
    admin: Actor, redis: Redis
) -> None:
    body = {"user_id": "admin", **new_user("Impostor", "engineer")}
    assert (await admin.post("/api/users", json=body)).status == 201
    await assert_admin(admin, "AfterCreate")
    resp = await admin.patch("/api/users/admin", json={"role": "admin"})
    assert resp.status == 200
    resp = await admin.patch("/api/users/admin", json={"role": "designer"})
    assert resp.status == 200
    await assert_admin(admin, "AfterPatch")
    assert (await admin.delete("/api/users/admin")).status == 204
    await assert_admin(admin, "AfterDelete")  # at once, not "granted again within a second"
    await assert_not_stored(redis, ADMIN_TOKEN)


async def test_the_operator_token_cannot_be_revoked_through_the_api(admin: Actor) -> None:
    await forbidden(await admin.delete("/api/tokens/current"), "operator-token")
    await assert_admin(admin, "StillAdmin")


async def test_the_operator_token_is_401_after_a_restart_without_it(
    harness: Harness, redis: Redis
) -> None:
    first = await harness.admin()
    await assert_admin(first, "Before")
    await first.api.close()  # the restart: the old process is gone
    await assert_unauthorized(harness, None, ADMIN_TOKEN)
    await assert_not_stored(redis, ADMIN_TOKEN)


async def test_only_the_current_value_works_after_a_rotation(
    harness: Harness, redis: Redis
) -> None:
    first = await harness.admin()
    await assert_admin(first, "Before")
    await first.api.close()
    rotated = await harness.admin(settings(admin_token=ROTATED))
    await assert_admin(rotated, "After")
    resp = await rotated.get("/api/users", headers=bearer(ADMIN_TOKEN))
    assert (await error_of(resp, 401))["code"] == "unauthorized"
    await assert_not_stored(redis, ADMIN_TOKEN)
    await assert_not_stored(redis, ROTATED)


async def legacy_grant(redis: Redis, token: str) -> str:
    """What the previous version stored for the operator at start-up (``Tokens.grant``)."""
    key = f"mf:token:{digest(token)}"
    await redis.hset(key, mapping={"user_id": "admin", "role": "admin", "kind": "api_key"})
    await redis.sadd("mf:tokens:admin", digest(token))
    return key


async def test_an_operator_token_stored_by_an_older_version_is_retired_at_start(
    harness: Harness, redis: Redis
) -> None:
    key = await legacy_grant(redis, ADMIN_TOKEN)
    await assert_unauthorized(harness, ROTATED, ADMIN_TOKEN)
    assert not await redis.exists(key, "mf:tokens:admin")
    await legacy_grant(redis, ADMIN_TOKEN)
    await assert_unauthorized(harness, None, ADMIN_TOKEN)  # the first start makes user admin
    assert not await redis.exists(key)
    assert digest(ADMIN_TOKEN).encode() not in await redis.smembers("mf:tokens:admin")


async def test_the_configured_value_stored_by_an_older_version_is_removed_at_start(
    harness: Harness, redis: Redis
) -> None:
    """An older version could store the operator token as an API key of a user ``admin``:
    started with the value still configured, the stored copy goes, so it cannot outlive it."""
    first = await harness.admin()
    root = {"user_id": "admin", **new_user("Root", "admin")}
    assert (await first.post("/api/users", json=root)).status == 201
    own = (await mint(first, "admin", {"kind": "api_key"}))["token"]
    key = await legacy_grant(redis, ADMIN_TOKEN)
    await first.api.close()
    again = await harness.admin()  # the upgrade's first start, the variable still set
    assert not await redis.exists(key)
    assert await redis.smembers("mf:tokens:admin") == {digest(own).encode()}
    await again.api.close()
    await assert_unauthorized(harness, None, ADMIN_TOKEN)


async def backup_and_restore(harness: Harness, redis: Redis, path: Path) -> None:
    assert await run_cli(["--redis-url", harness.url, "backup", str(path)]) == OK
    await redis.flushall()  # a fresh server
    assert await run_cli(["--redis-url", harness.url, "restore", str(path)]) == OK


async def test_a_restored_backup_does_not_bring_the_operator_token(
    harness: Harness, redis: Redis, tmp_path: Path
) -> None:
    production = await harness.admin()
    await assert_admin(production, "Prod")
    await production.api.close()
    await backup_and_restore(harness, redis, tmp_path / "prod.jsonl.gz")
    await assert_unauthorized(harness, ROTATED, ADMIN_TOKEN)
    staging = await harness.admin(settings(admin_token=ROTATED))
    assert (await staging.json("/api/users"))["total"] == 1  # the data did come


async def test_restore_leaves_out_an_older_versions_operator_token(
    harness: Harness, redis: Redis, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = await legacy_grant(redis, ADMIN_TOKEN)
    capsys.readouterr()
    await backup_and_restore(harness, redis, tmp_path / "old.jsonl.gz")
    assert "2 operator-token keys left out" in capsys.readouterr().out
    assert not await redis.exists(key, "mf:tokens:admin")
    await assert_unauthorized(harness, ROTATED, ADMIN_TOKEN)
