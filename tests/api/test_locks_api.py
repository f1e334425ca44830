"""The lock and operation-log routes of an entity declaring them (issue 15): the contract of
``/api/<collection>/{id}/lock``, ``/lock/refresh`` and ``/ops`` through HTTP on fakeredis and
the real server, on a small system declared here (served as any system is)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate

from app import create_app, openapi
from app.config import Settings
from app.routes import route_table
from keyspace import systems
from keyspace.declare import Lockable, OpLog, ref, string, table
from keyspace.schema import IdStrategy, Schema
from keyspace.system import System

from .conftest import ADMIN_TOKEN, AUTH, backend

Client = TestClient[web.Request, web.Application]

ACCOUNT = table("account", collection="accounts", id=IdStrategy.CUID, fields=(), owner="id")
DOC = table(
    "document",
    collection="documents",
    id=IdStrategy.UUID,
    fields=(string("title"), ref("owner_id", "account", null=True)),
    owner="owner_id",
    lock=Lockable(),
    oplog=OpLog(cap=3),
)
SYSTEM = System(
    name="locking",
    title="Locking",
    schema=Schema((ACCOUNT, DOC)),
    namespace="locking:",
    principal="account",
).served()


@pytest.fixture(
    params=[
        pytest.param("fake", id="fakeredis"),
        pytest.param("real", id="redis", marks=pytest.mark.redis),
    ]
)
async def api(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Client]:
    """The test system's API on an empty Redis, with the admin token."""
    redis = await backend(request)
    # Served like a registered system: create_app asks the registry for it by name.
    monkeypatch.setattr(systems, "load", lambda name, *_, **__: SYSTEM)
    app = create_app(Settings(admin_token=ADMIN_TOKEN, system="locking"), client=redis)
    client: Client = TestClient(TestServer(app), headers=AUTH)
    await client.start_server()
    yield client
    await client.close()
    await redis.aclose()


async def created(api: Client, path: str, body: Any, **kw: Any) -> dict[str, Any]:
    response = await api.post(path, json=body, **kw)
    assert response.status == 201, (path, await response.text())
    doc: dict[str, Any] = await response.json()
    return doc


async def member(api: Client) -> dict[str, str]:
    """A new member's Authorization header, and its id under ``"id"``."""
    account = await created(api, "/api/accounts", {})
    minted = await created(api, f"/api/accounts/{account['id']}/tokens", {})
    return {"Authorization": f"Bearer {minted['token']}", "id": account["id"]}


def auth(who: dict[str, str]) -> dict[str, str]:
    return {"Authorization": who["Authorization"]}


async def error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status == status, await response.text()
    body: dict[str, Any] = (await response.json())["error"]
    assert body["code"] == code, body
    return body


async def document(api: Client) -> str:
    return str((await created(api, "/api/documents", {"title": "Draft"}))["id"])


async def test_acquire_answers_holder_token_and_seconds_and_409_names_the_holder(
    api: Client,
) -> None:
    ada, bob = await member(api), await member(api)
    doc = await document(api)
    path = f"/api/documents/{doc}/lock"
    lock = await created(api, path, {"operation": "editing"}, headers=auth(ada))
    assert lock["holder"] == ada["id"] and lock["fencing_token"] == 1
    assert lock["expires_in"] == 30 and lock["operation"] == "editing"
    refused = await api.post(path, json={"operation": "editing"}, headers=auth(bob))
    body = await error(refused, 409, "locked")
    assert body["details"]["holder"] == ada["id"]
    assert 0 < body["details"]["expires_in"] <= 30
    assert refused.headers["Retry-After"] == str(body["details"]["expires_in"])
    seen = await api.get(path, headers=auth(bob))  # anyone may see who holds it
    assert seen.status == 200 and (await seen.json())["holder"] == ada["id"]


async def test_refresh_and_release_are_the_holders_or_an_admins(api: Client) -> None:
    ada, bob = await member(api), await member(api)
    doc = await document(api)
    path = f"/api/documents/{doc}/lock"
    await error(await api.post(f"{path}/refresh", headers=auth(ada)), 404, "not_locked")
    await created(api, path, {}, headers=auth(ada))  # operation defaults to editing
    refused = await api.post(f"{path}/refresh", headers=auth(bob))
    assert (await error(refused, 403, "forbidden"))["details"]["rule"] == "lock-holder-or-admin"
    await error(await api.delete(path, headers=auth(bob)), 403, "forbidden")
    refreshed = await api.post(f"{path}/refresh", json={"fencing_token": 1}, headers=auth(ada))
    assert refreshed.status == 200 and (await refreshed.json())["expires_in"] == 30
    assert (await api.post(f"{path}/refresh")).status == 200  # the admin
    assert (await api.delete(path, headers=auth(ada))).status == 204
    # Released: the former holder cannot release it again (404), nor once bob holds it (403).
    await error(await api.delete(path, headers=auth(ada)), 404, "not_locked")
    second = await created(api, path, {}, headers=auth(bob))
    assert second["fencing_token"] == 2
    await error(await api.delete(path, headers=auth(ada)), 403, "forbidden")
    stale = await api.delete(f"{path}?fencing_token=1", headers=auth(bob))
    await error(stale, 409, "stale_fencing_token")
    for bad in ("x", "0", "-1", "9" * 17):
        refused = await api.delete(f"{path}?fencing_token={bad}", headers=auth(bob))
        await error(refused, 400, "invalid_parameter")
    assert (await api.delete(path)).status == 204  # the admin releases anyone's
    await error(await api.get(path), 404, "not_locked")


async def test_lock_requests_are_checked(api: Client) -> None:
    doc = await document(api)
    path = f"/api/documents/{doc}/lock"
    missing = "/api/documents/0b9a6c1e-3f1c-4f0e-9a57-0d6f7e3c2b11/lock"
    await error(await api.post(missing, json={}), 404, "not_found")
    await error(await api.post(path, json={"operation": "two words"}), 422, "validation_failed")
    await error(await api.post(path, json={"holder": "me"}), 422, "validation_failed")
    await error(await api.post(path, json=["editing"]), 422, "validation_failed")
    await created(api, path, {"operation": "reviewing"})
    await error(
        await api.post(f"{path}/refresh", json={"fencing_token": "1"}), 422, "validation_failed"
    )
    # Entities declaring no lock have no lock routes.
    assert (await api.post("/api/accounts/x/lock", json={})).status == 404


async def test_50_concurrent_acquires_over_http_grant_one_lock(api: Client) -> None:
    doc = await document(api)
    replies = await asyncio.gather(
        *(api.post(f"/api/documents/{doc}/lock", json={}) for _ in range(50))
    )
    assert sorted(r.status for r in replies) == [201] + [409] * 49


async def test_ops_append_one_or_a_batch_and_read_from_a_sequence_number(api: Client) -> None:
    ada = await member(api)
    doc = await document(api)
    path = f"/api/documents/{doc}/ops"
    one = await created(
        api, path, {"operation": "insert", "position": 0, "content": "Hi"}, headers=auth(ada)
    )
    assert one["seqs"] == [1] and one["timestamp"]
    batch = [{"operation": "retain", "position": 2}, {"operation": "delete", "position": 1}]
    assert (await created(api, path, batch, headers=auth(ada)))["seqs"] == [2, 3]
    got = await api.get(path, params={"since": "1"})
    assert got.status == 200
    page = await got.json()
    assert [(i["seq"], i["operation"], i["user_id"]) for i in page["items"]] == [
        (2, "retain", ada["id"]),
        (3, "delete", ada["id"]),
    ]
    assert (page["oldest_seq"], page["latest_seq"]) == (1, 3)
    first = await (await api.get(path, params={"limit": "1"})).json()
    assert [i["seq"] for i in first["items"]] == [1] and first["items"][0]["content"] == "Hi"
    # The cap (3) drops the oldest: reading from before it is 410, naming the oldest kept.
    await created(api, path, {"operation": "insert", "position": 0, "content": "x"})
    gone = await error(await api.get(path, params={"since": "0"}), 410, "gone")
    assert gone["details"] == {"since": 0, "oldest_seq": 2, "latest_seq": 4}
    await error(await api.get(path, params={"since": "-1"}), 400, "invalid_parameter")
    await error(await api.get(path, params={"after": "1"}), 400, "invalid_parameter")


async def test_ops_are_validated_and_written_as_the_caller(api: Client) -> None:
    ada, bob = await member(api), await member(api)
    doc = await document(api)
    path = f"/api/documents/{doc}/ops"
    bodies: list[Any] = [
        {"operation": "insert", "position": 0},  # an insert needs content
        {"operation": "move", "position": 0},
        {"operation": "retain", "position": -1},
        {"operation": "retain", "position": 0, "user_id": bob["id"]},  # ada cannot write as bob
        {"operation": "retain", "position": 0, "timestamp": "2025-01-01T00:00:00"},
        [],
    ]
    for body in bodies:
        await error(await api.post(path, json=body, headers=auth(ada)), 422, "validation_failed")
    missing = "/api/documents/0b9a6c1e-3f1c-4f0e-9a57-0d6f7e3c2b11/ops"
    await error(
        await api.post(missing, json={"operation": "retain", "position": 0}), 404, "not_found"
    )
    await error(await api.get(missing), 404, "not_found")
    assert (await (await api.get(path)).json())["items"] == []  # nothing was written


async def test_a_locked_documents_log_takes_the_holders_ops_only(api: Client) -> None:
    ada, bob = await member(api), await member(api)
    doc = await document(api)
    op = {"operation": "insert", "position": 0, "content": "a"}
    lock = await created(api, f"/api/documents/{doc}/lock", {}, headers=auth(ada))
    refused = await api.post(f"/api/documents/{doc}/ops", json=op, headers=auth(bob))
    assert (await error(refused, 409, "locked"))["details"]["holder"] == ada["id"]
    token = {"fencing_token": lock["fencing_token"]}
    await created(api, f"/api/documents/{doc}/ops", {**op, **token}, headers=auth(ada))
    assert (await api.delete(f"/api/documents/{doc}/lock", headers=auth(ada))).status == 204
    await created(api, f"/api/documents/{doc}/lock", {}, headers=auth(ada))
    stale = await api.post(
        f"/api/documents/{doc}/ops", json={"ops": [op], **token}, headers=auth(ada)
    )
    assert (await error(stale, 409, "stale_fencing_token"))["details"]["current"] == 2


async def test_openapi_lists_the_routes_of_the_entities_declaring_them(api: Client) -> None:
    spec = await (await api.get("/openapi.json")).json()
    validate(spec)
    paths = spec["paths"]
    assert set(paths["/api/documents/{id}/lock"]) == {"post", "get", "delete"}
    assert set(paths["/api/documents/{id}/lock/refresh"]) == {"post"}
    assert set(paths["/api/documents/{id}/ops"]) == {"post", "get"}
    assert not any(p.startswith("/api/accounts/{id}/lock") for p in paths)
    read = paths["/api/documents/{id}/ops"]["get"]
    assert {p["name"] for p in read["parameters"] if p["in"] == "query"} == {"since", "limit"}
    assert "410" in read["responses"]
    assert paths["/api/documents/{id}/lock"]["post"]["requestBody"]["required"] is False
    schemas = spec["components"]["schemas"]
    assert {"Lock", "LockRequest", "LockRefresh", "OpAppend", "OpAppended", "OpPage"} <= set(
        schemas
    )


def test_systems_without_locks_or_logs_have_none_of_their_routes() -> None:
    for name in systems.names():
        system = systems.load(name)
        if any(e.lock or e.oplog for e in system.schema.entities):
            continue
        table = route_table(system)
        assert not [r.path for r in table if r.path.endswith(("/lock", "/refresh", "/ops"))]
        assert "Lock" not in openapi.build(table, system)["components"]["schemas"]


async def test_an_op_append_with_an_idempotency_key_is_replayed_not_appended_twice(
    api: Client,
) -> None:
    # Review 20a: the key was ignored on writes outside the document routes.
    ada = await member(api)
    doc = await document(api)
    path = f"/api/documents/{doc}/ops"
    op = {"operation": "insert", "position": 0, "content": "Hi"}
    key = {**auth(ada), "Idempotency-Key": "op-1"}
    first = await api.post(path, json=op, headers=key)
    assert first.status == 201, await first.text()
    again = await api.post(path, json=op, headers=key)
    assert again.status == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await again.read() == await first.read()
    page = await (await api.get(path)).json()
    assert [i["seq"] for i in page["items"]] == [1]
    other = await api.post(path, json={**op, "content": "Ho"}, headers=key)
    await error(other, 422, "idempotency_key_reused")


async def test_a_lock_acquire_with_an_idempotency_key_is_replayed(api: Client) -> None:
    doc = await document(api)
    key = {"Idempotency-Key": "lock-1"}
    first = await api.post(f"/api/documents/{doc}/lock", json={}, headers=key)
    assert first.status in (200, 201), await first.text()
    again = await api.post(f"/api/documents/{doc}/lock", json={}, headers=key)
    assert again.status == first.status  # not 409 locked: the same acquire, answered again
    assert await again.read() == await first.read()


async def test_minting_refuses_an_idempotency_key(api: Client) -> None:
    account = await created(api, "/api/accounts", {})
    refused = await api.post(
        f"/api/accounts/{account['id']}/tokens", json={}, headers={"Idempotency-Key": "m-1"}
    )
    await error(refused, 400, "invalid_header")
