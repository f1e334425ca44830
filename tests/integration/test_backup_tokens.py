"""backup and restore of API tokens and expiring keys, and of files of the previous version."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from keyspace import USER, Keyspace, keys
from keyspace.claims import held
from keyspace.keys import SEED_NAMES
from keyspace.server import EmbeddedRedis
from keyspace.tokens import SESSION_TTL, Limits, Minted, TokenKind, token_hash
from scripts.exits import OK, PROBLEMS
from tests import factories as f
from tests.integration.test_backup import API_KEY, cli, populate, read_lines
from tests.redis_state import snapshot

pytestmark = pytest.mark.redis

LIMITS = Limits(designer_read=5, period_ms=60_000)


async def tokens_of_a_designer(ks: Keyspace) -> tuple[str, Minted, Minted]:
    made = await f.user(ks, "Tokened")
    user_id = str(made.doc["user_id"])
    session = await ks.tokens.mint(user_id, made.raw)
    api_key = await ks.tokens.mint(user_id, made.raw, TokenKind.API_KEY)
    return user_id, session, api_key


def write_file(path: Path, header: dict[str, Any], records: list[dict[str, Any]]) -> None:
    """A backup file as ``backup`` writes it, with any header and records."""
    lines = [orjson.dumps(obj) + b"\n" for obj in [header, *records]]
    trailer = {"records": len(records), "sha256": hashlib.sha256(b"".join(lines)).hexdigest()}
    path.write_bytes(gzip.compress(b"".join(lines) + orjson.dumps(trailer) + b"\n"))


async def test_a_restored_server_accepts_the_same_tokens(
    redis_server: EmbeddedRedis, real_client: Redis, tmp_path: Path
) -> None:
    ks = await populate(real_client)
    user_id, session, api_key = await tokens_of_a_designer(ks)
    digests = {token_hash(session.token), token_hash(api_key.token)}
    file = tmp_path / "b"
    assert await cli(redis_server, "backup", str(file)) == OK  # was 1: hashes were skipped
    await real_client.flushall()
    assert await cli(redis_server, "restore", str(file)) == OK

    for token, owner, role in [
        (session.token, user_id, "designer"),
        (api_key.token, user_id, "designer"),
        (API_KEY, "user_2", "engineer"),
    ]:
        decision = await ks.tokens.authorize(token, "read", LIMITS)
        assert (decision.status, decision.user_id, decision.role) == ("ok", owner, role)
    listed = await real_client.smembers(keys.user_tokens_key(user_id))
    assert listed == {digest.encode() for digest in digests}
    await ks.delete(USER, user_id)  # the restored token set still revokes what it lists
    assert (await ks.tokens.authorize(api_key.token, "read", LIMITS)).status == "unknown"
    assert (await ks.tokens.authorize(session.token, "read", LIMITS)).status == "unknown"


async def test_expiries_are_restored_and_keys_without_one_stay_without(
    redis_server: EmbeddedRedis, real_client: Redis, tmp_path: Path
) -> None:
    ks = await populate(real_client)
    _, session, api_key = await tokens_of_a_designer(ks)
    session_key = keys.token_key(token_hash(session.token))
    fence = keys.delete_fence("driver:driver_1")
    await real_client.set(fence, "1", px=30_000)
    file = tmp_path / "b"
    assert await cli(redis_server, "backup", str(file)) == OK
    session_ttl, fence_ttl = await real_client.pttl(session_key), await real_client.pttl(fence)
    assert SESSION_TTL * 1000 - 60_000 < session_ttl <= SESSION_TTL * 1000
    await real_client.flushall()
    assert await cli(redis_server, "restore", str(file)) == OK

    assert session_ttl - 5_000 < await real_client.pttl(session_key) <= session_ttl
    assert fence_ttl - 5_000 < await real_client.pttl(fence) <= fence_ttl
    assert await real_client.pttl(keys.token_key(token_hash(api_key.token))) == -1
    assert await real_client.pttl(keys.token_key(token_hash(API_KEY))) == -1
    assert await real_client.pttl("user:user_1") == -1


async def test_keys_that_expired_after_the_backup_are_not_restored(
    redis_server: EmbeddedRedis,
    real_client: Redis,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ks = await populate(real_client)
    _, session, api_key = await tokens_of_a_designer(ks)
    session_key = keys.token_key(token_hash(session.token))
    await real_client.pexpire(session_key, 400)
    file = tmp_path / "b"
    assert await cli(redis_server, "backup", str(file)) == OK
    await asyncio.sleep(0.5)
    await real_client.flushall()
    capsys.readouterr()
    assert await cli(redis_server, "restore", str(file)) == OK

    assert "1 expired, not restored" in capsys.readouterr().out
    assert not await real_client.exists(session_key)
    assert (await ks.tokens.authorize(session.token, "read", LIMITS)).status == "unknown"
    assert (await ks.tokens.authorize(api_key.token, "read", LIMITS)).status == "ok"


async def test_rate_limit_state_is_left_out_of_backups(
    redis_server: EmbeddedRedis,
    real_client: Redis,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ks = await populate(real_client)
    user_id, _, api_key = await tokens_of_a_designer(ks)
    for _ in range(LIMITS.designer_read):
        assert (await ks.tokens.authorize(api_key.token, "read", LIMITS)).status == "ok"
    assert (await ks.tokens.authorize(api_key.token, "read", LIMITS)).status == "limited"
    rate = keys.rate_key(user_id, "read")
    assert await real_client.exists(rate)
    file = tmp_path / "b"
    capsys.readouterr()
    assert await cli(redis_server, "backup", str(file)) == OK
    assert "1 rate-limit and lock keys left out" in capsys.readouterr().out
    assert not [line for line in read_lines(file) if b'"mf:rate:' in line]

    assert await cli(redis_server, "restore", str(file), "--replace") == OK
    assert not await real_client.exists(rate)  # --replace cleared it, the file did not bring it
    decision = await ks.tokens.authorize(api_key.token, "read", LIMITS)
    assert (decision.status, decision.remaining) == ("ok", LIMITS.designer_read - 1)


async def test_a_version_1_file_is_still_restored(
    redis_server: EmbeddedRedis,
    real_client: Redis,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What the previous ``backup`` wrote: no hashes, no expiries. Its rate-limit keys and
    delete fences lost the TTL they always have, so they must not come back for good."""
    await populate(real_client)
    before = await snapshot(real_client)
    file = tmp_path / "b"
    assert await cli(redis_server, "backup", str(file)) == OK
    lines = read_lines(file)
    header = {**orjson.loads(lines[0]), "version": 1}
    records = [orjson.loads(line) for line in lines[1:-1]]
    old = [{k: r[k] for k in ("k", "t", "v")} for r in records if r["t"] != "hash"]
    old.append({"k": keys.delete_fence("user:user_1"), "t": "string", "v": "1"})
    old.append({"k": keys.rate_key("0" * 64, "read"), "t": "string", "v": "1.5"})
    write_file(file, header, old)
    await real_client.flushall()
    capsys.readouterr()
    assert await cli(redis_server, "restore", str(file)) == OK

    assert await snapshot(real_client) == {
        k: v for k, v in before.items() if not k.startswith(b"mf:token:")
    }
    assert "2 expired, not restored" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("version", "record", "mentions"),
    [
        (3, {"k": "user_counter", "t": "string", "v": "1"}, "version 3 is not one"),
        (1, {"k": "mf:token:ab", "t": "hash", "v": {"role": "admin"}}, "bad type"),
        (1, {"k": "user_counter", "t": "string", "v": "1", "pxat": 1}, "fields k, t, v"),
        (2, {"k": "user_counter", "t": "string", "v": "1", "pxat": "soon"}, "expiry"),
        (2, {"k": "mf:token:ab", "t": "hash", "v": {"role": 1}}, "bad type"),
    ],
)
async def test_records_the_version_does_not_allow_are_rejected(
    redis_server: EmbeddedRedis,
    real_client: Redis,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    version: int,
    record: dict[str, Any],
    mentions: str,
) -> None:
    file = tmp_path / "b"
    write_file(file, {"format": "multiframe-backup", "version": version}, [record])
    assert await cli(redis_server, "restore", str(file)) == PROBLEMS
    assert mentions in capsys.readouterr().err
    assert await real_client.dbsize() == 0


@pytest.mark.parametrize("with_user_admin", [False, True])
async def test_tokens_of_admin_come_back_only_beside_a_user_admin(
    redis_server: EmbeddedRedis,
    real_client: Redis,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    with_user_admin: bool,
) -> None:
    """Without a user ``admin`` in the file, a token of user id ``admin`` can only be the
    operator's token an older version stored: another deployment's admin key, left out.
    Beside a user ``admin`` it is that user's own token (it follows the user's role)."""
    digest = token_hash("mf_old_operator_token")
    records: list[dict[str, Any]] = [
        {"k": keys.token_key(digest), "t": "hash", "v": {"kind": "api_key", "role": "admin",
                                                          "user_id": "admin"}},
        {"k": keys.user_tokens_key("admin"), "t": "set", "v": [digest]},
        {"k": "user_counter", "t": "string", "v": "3"},
    ]  # fmt: skip
    if with_user_admin:
        user = {"user_id": "admin", "username": "Root", "email": "r@x.io", "role": "admin",
                "created_at": "2026-01-01T00:00:00"}  # fmt: skip
        records.append({"k": "user:admin", "t": "json", "v": orjson.dumps(user).decode()})
        records += [{"k": k, "t": "string", "v": "admin"} for k in held(SEED_NAMES, USER, user)]
    file = tmp_path / "b"
    write_file(file, {"format": "multiframe-backup", "version": 2}, records)
    capsys.readouterr()
    assert await cli(redis_server, "restore", str(file)) == OK
    left_out = 0 if with_user_admin else 2
    assert f"{left_out} operator-token keys left out" in capsys.readouterr().out
    assert await real_client.exists(keys.token_key(digest)) == with_user_admin
    assert await real_client.exists(keys.user_tokens_key("admin")) == with_user_admin
    assert await real_client.get("user_counter") == b"3"


async def test_admin_command_locks_are_left_out_of_backups_and_restores(
    redis_server: EmbeddedRedis,
    real_client: Redis,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A reindex running during the backup must not lock the restored server out of reindexing.
    await populate(real_client)
    lock = keys.lock_key("reindex")
    await real_client.set(lock, "host:1:tag", px=30_000)
    file = tmp_path / "b"
    assert await cli(redis_server, "backup", str(file)) == OK
    assert not [line for line in read_lines(file) if b'"mf:lock:' in line]
    assert await cli(redis_server, "restore", str(file), "--replace") == OK
    assert not await real_client.exists(lock)


async def test_idempotency_records_are_left_out_and_the_backup_restores(
    redis_server: EmbeddedRedis,
    real_client: Redis,
    tmp_path: Path,
) -> None:
    # Review 20a: one keyed write made every backup of the next 24 h unrestorable.
    await populate(real_client)
    record = keys.idempotency_key("user_1", "ab" * 32)
    await real_client.set(record, b"done\nfp\n201\nnone\n", px=60_000)
    file = tmp_path / "b"
    assert await cli(redis_server, "backup", str(file)) == OK
    assert not [line for line in read_lines(file) if b"mf:idem:" in line]
    assert await cli(redis_server, "restore", str(file), "--replace") == OK
    assert not await real_client.exists(record)
