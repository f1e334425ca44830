"""Sensitive fields through HTTP with MULTIFRAME_ENCRYPTION_KEY set (docs/encryption.md), on
fakeredis and the real server: plaintext in every answer, ciphertext in Redis, equality
filters and uniqueness, clear 400s for what a sealed field cannot do, and start-up refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from app import create_app
from app.config import Settings
from keyspace import crypto
from keyspace.connection import call

from .conftest import ADMIN_TOKEN, AUTH, backend

Client = TestClient[web.Request, web.Application]
Start = Callable[..., Awaitable[Client]]
KEY, OTHER = bytes(range(32)), bytes(range(1, 33))
EMAIL = "Holo@Misha.com"
OWNER = "0x" + "Ab" * 20


@pytest.fixture(
    params=[
        pytest.param("fake", id="fakeredis"),
        pytest.param("real", id="redis", marks=pytest.mark.redis),
    ]
)
async def redis(request: pytest.FixtureRequest) -> AsyncIterator[Redis]:
    client = await backend(request)
    yield client
    await client.aclose()


@pytest.fixture
async def start(redis: Redis) -> AsyncIterator[Start]:
    clients: list[Client] = []

    async def run(system: str = "multiframe", key: bytes | None = KEY) -> Client:
        settings = Settings(admin_token=ADMIN_TOKEN, system=system, encryption_key=key)
        client: Client = TestClient(TestServer(create_app(settings, client=redis)), headers=AUTH)
        clients.append(client)
        await client.start_server()
        return client

    yield run
    for client in clients:
        await client.close()


async def raw(redis: Redis, key: str) -> dict[str, object]:
    found: dict[str, object] = orjson.loads(await call(redis, "JSON.GET", key, "."))
    return found


async def test_multiframe_reads_plaintext_and_stores_ciphertext(start: Start, redis: Redis) -> None:
    api = await start()
    made = await api.post(
        "/api/users", json={"username": "HoloMisha", "email": EMAIL, "role": "designer"}
    )
    assert made.status == 201 and (await made.json())["email"] == EMAIL
    got = await api.get("/api/users/user_1")
    assert got.status == 200 and (await got.json())["email"] == EMAIL
    stored = await raw(redis, "user:user_1")
    assert str(stored["email"]).startswith(crypto.PREFIX)
    etag = got.headers["ETag"]
    patched = await api.patch(
        "/api/users/user_1", json={"username": "Holo2"}, headers={**AUTH, "If-Match": etag}
    )
    assert patched.status == 200 and (await patched.json())["email"] == EMAIL
    listed = await (await api.get("/api/users", params={"email": "holo@MISHA.com"})).json()
    assert [u["user_id"] for u in listed["items"]] == ["user_1"] and listed["items"][0][
        "email"
    ] == EMAIL
    twin = await api.post(
        "/api/users", json={"username": "Twin", "email": EMAIL.upper(), "role": "designer"}
    )
    assert twin.status == 409 and (await twin.json())["error"]["code"] == "unique_conflict"
    nft = await api.post(
        "/api/nfts", json={"user_id": "user_1", "chip_id": "chip_1", "owner": OWNER}
    )
    assert nft.status == 201 and (await nft.json())["owner"] == OWNER
    owned = await (await api.get("/api/nfts", params={"owner": OWNER.lower()})).json()
    assert owned["total"] == 1 and owned["items"][0]["owner"] == OWNER
    assert OWNER.lower() not in str(await raw(redis, "nft:nft_user_1_chip_1")).lower()


async def test_what_a_sealed_field_cannot_do_is_a_clear_400(start: Start) -> None:
    api = await start()
    for path, params in (
        ("/api/users", {"sort": "email"}),
        ("/api/users", {"email_min": "a"}),
        ("/api/nfts/aggregate", {"group_by": "owner"}),
    ):
        answer = await api.get(path, params=params)
        assert answer.status == 400, (path, params)
        assert "stored encrypted" in (await answer.json())["error"]["message"]


async def test_engineering_forge_seals_its_pgcrypto_columns(start: Start, redis: Redis) -> None:
    api = await start("engineering_forge")
    made = await api.post(
        "/api/users",
        json={"email": "ada@forge.dev", "encrypted_ssn": "078-05-1120", "username": "ada"},
    )
    assert made.status == 201, await made.text()
    body = await made.json()
    assert body["encrypted_ssn"] == "078-05-1120" and body["encrypted_private_key"] is None
    stored = await raw(redis, f"engineering_forge:users:{body['id']}")
    assert str(stored["encrypted_ssn"]).startswith(crypto.PREFIX)
    assert (await (await api.get(f"/api/users/{body['id']}")).json())["encrypted_ssn"] == (
        "078-05-1120"
    )


async def test_a_missing_or_wrong_key_stops_the_start(start: Start, redis: Redis) -> None:
    api = await start()
    await api.post("/api/users", json={"username": "A", "email": EMAIL, "role": "designer"})
    before = sorted([k async for k in redis.scan_iter()])
    with pytest.raises(SystemExit, match="is not this keyspace's"):
        await start(key=OTHER)
    with pytest.raises(SystemExit, match="set MULTIFRAME_ENCRYPTION_KEY"):
        await start(key=None)
    assert sorted([k async for k in redis.scan_iter()]) == before


async def test_off_by_default_documents_stay_seed_exact(start: Start, redis: Redis) -> None:
    api = await start(key=None)
    await api.post("/api/users", json={"username": "A", "email": EMAIL, "role": "designer"})
    assert (await raw(redis, "user:user_1"))["email"] == EMAIL
    assert not await redis.exists("mf:crypto")


async def test_a_service_whose_key_opens_nothing_any_more_is_a_clear_503(
    start: Start, redis: Redis
) -> None:
    from keyspace import Keyspace, rekeying

    api = await start()
    made = await api.post(
        "/api/users", json={"username": "eve", "email": "enc:x@example.com", "role": "designer"}
    )
    assert made.status == 201 and (await made.json())["email"] == "enc:x@example.com"
    stale = await start()  # a second service holding KEY; it misses the whole rotation
    admin = Keyspace(redis)
    await admin.unlock(KEY)
    assert (await rekeying.rotate(admin, OTHER, settle=0)).finished
    after = Keyspace(redis)
    await after.unlock(OTHER)
    await rekeying.forget_retired(after)  # before the stale one's next keyring read
    for answer in (
        await stale.get("/api/users/user_1"),
        await stale.patch("/api/users/user_1", json={"role": "engineer"}),
    ):
        assert answer.status == 503, await answer.text()
        body = await answer.json()
        assert body["error"]["code"] == "encryption_key_retired"
        assert crypto.key_id(OTHER) in body["error"]["message"]
        assert answer.headers["Retry-After"] == "5"
    ready = await stale.get("/ready")
    why = (await ready.json())["error"]["message"]
    assert ready.status == 503 and "restart this service" in why


async def test_a_replayed_create_opens_its_sealed_values_as_the_first_answer_did(
    start: Start, redis: Redis
) -> None:
    api = await start()
    body = {"username": "Holo", "email": EMAIL, "role": "designer"}
    key = {**AUTH, "Idempotency-Key": "sealed-1"}
    first = await api.post("/api/users", json=body, headers=key)
    again = await api.post("/api/users", json=body, headers=key)
    assert (first.status, again.status, again.headers["Idempotent-Replayed"]) == (201, 201, "true")
    assert await again.read() == await first.read()
    assert (await again.json())["email"] == EMAIL
    assert again.headers["ETag"] == first.headers["ETag"]
    [record] = [k async for k in redis.scan_iter(match="mf:idem:*")]
    held = await redis.get(record)
    assert isinstance(held, bytes) and held.startswith(b"done\n")
    assert EMAIL.encode() not in held  # the outcome keeps it sealed


async def test_replays_outlive_a_rotation_and_the_old_keys_forgetting(
    start: Start, redis: Redis
) -> None:
    from keyspace import Keyspace, rekeying

    api = await start()
    one = {"username": "Holo", "email": EMAIL, "role": "designer"}
    batch = [{"username": f"B{n}", "email": f"b{n}@x.com", "role": "designer"} for n in (1, 2)]
    sent = [("/api/users", one, "rot-1"), ("/api/users", batch, "rot-2")]
    firsts = []
    for path, body, name in sent:
        answer = await api.post(path, json=body, headers={**AUTH, "Idempotency-Key": name})
        assert answer.status == 201, await answer.text()
        firsts.append(await answer.read())
    records = [k async for k in redis.scan_iter(match="mf:idem:*")]
    before = {k: await redis.pttl(k) for k in records}
    admin = Keyspace(redis)
    await admin.unlock(KEY)
    summary = await rekeying.rotate(admin, OTHER, settle=0)
    assert summary.finished and summary.rewritten["idempotency"] == 2
    after = Keyspace(redis)
    await after.unlock(OTHER)
    assert await rekeying.forget_retired(after) == [crypto.key_id(KEY)]
    new = crypto.key_id(OTHER)
    for record in records:
        held = await redis.get(record)
        assert isinstance(held, bytes) and crypto.key_id(KEY).encode() not in held
        assert f":{new}:".encode() in held and EMAIL.encode() not in held
        assert 0 < await redis.pttl(record) <= before[record]  # the window it had left
    restarted = await start(key=OTHER)
    for (path, body, name), first in zip(sent, firsts, strict=True):
        again = await restarted.post(path, json=body, headers={**AUTH, "Idempotency-Key": name})
        assert (again.status, again.headers.get("Idempotent-Replayed")) == (201, "true")
        assert await again.read() == first
