"""``MULTIFRAME_MIN_REPLICAS`` through the API, on the embedded server (no replica attached):
every write answers 503 ``not_durable`` with Retry-After and the document it wrote in
``details``, never a 2xx; the retries the README describes find the first attempt
(a read by the id in details, 409 for an explicit id or taken values, 412 for If-Match, 404
for a delete); reads are served as usual."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from app import create_app
from app.config import Settings
from keyspace import Durability, connect
from keyspace.server import EmbeddedRedis
from tests.api.conftest import ADMIN_TOKEN, AUTH

pytestmark = pytest.mark.redis

Client = TestClient[web.Request, web.Application]
ADA = {"username": "Ada", "email": "ada@example.com", "role": "designer"}
REPLICAS = {"required": 1, "confirmed": 0}


@pytest.fixture
async def redis(redis_server: EmbeddedRedis) -> AsyncIterator[Redis]:
    client = connect(redis_server.url)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
async def api(redis: Redis) -> AsyncIterator[Client]:
    settings = Settings(admin_token=ADMIN_TOKEN, durability=Durability(1, timeout_ms=50))
    client: Client = TestClient(TestServer(create_app(settings, client=redis)), headers=AUTH)
    await client.start_server()
    yield client
    await client.close()


async def not_durable(resp: Any) -> dict[str, Any]:
    """The 503 ``not_durable`` error's details but the request's id (asserting the status,
    code, Retry-After, and that id: the response's X-Request-ID)."""
    body = await resp.json()
    assert resp.status == 503, body
    assert body["error"]["code"] == "not_durable"
    assert resp.headers["Retry-After"] == "2"
    assert "ETag" not in resp.headers and "Location" not in resp.headers
    details: dict[str, Any] = body["error"]["details"]
    assert details.pop("request_id") == resp.headers["X-Request-ID"]
    assert details["replicas"] == REPLICAS
    return details


async def test_a_create_is_503_naming_its_id_and_revision_and_a_read_finds_it(
    api: Client,
) -> None:
    details = await not_durable(await api.post("/api/users", json=ADA))
    assert details["collection"] == "users" and details["id"] == "user_1"
    read = await api.get(f"/api/users/{details['id']}")  # how a client checks
    assert read.status == 200
    assert read.headers["ETag"] == f'"{details["revision"]}"'
    assert (await read.json())["username"] == "Ada"
    # A blind retry of the create is refused: its values are taken, nothing is duplicated.
    retried = await api.post("/api/users", json=ADA)
    assert retried.status == 409
    assert (await retried.json())["error"]["code"] == "unique_conflict"
    listed = await api.get("/api/users")
    assert listed.status == 200 and (await listed.json())["total"] == 1


async def test_retries_of_explicit_ids_if_match_writes_and_deletes_meet_the_first(
    api: Client,
) -> None:
    explicit = {**ADA, "user_id": "user_50"}
    assert (await not_durable(await api.post("/api/users", json=explicit)))["id"] == "user_50"
    again = await api.post("/api/users", json=explicit)
    assert again.status == 409 and (await again.json())["error"]["code"] == "already_exists"

    etag = (await api.get("/api/users/user_50")).headers["ETag"]
    patch = {"role": "engineer"}
    details = await not_durable(
        await api.patch("/api/users/user_50", json=patch, headers={"If-Match": etag})
    )
    now = await api.get("/api/users/user_50")
    assert now.headers["ETag"] == f'"{details["revision"]}"' != etag
    retried = await api.patch("/api/users/user_50", json=patch, headers={"If-Match": etag})
    assert retried.status == 412  # the first one is there

    deleted = await not_durable(await api.delete("/api/users/user_50"))
    assert deleted == {"collection": "users", "id": "user_50", "replicas": REPLICAS}
    assert (await api.delete("/api/users/user_50")).status == 404


async def test_no_write_is_ever_acknowledged(api: Client) -> None:
    statuses = []
    for n in range(5):
        body = {"username": f"User{n}", "email": f"user{n}@example.com", "role": "designer"}
        statuses.append((await api.post("/api/users", json=body)).status)
    config = {"subscription_price": 5}
    statuses.append((await api.patch("/api/config/system", json=config)).status)
    metrics = {"performance": 1, "efficiency": 1, "temperature": 1}
    statuses.append((await api.put("/api/analytics/metrics/chip_1", json=metrics)).status)
    statuses.append((await api.patch("/api/users/user_1", json={"role": "admin"})).status)
    statuses.append((await api.post("/api/users/user_1/tokens", json={})).status)
    assert statuses == [503] * 9
    assert (await api.get("/api/users/user_5")).status == 200  # written, then reported


async def test_a_primary_refusing_writes_for_lack_of_replicas_is_503_unavailable(
    api: Client, redis: Redis
) -> None:
    # An operator's min-replicas-to-write (the service sets none): NOREPLICAS, nothing written.
    await redis.config_set("min-replicas-to-write", 1)
    try:
        resp = await api.post("/api/users", json=ADA)
        assert resp.status == 503
        assert (await resp.json())["error"]["code"] == "redis_unavailable"
        assert resp.headers["Retry-After"]
    finally:
        await redis.config_set("min-replicas-to-write", 0)
    assert not await redis.exists("user:user_1")


async def test_openapi_names_not_durable_on_writes_only(api: Client) -> None:
    doc = await (await api.get("/openapi.json")).json()
    paths = doc["paths"]
    assert "not_durable" in paths["/api/users"]["post"]["responses"]["503"]["description"]
    assert "not_durable" in paths["/api/users/{id}"]["delete"]["responses"]["503"]["description"]
    assert "not_durable" not in paths["/api/users"]["get"]["responses"]["503"]["description"]
