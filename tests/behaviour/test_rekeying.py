"""``encrypt`` and ``rotate-key`` beside live writers (keyspace.rekeying), on every backend:
resumable, nothing lost, every value sealed under the one key at the end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest
from redis.asyncio import Redis

from keyspace import NFT, USER, Keyspace, UniqueConflict, crypto, keyring, parse, rekeying
from keyspace.connection import call
from tests.conftest import BACKENDS, client_for

K1 = bytes(range(32))
K2 = bytes(range(1, 33))
USERS = 24


@pytest.fixture(params=BACKENDS)
async def client(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Redis, bool]]:
    backend: str = request.param
    redis = await client_for(request, backend)
    yield redis, backend != "real-scan"
    await redis.aclose()


async def keyspace(client: Redis, search: bool, key: bytes | None) -> Keyspace:
    ks = Keyspace(client, use_search=None if search else False)
    await ks.setup()
    await ks.unlock(key)
    return ks


def user(n: int, email: str | None = None) -> dict[str, str]:
    return {
        "user_id": f"user_{n}",
        "username": f"u{n}",
        "email": email or f"Person{n}@Example.com",
        "role": "designer",
    }


async def stored_emails(client: Redis) -> dict[str, str]:
    out = {}
    async for key in client.scan_iter(match="user:*"):
        doc = orjson.loads(await call(client, "JSON.GET", key, "."))
        out[doc["user_id"]] = doc["email"]
    return out


async def test_encrypt_is_resumable_beside_writes_and_leaves_no_plaintext(
    client: tuple[Redis, bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    redis, search = client
    plain = await keyspace(redis, search, None)
    for n in range(1, USERS + 1):
        await plain.create(USER, user(n))
    await plain.create(NFT, {"user_id": "user_1", "chip_id": "c1", "owner": "0x" + "Ab" * 20})
    service = await keyspace(redis, search, K1)  # the service restarted with a key
    assert service.sealer is not None and service.sealer.plaintext_left
    with pytest.raises(UniqueConflict):  # a plaintext claim still guards its value
        await service.create(USER, user(99, "PERSON3@example.com"))
    admin = await keyspace(redis, search, K1)
    monkeypatch.setattr(rekeying, "BATCH", 4)
    sealed = {"so far": 0}

    def interrupt(_spec: object, _read: int, rewritten: int) -> None:
        sealed["so far"] += rewritten  # stopped once some, not all, are sealed
        if sealed["so far"] >= 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await rekeying.encrypt(admin, batches=interrupt)
    half = await stored_emails(redis)
    assert any(crypto.parse_sealed(v) for v in half.values())
    assert any(not crypto.parse_sealed(v) for v in half.values())

    async def writes() -> None:
        for n in range(1, 9):
            await service.patch(USER, f"user_{n}", {"username": f"w{n}"})
            await service.create(USER, user(100 + n))

    writer = asyncio.create_task(writes())
    summary = await rekeying.encrypt(admin)
    await writer
    assert summary.finished and not summary.unreadable
    emails = await stored_emails(redis)
    assert len(emails) == USERS + 8 and all(crypto.parse_sealed(v) for v in emails.values())
    assert (await keyring.read(redis, service.schema.names))["plaintext"] == "0"
    claims = [k async for k in redis.scan_iter(match="mf:uniq:user:email:*")]
    assert len(claims) == USERS + 8 and all(b":enc:" in k for k in claims)
    assert not [k async for k in redis.scan_iter(match="mf:migrating:*")]
    reader = await keyspace(redis, search, K1)
    for n in range(1, 9):
        got = (await reader.get(USER, f"user_{n}")).doc
        assert got["username"] == f"w{n}" and got["email"] == f"Person{n}@Example.com"
    found = await reader.list(USER, parse(USER, {"email": ["person5@example.com"]}))
    assert [d["user_id"] for d in found.items] == ["user_5"]
    owned = await reader.list(NFT, parse(NFT, {"owner": ["0x" + "ab" * 20]}))
    assert owned.total == 1


async def test_rotation_under_concurrent_writes_loses_nothing(client: tuple[Redis, bool]) -> None:
    redis, search = client
    service = await keyspace(redis, search, K1)
    for n in range(1, USERS + 1):
        await service.create(USER, user(n))
    admin = await keyspace(redis, search, K1)
    expected: dict[str, str] = {}

    async def writes() -> None:
        for round_ in range(6):
            for n in range(1, 7):
                name = f"r{round_}n{n}"
                await service.patch(USER, f"user_{n}", {"username": name})
                expected[f"user_{n}"] = name
            made = await service.create(USER, user(200 + round_))
            expected[made.doc["user_id"]] = made.doc["username"]
            await asyncio.sleep(0)

    writer = asyncio.create_task(writes())
    summary = await rekeying.rotate(admin, K2, settle=0.2)
    await writer
    assert summary.finished and not summary.unreadable
    new = crypto.key_id(K2)
    stored = await stored_emails(redis)
    assert all((s := crypto.parse_sealed(v)) and s.kid == new for v in stored.values())
    fresh = await keyspace(redis, search, K2)  # the new key alone reads everything
    for doc_id, name in expected.items():
        assert (await fresh.get(USER, doc_id)).doc["username"] == name
    page = await fresh.list(USER, parse(USER, {"email": ["person7@example.com"]}))
    assert [d["user_id"] for d in page.items] == ["user_7"]
    with pytest.raises(keyring.KeyringError, match="retired"):
        await keyspace(redis, search, K1)
    # The service that held the old key learned the new one and keeps working.
    assert (await service.patch(USER, "user_1", {"username": "after"})).doc["username"] == "after"


async def test_a_plaintext_that_starts_with_enc_is_sealed_like_any_other(
    client: tuple[Redis, bool],
) -> None:
    redis, search = client
    plain = await keyspace(redis, search, None)  # legal before encryption was turned on
    await plain.create(USER, user(1, "enc:x@example.com"))
    await plain.create(USER, user(2))
    service = await keyspace(redis, search, K1)
    patched = await service.patch(USER, "user_1", {"role": "engineer"})  # an unrelated field
    assert patched.doc["email"] == "enc:x@example.com"
    summary = await rekeying.encrypt(await keyspace(redis, search, K1))
    assert summary.finished and not summary.unreadable
    assert (await keyring.read(redis, service.schema.names))["plaintext"] == "0"
    assert all(crypto.parse_sealed(v) for v in (await stored_emails(redis)).values())
    reader = await keyspace(redis, search, K1)
    assert (await reader.get(USER, "user_1")).doc["email"] == "enc:x@example.com"
    found = await reader.list(USER, parse(USER, {"email": ["ENC:X@example.com"]}))
    assert [d["user_id"] for d in found.items] == ["user_1"]
    with pytest.raises(UniqueConflict):
        await reader.create(USER, user(3, "enc:X@example.com"))


async def test_a_service_that_missed_the_rotation_catches_up_until_the_route_is_forgotten(
    client: tuple[Redis, bool],
) -> None:
    redis, search = client
    service = await keyspace(redis, search, K1)
    await service.create(USER, user(1))
    late = await keyspace(redis, search, K1)  # paused: reads the keyring only after the end
    stuck = await keyspace(redis, search, K1)
    summary = await rekeying.rotate(await keyspace(redis, search, K1), K2, settle=0.05)
    assert summary.finished
    ring = await keyring.read(redis, service.schema.names)
    assert f"retired:{crypto.key_id(K1)}" in ring and f"check:{crypto.key_id(K1)}" not in ring
    # The late service learns the new key through the route the rotation left.
    assert (await late.get(USER, "user_1")).doc["email"] == "Person1@Example.com"
    assert (await late.patch(USER, "user_1", {"role": "engineer"})).doc["role"] == "engineer"
    made = await late.create(USER, user(2))
    assert crypto.parse_sealed((await stored_emails(redis))[made.doc["user_id"]]).kid == (  # type: ignore[union-attr]
        crypto.key_id(K2)
    )
    assert not late.keys.stranded and (await late.readiness())["ready"]
    with pytest.raises(keyring.KeyringError, match="retired"):  # a start with it is refused
        await keyspace(redis, search, K1)

    # Once forgotten, the old key opens nothing: a service still holding only it answers a
    # clear KeyRetired (503 in the API) and is not ready; nothing is written.
    assert await rekeying.forget_retired(await keyspace(redis, search, K2)) == [crypto.key_id(K1)]
    assert f"next:{crypto.key_id(K1)}" not in await keyring.read(redis, service.schema.names)
    with pytest.raises(keyring.KeyRetired, match=crypto.key_id(K2)) as refused:
        await stuck.get(USER, "user_1")
    assert refused.value.code == "encryption_key_retired"
    with pytest.raises(keyring.KeyRetired):
        await stuck.patch(USER, "user_1", {"role": "designer"})
    report = await stuck.readiness()
    assert not report["ready"] and "restart this service" in report["encryption"]
    assert (await keyspace(redis, search, K2)).sealer is not None
    assert (await late.get(USER, "user_1")).doc["role"] == "engineer"  # holds K2 already


async def test_rotating_back_to_a_retired_key_makes_it_current_and_startable(
    client: tuple[Redis, bool],
) -> None:
    redis, search = client
    service = await keyspace(redis, search, K1)
    await service.create(USER, user(1))
    assert (await rekeying.rotate(await keyspace(redis, search, K1), K2, settle=0.05)).finished
    assert (await rekeying.rotate(await keyspace(redis, search, K2), K1, settle=0.05)).finished
    ring = await keyring.read(redis, service.schema.names)
    old, back = crypto.key_id(K2), crypto.key_id(K1)
    assert ring["current"] == back and f"retired:{back}" not in ring and f"retired:{old}" in ring
    started = await keyspace(redis, search, K1)  # the current key starts
    assert (await started.get(USER, "user_1")).doc["email"] == "Person1@Example.com"
    with pytest.raises(keyring.KeyringError, match="retired"):
        await keyspace(redis, search, K2)
    # A keyring an earlier version left naming its current key retired still starts with it.
    await redis.hset(service.schema.names.crypto_key(), f"retired:{back}", "2020-01-01T00:00:00")
    assert (await keyspace(redis, search, K1)).sealer is not None


async def test_a_keyring_gone_under_a_running_service_is_made_again_as_at_a_start(
    client: tuple[Redis, bool], caplog: pytest.LogCaptureFixture
) -> None:
    # `restore --replace` of a backup taken before encryption: the keyring is gone and the
    # documents are in clear, while services holding the key keep running.
    redis, search = client
    first, second = await keyspace(redis, search, K1), await keyspace(redis, search, K1)
    await first.create(USER, user(1))
    names = first.schema.names
    assert (await keyring.read(redis, names))["plaintext"] == "0"
    await redis.delete(names.crypto_key())
    restored = await keyspace(redis, search, None)  # no keyring: writes in clear
    await restored.create(USER, user(2, "Restored@Example.com"))
    made = await first.create(USER, user(3))  # refused `rekeyed`, keyring made, retried
    assert crypto.parse_sealed((await stored_emails(redis))[made.doc["user_id"]])
    ring = await keyring.read(redis, names)
    assert ring["current"] == crypto.key_id(K1) and ring["plaintext"] == "1"
    assert "made it again under key id" in caplog.text
    # The other service has not read it yet: its first write learns plaintext is left.
    with pytest.raises(UniqueConflict):
        await second.create(USER, user(4, "RESTORED@example.com"))
    for service in (first, second):
        assert (await service.readiness())["ready"]
        found = await service.list(USER, parse(USER, {"email": ["restored@example.com"]}))
        assert [d["user_id"] for d in found.items] == ["user_2"]
        # The blind-index key is the one they held: tokens sealed before still match.
        found = await service.list(USER, parse(USER, {"email": ["person1@example.com"]}))
        assert [d["user_id"] for d in found.items] == ["user_1"]
    assert (await rekeying.encrypt(await keyspace(redis, search, K1))).finished
    assert all(crypto.parse_sealed(v) for v in (await stored_emails(redis)).values())


async def test_a_keyring_made_again_around_another_blind_key_is_learnt_before_a_write(
    client: tuple[Redis, bool],
) -> None:
    redis, search = client
    running = await keyspace(redis, search, K1)
    await redis.delete(running.schema.names.crypto_key())  # a flush; nothing sensitive stored
    started = await keyspace(redis, search, K1)  # makes it, with a blind-index key of its own
    made = await running.create(USER, user(1))  # refused `rekeyed` until it reads the new one
    found = await started.list(USER, parse(USER, {"email": ["person1@example.com"]}))
    assert [d["user_id"] for d in found.items] == [made.doc["user_id"]]
