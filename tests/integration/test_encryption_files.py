"""Sealed sensitive fields on disk: after ``encrypt`` and ``rotate-key`` through the CLI, the
embedded server's RDB and AOF files (after BGSAVE and BGREWRITEAOF) and a backup file hold
no plaintext of them (docs/encryption.md)."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

import pytest
from redis.asyncio import Redis

from keyspace import NFT, USER, Keyspace, connect, crypto, keyring, parse
from keyspace.connection import call
from keyspace.server import EmbeddedRedis
from scripts.cli import run_cli
from scripts.exits import OK, REFUSED

pytestmark = pytest.mark.redis

K1, K2 = bytes(range(32)), bytes(range(1, 33))
EMAILS = [f"Secret.Person{n}@Hidden-Example.com" for n in range(1, 6)]
OWNER = "0x" + "5eC2e7" * 6 + "AbCd"


def secrets_in(blob: bytes) -> list[str]:
    low = blob.lower()
    return [s for s in [*EMAILS, OWNER] if s.lower().encode() in low]


async def settled(client: Redis) -> None:
    """Wait for BGSAVE and BGREWRITEAOF to be done."""
    for _ in range(600):
        info = await client.info("persistence")
        busy = ("rdb_bgsave_in_progress", "aof_rewrite_in_progress", "aof_rewrite_scheduled")
        if not any(int(info.get(name, 0)) for name in busy):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the server did not finish saving")


def test_no_file_holds_a_sensitive_plaintext(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = EmbeddedRedis(tmp_path / "data")
    server.start()

    async def run() -> None:
        client = connect(server.admin_url)
        plain = Keyspace(client)
        await plain.setup()
        for n, email in enumerate(EMAILS, 1):
            await plain.create(USER, {"username": f"p{n}", "email": email, "role": "designer"})
        await plain.create(NFT, {"user_id": "user_1", "chip_id": "chip_1", "owner": OWNER})
        url = ["--redis-url", server.admin_url]
        monkeypatch.setenv("MULTIFRAME_ENCRYPTION_KEY", K1.hex())
        assert await run_cli([*url, "encrypt"]) == OK
        key_file = tmp_path / "new.key"
        key_file.write_text(K2.hex() + "\n")
        assert await run_cli([*url, "rotate-key", "--new-key-file", str(key_file)]) == OK
        monkeypatch.setenv("MULTIFRAME_ENCRYPTION_KEY", K1.hex())  # retired now: refused
        assert await run_cli([*url, "check"]) == REFUSED
        monkeypatch.setenv("MULTIFRAME_ENCRYPTION_KEY", K2.hex())
        old_route = f"next:{crypto.key_id(K1)}"
        assert await client.hexists("mf:crypto", old_route)  # a late service's way in
        assert await run_cli([*url, "rotate-key", "--forget-retired"]) == OK
        assert not await client.hexists("mf:crypto", old_route)
        backup = tmp_path / "backup.jsonl.gz"
        assert await run_cli([*url, "backup", str(backup)]) == OK
        assert secrets_in(gzip.decompress(backup.read_bytes())) == []
        await client.bgrewriteaof()
        await settled(client)
        await client.bgsave()
        await settled(client)
        files = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
        assert any(p.suffix == ".rdb" for p in files) and any(".aof" in p.name for p in files)
        for path in files:
            assert secrets_in(path.read_bytes()) == [], path
        reader = Keyspace(client)
        await reader.setup()
        await reader.unlock(K2)
        assert (await reader.get(USER, "user_3")).doc["email"] == EMAILS[2]
        assert (await reader.get(NFT, "nft_user_1_chip_1")).doc["owner"] == OWNER
        sealed = await call(client, "JSON.GET", "user:user_3", "$.email")
        assert crypto.key_id(K2) in sealed.decode()
        assert await run_cli([*url, "check"]) == OK
        await client.aclose()
        # The backup restores onto an empty server and opens with the key alone.
        fresh = EmbeddedRedis(tmp_path / "fresh")
        fresh.start()
        try:
            target = ["--redis-url", fresh.admin_url]
            assert await run_cli([*target, "restore", str(backup)]) == OK
            restored = connect(fresh.admin_url)
            ks = Keyspace(restored)
            await ks.setup()
            await ks.unlock(K2)
            assert (await ks.get(USER, "user_5")).doc["email"] == EMAILS[4]
            found = await ks.list(USER, parse(USER, {"email": [EMAILS[1].upper()]}))
            assert [d["user_id"] for d in found.items] == ["user_2"]
            await restored.aclose()
        finally:
            fresh.stop()

    try:
        asyncio.run(run())
    finally:
        server.stop()


def test_restoring_a_backup_from_before_encryption_beside_a_running_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server = EmbeddedRedis(tmp_path / "data")
    server.start()

    async def run() -> None:
        client = connect(server.admin_url)
        plain = Keyspace(client)
        await plain.setup()
        await plain.create(USER, {"username": "p1", "email": EMAILS[0], "role": "designer"})
        url = ["--redis-url", server.admin_url]
        backup = tmp_path / "plain.jsonl.gz"
        assert await run_cli([*url, "backup", str(backup)]) == OK
        monkeypatch.setenv("MULTIFRAME_ENCRYPTION_KEY", K1.hex())
        assert await run_cli([*url, "encrypt"]) == OK
        service = Keyspace(client)
        await service.setup()
        await service.unlock(K1)
        capsys.readouterr()
        # The file's values in clear are no disagreement: it says what to do instead.
        assert await run_cli([*url, "restore", "--replace", str(backup)]) == OK
        assert "holds no keyring" in capsys.readouterr().err
        assert not await client.exists("mf:crypto")
        made = await service.create(
            USER, {"username": "p2", "email": EMAILS[1], "role": "designer"}
        )
        ring = await keyring.read(client, service.schema.names)
        assert ring["current"] == crypto.key_id(K1) and ring["plaintext"] == "1"
        assert secrets_in(await call(client, "JSON.GET", f"user:{made.doc['user_id']}", ".")) == []
        assert await run_cli([*url, "encrypt"]) == OK
        assert await run_cli([*url, "check"]) == OK
        await client.aclose()

    try:
        asyncio.run(run())
    finally:
        server.stop()
