"""Shared helpers of the security suite: an app per test on the embedded real Redis, users
with a role and a token minted through the API, and views of the Redis state."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from app import create_app
from app.config import Settings
from keyspace import connect
from keyspace.connection import call
from keyspace.server import EmbeddedRedis

Client = TestClient[web.Request, web.Application]

ADMIN_TOKEN = "security-admin-token-7f3c9a51e2b84d06a1c5"
BODY_LIMIT = 64 * 1024
COLLECTIONS = ("users", "drivers", "collabs", "processes", "nfts", "quests")
OWNER_ADDRESS = "0x1234567890123456789012345678901234567890"

_ID = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,299}"
_PREFIXES = "user|driver|collab|process|nft|quest"
KNOWN_KEY = re.compile(
    rf"(?:{_PREFIXES}):{_ID}|config:system|analytics:metrics|(?:{_PREFIXES})_counter|mf:.+"
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def settings(**overrides: Any) -> Settings:
    """The suite's settings: the admin token and a small body limit unless overridden."""
    return Settings(**{"admin_token": ADMIN_TOKEN, "max_body": BODY_LIMIT, **overrides})


# --- documents --------------------------------------------------------------------------


def chip(cores: int = 8) -> dict[str, Any]:
    return {"type": "quantum_processor", "cores": cores, "frequency": "1GHz", "architecture": "Q"}


def new_user(name: str, role: str) -> dict[str, Any]:
    return {"username": name, "email": f"{name.lower()}@example.com", "role": role}


def new_doc(collection: str, user_id: str, n: int = 1) -> dict[str, Any]:
    """A valid create body of ``collection`` (not users) owned by ``user_id``."""
    bodies: dict[str, dict[str, Any]] = {
        "drivers": {"chip_id": f"chip_{n}", "version": "1.0", "chip_data": chip()},
        "collabs": {"chip_id": f"chip_{n}", "chip_data": chip(), "collaborators": []},
        "processes": {"chip_data": chip()},
        "nfts": {"chip_id": f"chip_{n}", "owner": OWNER_ADDRESS},
        "quests": {"title": f"Quest {n}", "description": "Design a chip", "reward": "nft_x"},
    }
    return {"user_id": user_id, **bodies[collection]}


def id_field(collection: str) -> str:
    return {"processes": "process_id"}.get(collection, collection[:-1] + "_id")


# --- actors ---------------------------------------------------------------------------------


@dataclass
class Actor:
    """A caller with a token; every request carries its Authorization header."""

    api: Client
    user_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)

    async def call(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, **kw: Any
    ) -> ClientResponse:
        merged = {**self.headers, **(headers or {})}
        response: ClientResponse = await self.api.request(method, path, headers=merged, **kw)
        return response

    async def get(self, path: str, **kw: Any) -> ClientResponse:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> ClientResponse:
        return await self.call("POST", path, **kw)

    async def put(self, path: str, **kw: Any) -> ClientResponse:
        return await self.call("PUT", path, **kw)

    async def patch(self, path: str, **kw: Any) -> ClientResponse:
        return await self.call("PATCH", path, **kw)

    async def delete(self, path: str, **kw: Any) -> ClientResponse:
        return await self.call("DELETE", path, **kw)

    async def json(self, path: str) -> Any:
        resp = await self.get(path)
        assert resp.status == 200, await resp.text()
        return await resp.json()

    async def create(self, collection: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = await self.post(f"/api/{collection}", json=body)
        assert resp.status == 201, await resp.text()
        doc: dict[str, Any] = await resp.json()
        return doc


async def mint(by: Actor, user_id: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    resp = await by.post(f"/api/users/{user_id}/tokens", json=body or {})
    assert resp.status == 201, await resp.text()
    minted: dict[str, Any] = await resp.json()
    return minted


async def make_actor(admin: Actor, name: str, role: str) -> Actor:
    """A new user with ``role`` (created by the admin) and a session token minted for it."""
    user = await admin.create("users", new_user(name, role))
    minted = await mint(admin, user["user_id"])
    return Actor(admin.api, user["user_id"], minted["token"])


# --- error bodies ---------------------------------------------------------------------------


async def error_of(resp: ClientResponse, status: int) -> dict[str, Any]:
    """The error object of a response with ``status`` in the one error format."""
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    error: dict[str, Any] = body["error"]
    return error


async def forbidden(resp: ClientResponse, rule: str) -> None:
    error = await error_of(resp, 403)
    assert error["code"] == "forbidden"
    assert error["details"]["rule"] == rule


async def client_error(resp: ClientResponse, *allowed: int) -> int:
    """Assert a refusal with one of ``allowed`` (never a 5xx) in the error format."""
    assert resp.status in allowed, f"{resp.status}: {await resp.text()}"
    await error_of(resp, resp.status)
    return resp.status


# --- Redis state ----------------------------------------------------------------------------


async def all_keys(redis: Redis) -> list[bytes]:
    return [key async for key in redis.scan_iter(match="*", count=1000)]


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


async def value_of(redis: Redis, key: bytes) -> bytes:
    """A comparable rendering of any key's value (sets and hashes in sorted order)."""
    kind = _bytes(await call(redis, "TYPE", key)).decode()
    reads = {
        "string": ("GET", key),
        "hash": ("HGETALL", key),
        "set": ("SMEMBERS", key),
        "zset": ("ZRANGE", key, 0, -1, "WITHSCORES"),
        "list": ("LRANGE", key, 0, -1),
        "stream": ("XRANGE", key, "-", "+"),  # the change feed: a refused write appends nothing
        "ReJSON-RL": ("JSON.GET", key, "."),
    }
    assert kind in reads, f"unexpected type {kind} of {key!r}"
    reply = await call(redis, *reads[kind])
    if isinstance(reply, dict):
        return b"\n".join(sorted(_bytes(k) + b"=" + _bytes(v) for k, v in reply.items()))
    if isinstance(reply, set):
        return b"\n".join(sorted(_bytes(m) for m in reply))
    if isinstance(reply, list):
        return b"\n".join(_bytes(i) for i in reply)
    return _bytes(reply)


async def snapshot(redis: Redis) -> dict[bytes, bytes]:
    """Every key and value except rate-limit state (which every request may advance)."""
    return {
        key: await value_of(redis, key)
        for key in await all_keys(redis)
        if not key.startswith(b"mf:rate:")
    }


async def assert_known_keys(redis: Redis) -> None:
    for key in await all_keys(redis):
        text = key.decode("utf-8", "replace")
        assert KNOWN_KEY.fullmatch(text), f"unexpected key {key!r}"


# --- fixtures -------------------------------------------------------------------------------


@dataclass
class Harness:
    """Builds apps on the embedded server; everything it starts is closed after the test."""

    url: str
    redis: Redis
    _clients: list[Client] = field(default_factory=list)
    _redis: list[Redis] = field(default_factory=list)

    async def client(self, app_settings: Settings | None = None) -> Client:
        """A running app with its own Redis client, as a separate server process would be."""
        redis = connect(self.url)
        self._redis.append(redis)
        api: Client = TestClient(TestServer(create_app(app_settings or settings(), client=redis)))
        await api.start_server()
        self._clients.append(api)
        return api

    async def admin(self, app_settings: Settings | None = None) -> Actor:
        """A new app and its bootstrap admin (the configured admin token)."""
        app_settings = app_settings or settings()
        assert app_settings.admin_token
        return Actor(await self.client(app_settings), "admin", app_settings.admin_token)

    async def close(self) -> None:
        for api in self._clients:
            await api.close()
        for redis in self._redis:
            await redis.aclose()


@pytest.fixture
def redis(real_client: Redis) -> Redis:
    """The shared per-test client on the embedded server (flushed before the test)."""
    return real_client


@pytest.fixture
async def harness(redis_server: EmbeddedRedis, redis: Redis) -> AsyncIterator[Harness]:
    h = Harness(redis_server.url, redis)
    yield h
    await h.close()


@pytest.fixture
async def admin(harness: Harness) -> Actor:
    """The bootstrap admin on an app with the suite's default settings."""
    return await harness.admin()


@dataclass
class World:
    """Three non-admin users and one document of each collection owned by ``alice``;
    ``carol`` is a collaborator of alice's collab, ``bob`` is a stranger to it."""

    admin: Actor
    alice: Actor
    bob: Actor
    carol: Actor
    docs: dict[str, str]  # collection -> id of alice's document


@pytest.fixture
async def world(admin: Actor) -> World:
    alice = await make_actor(admin, "Alice", "designer")
    bob = await make_actor(admin, "Bob", "engineer")
    carol = await make_actor(admin, "Carol", "engineer")
    docs = {"users": alice.user_id}
    for collection in COLLECTIONS[1:]:
        body = new_doc(collection, alice.user_id)
        if collection == "collabs":
            body["collaborators"] = [carol.user_id]
        docs[collection] = (await alice.create(collection, body))[id_field(collection)]
    return World(admin, alice, bob, carol, docs)
