"""NeuraForge's presence and sessions through HTTP, on fakeredis and the real server (issue 15
"Presence and sessions"): the heartbeat PUT creates (201) then replaces (200) and refreshes
the TTL, only the user itself or an admin writes a presence, the list by project and status,
and the seed's sessions (24 h, admins read them, a user's deletion ends them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from app import create_app
from app.config import Settings

from .conftest import ADMIN_TOKEN, AUTH, backend

Client = TestClient[web.Request, web.Application]
MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(
    params=[
        pytest.param("fake", id="fakeredis"),
        pytest.param("real", id="redis", marks=pytest.mark.redis),
    ]
)
async def nf(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Client, Redis]]:
    """NeuraForge's API on an empty Redis, with the client to look at its keys."""
    redis = await backend(request)
    app = create_app(Settings(admin_token=ADMIN_TOKEN, system="neuraforge"), client=redis)
    client: Client = TestClient(TestServer(app), headers=AUTH)
    await client.start_server()
    yield client, redis
    await client.close()
    await redis.aclose()


async def post(api: Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post(path, json=body)
    assert response.status == 201, (path, await response.text())
    doc: dict[str, Any] = await response.json()
    return doc


async def user(api: Client, name: str) -> tuple[str, dict[str, str]]:
    """A user's id and its member token."""
    made = await post(api, "/api/users", {"email": f"{name}@lab.example", "name": name})
    minted = await post(api, f"/api/users/{made['id']}/tokens", {})
    return made["id"], {"Authorization": f"Bearer {minted['token']}"}


async def ids(api: Client, path: str, **params: Any) -> list[str]:
    response = await api.get(path, params=params)
    assert response.status == 200, await response.text()
    return sorted(d["id"] for d in (await response.json())["items"])


async def test_heartbeat_creates_then_replaces_and_refreshes_the_ttl(
    nf: tuple[Client, Redis],
) -> None:
    api, redis = nf
    me, token = await user(api, "sarah")
    project = await post(api, "/api/projects", {"name": "Neural trees", "owner_id": me})
    beat = {"status": "online", "current_project": project["id"]}
    first = await api.put(f"/api/presence/{me}", json=beat, headers=token)
    assert first.status == 201, await first.text()
    assert first.headers["Location"] == f"/api/presence/{me}"
    created = await first.json()
    assert created["id"] == me and created["status"] == "online"
    assert created["current_project"] == project["id"] and created["last_seen"]
    key = f"neuraforge:user:presence:{me}"
    assert 0 < await redis.pttl(key) <= 300_000
    await redis.pexpire(key, 10_000)  # most of its 5 minutes gone: the next beat restores them
    second = await api.put(f"/api/presence/{me}", json={"status": "away"}, headers=token)
    assert second.status == 200, await second.text()
    replaced = await second.json()
    assert replaced["status"] == "away" and replaced["current_project"] is None
    assert replaced["last_seen"] >= created["last_seen"]
    # last_seen is the server's time: a heartbeat cannot choose it (review-15 finding 5).
    forged = await api.put(
        f"/api/presence/{me}",
        json={"status": "away", "last_seen": "2099-01-01T00:00:00"},
        headers=token,
    )
    assert forged.status == 200, await forged.text()
    assert replaced["last_seen"] <= (await forged.json())["last_seen"] < "2099"
    replaced = await forged.json()
    second = forged
    assert 290_000 < await redis.pttl(key) <= 300_000
    got = await api.get(f"/api/presence/{me}", headers=token)
    assert got.status == 200 and (await got.json()) == replaced
    assert got.headers["ETag"] == second.headers["ETag"]
    # If-Match pins a revision: a stale one writes nothing, and a missing document has none.
    stale = await api.put(
        f"/api/presence/{me}", json=beat, headers={**token, "If-Match": first.headers["ETag"]}
    )
    assert stale.status == 412
    pinned = await api.put(f"/api/presence/{MISSING}", json=beat, headers={"If-Match": '"x"'})
    assert pinned.status == 412
    assert not await redis.exists(f"neuraforge:user:presence:{MISSING}")


async def test_only_the_user_itself_or_an_admin_writes_its_presence(
    nf: tuple[Client, Redis],
) -> None:
    api, redis = nf
    me, mine = await user(api, "sarah")
    other, theirs = await user(api, "marcus")
    # Presence in a project someone else owns: being there is not owning it.
    project = await post(api, "/api/projects", {"name": "Shared", "owner_id": other})
    beat = {"status": "online", "current_project": project["id"]}
    refused = await api.put(f"/api/presence/{other}", json=beat, headers=mine)
    assert refused.status == 403, await refused.text()
    assert (await refused.json())["error"]["details"]["rule"] == "own-documents-only"
    assert not await redis.exists(f"neuraforge:user:presence:{other}")
    assert (await api.put(f"/api/presence/{me}", json=beat, headers=mine)).status == 201
    assert (await api.put(f"/api/presence/{other}", json=beat, headers=theirs)).status == 201
    # Replacing, patching or deleting another user's presence is refused too.
    for method in ("PUT", "PATCH"):
        answer = await api.request(method, f"/api/presence/{me}", json=beat, headers=theirs)
        assert answer.status == 403, (method, await answer.text())
        assert (await answer.json())["error"]["details"]["rule"] == "owner-only"
    gone = await api.delete(f"/api/presence/{me}", headers=theirs)
    assert gone.status == 403
    # A POST naming another user's id is refused as well; an admin writes anyone's.
    posted = await api.post("/api/presence", json={"id": me, **beat}, headers=theirs)
    assert posted.status == 403
    admin = await api.put(f"/api/presence/{me}", json={"status": "offline"})
    assert admin.status == 200 and (await admin.json())["status"] == "offline"
    # The body may not move the document to another id.
    moved = await api.put(f"/api/presence/{me}", json={"id": other, **beat}, headers=mine)
    assert moved.status == 422


async def test_who_is_in_a_project_by_status(nf: tuple[Client, Redis]) -> None:
    api, _ = nf
    people = [await user(api, name) for name in ("ana", "ben", "cleo", "dev")]
    owner = people[0][0]
    alpha = (await post(api, "/api/projects", {"name": "Alpha", "owner_id": owner}))["id"]
    beta = (await post(api, "/api/projects", {"name": "Beta", "owner_id": owner}))["id"]
    states = [(alpha, "online"), (alpha, "online"), (alpha, "away"), (beta, "online")]
    for (who, token), (project, status) in zip(people, states, strict=True):
        beat = {"status": status, "current_project": project}
        assert (await api.put(f"/api/presence/{who}", json=beat, headers=token)).status == 201
    a, b, c, d = (who for who, _ in people)
    found = await ids(api, "/api/presence", current_project=alpha, status="online")
    assert found == sorted([a, b])
    assert await ids(api, "/api/presence", current_project=alpha) == sorted([a, b, c])
    assert await ids(api, "/api/presence", status="online") == sorted([a, b, d])
    assert await ids(api, f"/api/projects/{alpha}/presence", status="away") == [c]
    # A new heartbeat moves a user: the list follows it.
    await api.put(f"/api/presence/{b}", json={"status": "online", "current_project": beta})
    assert await ids(api, "/api/presence", current_project=alpha, status="online") == [a]
    # Deleting a project leaves its visitors present nowhere (set null), not refused.
    assert (await api.delete(f"/api/projects/{beta}")).status == 204
    assert await ids(api, "/api/presence", current_project=beta) == []
    moved = await api.get(f"/api/presence/{d}")
    assert (await moved.json())["current_project"] is None


async def test_sessions_are_the_seeds_and_end_with_their_user(nf: tuple[Client, Redis]) -> None:
    api, redis = nf
    me, mine = await user(api, "sarah")
    other, _ = await user(api, "marcus")
    session = "5f0c7a3e-1b2d-4c5e-8f90-0a1b2c3d4e5f"
    body = {"user_id": me, "expires_at": "2030-01-01T00:00:00", "permissions": ["read", "write"]}
    made = await api.put(f"/api/sessions/{session}", json=body, headers=mine)
    assert made.status == 201, await made.text()
    doc = await made.json()
    assert list(doc) == ["id", "user_id", "expires_at", "permissions", "last_activity"]
    key = f"neuraforge:user:session:{session}"
    assert 86_390_000 < await redis.pttl(key) <= 86_400_000
    # A write keeps the time left: the session ends 24 h after the sign-in.
    await redis.pexpire(key, 60_000)
    again = await api.put(f"/api/sessions/{session}", json=body, headers=mine)
    assert again.status == 200 and 0 < await redis.pttl(key) <= 60_000
    # Sessions are personal data: members neither read nor list them, admins do.
    assert (await api.get(f"/api/sessions/{session}", headers=mine)).status == 403
    assert (await api.get("/api/sessions", headers=mine)).status == 403
    assert await ids(api, f"/api/users/{me}/sessions") == [session]
    # A member opens sessions only for itself.
    foreign = {**body, "user_id": other}
    refused = await api.put(f"/api/sessions/{MISSING}", json=foreign, headers=mine)
    assert refused.status == 403
    drawn = await post(api, "/api/sessions", {**body, "user_id": other})  # POST draws a UUID
    assert (await api.delete(f"/api/users/{me}")).status == 204
    assert not await redis.exists(key)
    assert await ids(api, "/api/sessions") == [drawn["id"]]


async def test_openapi_documents_the_upsert(nf: tuple[Client, Redis]) -> None:
    api, _ = nf
    spec = await (await api.get("/openapi.json")).json()
    put = spec["paths"]["/api/presence/{id}"]["put"]
    assert {"200", "201", "403", "412"} <= set(put["responses"])
    assert "404" not in put["responses"]
    assert "Location" in put["responses"]["201"]["headers"]
    plain = spec["paths"]["/api/projects/{id}"]["put"]["responses"]
    assert "201" not in plain and "404" in plain
