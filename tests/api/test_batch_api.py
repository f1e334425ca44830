"""``POST /api/<collection>`` with a JSON array (app.batch): 201 with the documents in order,
or one 4xx naming every refused index, nothing written; on fakeredis and the real server."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from keyspace import MAX_BATCH

Client = TestClient[web.Request, web.Application]


def user(name: str, **extra: Any) -> dict[str, Any]:
    return {"username": name, "email": f"{name.lower()}@example.com", "role": "designer", **extra}


def driver(user_id: str, **extra: Any) -> dict[str, Any]:
    chip = {"type": "quantum_processor", "cores": 128, "frequency": "4.5GHz", "architecture": "Q"}
    body = {"user_id": user_id, "chip_id": "chip_quantum_1", "chip_data": chip, "version": "1"}
    return {**body, **extra}


async def count(api: Client, collection: str) -> int:
    resp = await api.get(f"/api/{collection}", params={"count": "exact"})
    assert resp.status == 200, await resp.text()
    return len((await resp.json())["items"])


async def member(api: Client, user_id: str) -> dict[str, str]:
    minted = await api.post(f"/api/users/{user_id}/tokens", json={})
    assert minted.status == 201, await minted.text()
    return {"Authorization": f"Bearer {(await minted.json())['token']}"}


async def test_array_creates_every_document_in_order(api: Client) -> None:
    resp = await api.post(
        "/api/users", json=[user("Ann"), user("Bob", user_id="user_7"), user("Cy")]
    )
    assert resp.status == 201, await resp.text()
    made = await resp.json()
    assert [d["username"] for d in made] == ["Ann", "Bob", "Cy"]
    assert [d["user_id"] for d in made] == ["user_8", "user_7", "user_9"]
    for doc in made:
        read = await api.get(f"/api/users/{doc['user_id']}")
        assert await read.json() == doc


async def test_one_conflict_refuses_the_whole_batch_naming_its_index(api: Client) -> None:
    assert (await api.post("/api/users", json=user("Taken"))).status == 201
    items = [user("Ann"), user("Bob"), user("Cy"), user("Dee", email="taken@example.com")]
    resp = await api.post("/api/users", json=items)
    assert resp.status == 409, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "unique_conflict"
    assert [(d["index"], d["status"], d["code"], d["field"]) for d in error["details"]] == [
        (3, 409, "unique_conflict", "email")
    ]
    assert await count(api, "users") == 1


async def test_in_batch_conflicts_name_both_indexes(api: Client) -> None:
    resp = await api.post(
        "/api/users", json=[user("Ann"), user("Bob"), user("Ann", email="a@b.io")]
    )
    assert resp.status == 409
    details = (await resp.json())["error"]["details"]
    assert [(d["index"], d["with_index"], d["field"]) for d in details] == [
        (0, 2, "username"),
        (2, 0, "username"),
    ]
    twice = [user("Ann", user_id="user_3"), user("Bob", user_id="user_3")]
    resp = await api.post("/api/users", json=twice)
    assert resp.status == 409
    error = (await resp.json())["error"]
    assert error["code"] == "already_exists"
    assert [d["index"] for d in error["details"]] == [0, 1]
    assert await count(api, "users") == 0


async def test_invalid_items_are_422_naming_each_index(api: Client) -> None:
    resp = await api.post("/api/users", json=[user("Ann"), {"username": "x"}, 5])
    assert resp.status == 422
    error = (await resp.json())["error"]
    assert error["code"] == "validation_failed"
    assert [d["index"] for d in error["details"]] == [1, 2]
    assert all(d["status"] == 422 and d["message"] for d in error["details"])
    assert await count(api, "users") == 0


async def test_empty_and_oversized_arrays(api: Client) -> None:
    resp = await api.post("/api/users", json=[])
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "empty_batch"
    resp = await api.post("/api/users", json=[{}] * (MAX_BATCH + 1))
    assert resp.status == 413
    error = (await resp.json())["error"]
    assert error["details"] == {"max_items": MAX_BATCH, "items": MAX_BATCH + 1}


async def test_a_thousand_items(api: Client) -> None:
    items = [{"username": f"u{n}", "email": f"u{n}@x.io", "role": "designer"} for n in range(1000)]
    resp = await api.post("/api/users", json=items)
    assert resp.status == 201, await resp.text()
    made = await resp.json()
    assert [d["username"] for d in made] == [f"u{n}" for n in range(1000)]
    assert len({d["user_id"] for d in made}) == 1000


async def test_unauthenticated_batch_is_401_before_anything(api: Client) -> None:
    resp = await api.post("/api/users", json=[user("Ann")], headers={"Authorization": ""})
    assert resp.status == 401
    assert await count(api, "users") == 0


async def test_member_may_batch_only_their_own_documents(api: Client) -> None:
    for name in ("Ann", "Bob"):
        assert (await api.post("/api/users", json=user(name))).status == 201
    ann = await member(api, "user_1")
    resp = await api.post("/api/drivers", json=[driver("user_1"), driver("user_1")], headers=ann)
    assert resp.status == 201, await resp.text()
    assert [d["driver_id"] for d in await resp.json()] == ["driver_1", "driver_2"]
    # One item for another user refuses the whole batch, naming it.
    mixed = [driver("user_1"), driver("user_2"), driver("user_1")]
    resp = await api.post("/api/drivers", json=mixed, headers=ann)
    assert resp.status == 403
    error = (await resp.json())["error"]
    assert error["code"] == "forbidden"
    assert [(d["index"], d["details"]["rule"]) for d in error["details"]] == [
        (1, "own-documents-only")
    ]
    assert await count(api, "drivers") == 2
    # Members create no users, in a batch as alone.
    resp = await api.post("/api/users", json=[user("Cy")], headers=ann)
    assert resp.status == 403
    assert await count(api, "users") == 2


async def test_openapi_documents_the_array_body(api: Client) -> None:
    spec = await (await api.get("/openapi.json")).json()
    create = spec["paths"]["/api/users"]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert body[0] == {"$ref": "#/components/schemas/UserCreate"}
    assert body[1]["type"] == "array"
    assert (body[1]["minItems"], body[1]["maxItems"]) == (1, MAX_BATCH)
    answer = create["responses"]["201"]["content"]["application/json"]["schema"]["oneOf"]
    assert answer[1] == {"type": "array", "items": {"$ref": "#/components/schemas/User"}}
    refusal = spec["components"]["schemas"]["BatchRefusal"]
    assert {"index", "status", "code", "message"} <= set(refusal["required"])
    assert "BatchRefusal" in create["responses"]["409"]["description"]
