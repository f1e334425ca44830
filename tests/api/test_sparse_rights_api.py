"""expand= of a reference to an entity only admins read (no shipped system has one), on a
small system declared here: a member is refused as a read of the target would be, never
served a silent null; an admin gets the target."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import fakeredis
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app import create_app
from app.config import Settings
from keyspace import systems
from keyspace.declare import ref, string, table
from keyspace.schema import IdStrategy, Schema
from keyspace.system import System

from .conftest import ADMIN_TOKEN, AUTH

Client = TestClient[web.Request, web.Application]

ACCOUNT = table("account", collection="accounts", id=IdStrategy.CUID, fields=(), owner="id")
VAULT = table(
    "vault",
    collection="vaults",
    id=IdStrategy.UUID,
    fields=(string("secret"),),
    admin_read=True,
)
NOTE = table(
    "note",
    collection="notes",
    id=IdStrategy.UUID,
    fields=(string("title"), ref("owner_id", "account"), ref("vault_id", "vault", null=True)),
    owner="owner_id",
    open_refs=("vault_id",),
)
SYSTEM = System(
    name="vaulted",
    title="Vaulted",
    schema=Schema((ACCOUNT, VAULT, NOTE)),
    namespace="vaulted:",
    principal="account",
).served()


@pytest.fixture
async def api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Client]:
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), protocol=2)
    monkeypatch.setattr(systems, "load", lambda name, *_, **__: SYSTEM)
    app = create_app(Settings(admin_token=ADMIN_TOKEN, system="vaulted"), client=redis)
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


async def test_expanding_an_admin_only_target_is_403_for_a_member(api: Client) -> None:
    account = await created(api, "/api/accounts", {})
    minted = await created(api, f"/api/accounts/{account['id']}/tokens", {})
    as_member = {"Authorization": f"Bearer {minted['token']}"}
    vault = await created(api, "/api/vaults", {"secret": "s3cr3t"})
    note = await created(
        api, "/api/notes", {"title": "n", "owner_id": account["id"], "vault_id": vault["id"]}
    )
    for path in ("/api/notes", f"/api/notes/{note['id']}"):
        plain = await api.get(path, params={"fields": "title"}, headers=as_member)
        assert plain.status == 200
        owner = await api.get(path, params={"expand": "owner_id"}, headers=as_member)
        assert owner.status == 200
        refused = await api.get(path, params={"expand": "vault_id"}, headers=as_member)
        assert refused.status == 403, await refused.text()
        error = (await refused.json())["error"]
        assert error["details"]["rule"] == "admin-only" and "s3cr3t" not in str(error)
    admin = await api.get(f"/api/notes/{note['id']}", params={"expand": "vault_id"})
    assert (await admin.json())["_expanded"] == {"vault_id": vault}
