"""The admin routes on fakeredis and the real server, with the shelf system of
tests/migration_world.py: admins only (403 for members), ``POST /api/admin/migrate`` 202 and
then 200 once nothing is pending, 409 while a run holds the lock, ``POST /api/admin/seed``
refused in production mode."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from app import create_app
from app.config import Settings
from keyspace import Keyspace, demo
from keyspace.exclusive import AdminLock
from tests.migration_world import book_id, register, shelve_old_books, world

from .conftest import ADMIN_TOKEN, AUTH, backend

Client = TestClient[web.Request, web.Application]
SYSTEM = world(2)


@pytest.fixture(
    params=[
        pytest.param("fake", id="fakeredis"),
        pytest.param("real", id="redis", marks=pytest.mark.redis),
    ]
)
async def shelf(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Client, Redis]]:
    redis = await backend(request)
    await shelve_old_books(redis, 250)
    register(monkeypatch, SYSTEM)
    app = create_app(Settings(admin_token=ADMIN_TOKEN, system="shelf"), client=redis)
    client: Client = TestClient(TestServer(app), headers=AUTH)
    await client.start_server()
    yield client, redis
    await client.close()
    await redis.aclose()


async def _json(response: Any, status: int) -> Any:
    assert response.status == status, await response.text()
    return await response.json()


async def test_members_are_refused_every_admin_route(shelf: tuple[Client, Redis]) -> None:
    api, _ = shelf
    member = await _json(await api.post("/api/members", json={}), 201)
    minted = await _json(await api.post(f"/api/members/{member['id']}/tokens", json={}), 201)
    headers = {"Authorization": f"Bearer {minted['token']}"}
    for method, path in [
        ("POST", "/api/admin/migrate"),
        ("GET", "/api/admin/migration-status"),
        ("POST", "/api/admin/seed"),
    ]:
        body = await _json(await api.request(method, path, headers=headers), 403)
        assert body["error"]["details"]["rule"] == "admin-only"


async def test_migrate_runs_in_the_background_and_status_follows_it(
    shelf: tuple[Client, Redis],
) -> None:
    api, redis = shelf
    before = await _json(await api.get("/api/admin/migration-status"), 200)
    assert [m["version"] for m in before["pending"]] == [1, 2] and before["applied"] == []
    holder = AdminLock(Keyspace(redis, SYSTEM.schema), "migrate")
    await holder.take()  # a multiframe-admin migrate running elsewhere
    busy = await _json(await api.post("/api/admin/migrate"), 409)
    assert busy["error"]["code"] == "busy" and busy["error"]["details"]["locked_by"]
    await holder.release()
    started = await api.post("/api/admin/migrate")
    body = await _json(started, 202)
    assert started.headers["Location"] == "/api/admin/migration-status"
    assert body["last_run"]["state"] in ("running", "done")
    for _ in range(300):
        state = await _json(await api.get("/api/admin/migration-status"), 200)
        if state["last_run"]["state"] != "running":
            break
        await asyncio.sleep(0.05)
    assert state["last_run"]["state"] == "done" and state["last_run"]["applied"] == [1, 2]
    assert [a["version"] for a in state["applied"]] == [1, 2] and state["pending"] == []
    assert state["applied"][0]["documents"] == 250 and state["locked_by"] is None
    again = await _json(await api.post("/api/admin/migrate"), 200)  # nothing pending
    assert again["pending"] == []
    doc = await _json(await api.get(f"/api/books/{book_id(7)}"), 200)
    assert doc == {"id": book_id(7), "title": "Book 7", "writer": "Author 7", "format": "paper"}


async def test_seed_loads_the_demo_outside_production_only(
    shelf: tuple[Client, Redis], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, _ = shelf
    (tmp_path / "shelf").mkdir()
    record = {"id": book_id(9999), "title": "Demo", "writer": "W"}
    (tmp_path / "shelf" / "demo.json").write_bytes(orjson.dumps({"books": [record]}))
    monkeypatch.setattr(demo, "DEMO", tmp_path)
    refused = await _json(await api.post("/api/admin/seed"), 409)
    assert refused["error"]["code"] == "production_mode"
    await _json(await api.patch("/api/settings", json={"system": {"mode": "development"}}), 200)
    loaded = await _json(await api.post("/api/admin/seed"), 200)
    assert loaded == {"created": 1, "present": 0, "differing": []}
    again = await _json(await api.post("/api/admin/seed"), 200)
    assert again == {"created": 0, "present": 1, "differing": []}
