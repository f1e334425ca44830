"""fields= and expand= through HTTP on fakeredis (scan path) and the real server (index)."""

from __future__ import annotations

from typing import Any

import orjson

from app.state import KEYSPACE
from tests.api.conftest import Serve
from tests.api.test_collections import (
    Client,
    collab_body,
    created,
    driver_body,
    fetch,
    make_users,
)
from tests.api.test_lists import listed
from tests.api.test_systems_api import member_token, post


async def world(api: Client) -> None:
    await make_users(api, "One", "Two", "Three")
    await created(api, "drivers", driver_body("user_1"))
    await created(api, "drivers", driver_body("user_2", status="optimized"))
    await created(api, "collabs", collab_body("user_1", ["user_2", "user_3"]))


async def error(api: Client, path: str, params: dict[str, str], status: int) -> dict[str, Any]:
    resp = await api.get(path, params=params)
    assert resp.status == status, await resp.text()
    body: dict[str, Any] = (await resp.json())["error"]
    return body


async def test_a_sparse_read_keeps_the_paths_asked_and_the_id(api: Client) -> None:
    await world(api)
    resp = await api.get("/api/drivers/driver_1", params={"fields": "status,chip_data.cores"})
    assert resp.status == 200
    assert await resp.json() == {
        "driver_id": "driver_1",
        "status": "generated",
        "chip_data": {"cores": 128},
    }
    _, full, tag = await fetch(api, "/api/drivers/driver_1")
    assert resp.headers["ETag"] == tag  # the revision it was cut from
    assert len(await resp.read()) < len(orjson.dumps(full)) / 3


async def test_a_sparse_list_answers_alike_on_both_paths(api: Client) -> None:
    await world(api)
    page = await listed(api, "/api/drivers", fields="chip_data.cores,user_id", sort="-driver_id")
    assert page["items"] == [
        {"driver_id": "driver_2", "chip_data": {"cores": 128}, "user_id": "user_2"},
        {"driver_id": "driver_1", "chip_data": {"cores": 128}, "user_id": "user_1"},
    ]
    assert page["total"] == 2
    # Filters on fields not asked for still select (the index path reads them too).
    page = await listed(api, "/api/drivers", fields="chip_data.cores", status="optimized")
    assert page["items"] == [{"driver_id": "driver_2", "chip_data": {"cores": 128}}]
    walked = await listed(api, "/api/drivers", fields="status", limit="1")
    rest = await listed(
        api, "/api/drivers", fields="status", limit="1", cursor=walked["next_cursor"]
    )
    assert walked["items"] + rest["items"] == [
        {"driver_id": "driver_1", "status": "generated"},
        {"driver_id": "driver_2", "status": "optimized"},
    ]
    related = await listed(api, "/api/users/user_2/drivers", fields="status")
    assert related["items"] == [{"driver_id": "driver_2", "status": "optimized"}]


async def test_unknown_paths_and_references_are_400_naming_them(api: Client) -> None:
    await world(api)
    for path in ("/api/drivers", "/api/drivers/driver_1", "/api/users/user_1/drivers"):
        body = await error(api, path, {"fields": "status,colour,chip_data.x"}, 400)
        assert body["code"] == "invalid_parameter"
        assert "colour" in body["message"] and "chip_data.x" in body["message"]
        assert [d["value"] for d in body["details"]] == ["colour", "chip_data.x"]
        body = await error(api, path, {"expand": "chip_id"}, 400)
        assert body["code"] == "invalid_parameter" and "chip_id" in body["message"]
        assert (await error(api, path, {"fields": ""}, 400))["code"] == "invalid_parameter"


async def test_expand_embeds_targets_beside_the_ids(api: Client) -> None:
    await world(api)
    _, one, _ = await fetch(api, "/api/users/user_1")
    _, two, _ = await fetch(api, "/api/users/user_2")
    assert (await api.delete("/api/users/user_3")).status == 204  # pulled from collaborators
    resp = await api.get("/api/drivers/driver_1", params={"expand": "user_id"})
    doc = await resp.json()
    assert doc.pop("_expanded") == {"user_id": one}
    _, full, tag = await fetch(api, "/api/drivers/driver_1")
    assert doc == full and resp.headers["ETag"] == tag
    page = await listed(api, "/api/collabs", fields="status", expand="collaborators,user_id")
    assert page["items"] == [
        {
            "collab_id": "collab_1",
            "status": "active",
            "collaborators": ["user_2"],
            "user_id": "user_1",
            "_expanded": {"collaborators": [two], "user_id": one},
        }
    ]


async def test_a_missing_target_is_null(api: Client) -> None:
    await world(api)
    ks = api.app[KEYSPACE]
    # Written around the service (an import, a restore): the referenced user is gone.
    await ks.client.delete(ks.schema.entity("user").key("user_2"))
    resp = await api.get("/api/collabs/collab_1", params={"expand": "collaborators,user_id"})
    assert resp.status == 200
    expanded = (await resp.json())["_expanded"]
    assert expanded["collaborators"][0] is None and expanded["collaborators"][1]["user_id"] == (
        "user_3"
    )
    assert expanded["user_id"]["user_id"] == "user_1"
    page = await listed(api, "/api/drivers", expand="user_id", fields="status")
    assert [d["_expanded"]["user_id"] for d in page["items"]][1] is None


async def test_if_none_match_on_a_sparse_read_and_if_match_after_it(api: Client) -> None:
    await world(api)
    sparse = {"fields": "status"}
    first = await api.get("/api/drivers/driver_1", params=sparse)
    tag = first.headers["ETag"]
    again = await api.get("/api/drivers/driver_1", params=sparse, headers={"If-None-Match": tag})
    assert again.status == 304 and again.headers["ETag"] == tag
    # An embedding answer is always sent: its targets have revisions of their own.
    expanded = await api.get(
        "/api/drivers/driver_1", params={"expand": "user_id"}, headers={"If-None-Match": tag}
    )
    assert expanded.status == 200 and expanded.headers["ETag"] == tag
    written = await api.patch(
        "/api/drivers/driver_1", json={"status": "optimized"}, headers={"If-Match": tag}
    )
    assert written.status == 200
    stale = await api.patch(
        "/api/drivers/driver_1", json={"version": "3.0.0"}, headers={"If-Match": tag}
    )
    assert stale.status == 412


async def test_a_member_sees_through_fields_and_expand_only_what_a_read_shows(
    serve: Serve,
) -> None:
    api = await serve("normaldance")
    user = await post(api, "/api/users", {"username": "Ada"})
    session = await post(
        api,
        "/api/sessions",
        {"userId": user["id"], "token": "t-1", "expiresAt": "2030-01-01T00:00:00"},
    )
    as_member = await member_token(api, user["id"])
    for path in ("/api/sessions", f"/api/sessions/{session['id']}"):
        for params in ({"fields": "userId"}, {"expand": "userId"}):
            refused = await api.get(path, params=params, headers=as_member)
            assert refused.status == 403, (path, params)
            assert (await refused.json())["error"]["details"]["rule"] == "admin-only"
    mine = await api.get(
        f"/api/users/{user['id']}", params={"fields": "username"}, headers=as_member
    )
    assert await mine.json() == {"id": user["id"], "username": "Ada"}
    admin = await api.get(f"/api/sessions/{session['id']}", params={"expand": "userId"})
    assert (await admin.json())["_expanded"] == {"userId": user}


async def test_openapi_documents_fields_and_expand_per_collection(api: Client) -> None:
    doc = await (await api.get("/openapi.json")).json()

    def params(path: str) -> dict[str, Any]:
        return {p["name"]: p for p in doc["paths"][path]["get"]["parameters"]}

    for path in ("/api/drivers", "/api/drivers/{id}", "/api/users/{id}/drivers"):
        found = params(path)
        assert found["expand"]["schema"]["items"]["enum"] == ["user_id"]
        paths = found["fields"]["schema"]["items"]["enum"]
        assert {"status", "chip_data", "chip_data.cores", "driver_id"} <= set(paths)
    assert params("/api/collabs")["expand"]["schema"]["items"]["enum"] == [
        "user_id",
        "collaborators",
    ]
    assert "expand" not in params("/api/users") and "fields" in params("/api/users/{id}")
    assert "fields" not in params("/api/drivers/aggregate")
    for path in ("/api/drivers", "/api/drivers/{id}", "/api/users/{id}/drivers"):
        assert "400" in doc["paths"][path]["get"]["responses"], path  # an unknown name


async def test_a_cached_list_that_expands_follows_writes_to_its_targets(
    serve: Serve,
) -> None:
    api = await serve("neuraforge")  # caches project and document lists, not users
    user = await post(api, "/api/users", {"email": "ada@x.dev", "name": "Ada"})
    project = await post(api, "/api/projects", {"name": "Trees", "owner_id": user["id"]})
    await post(api, "/api/documents", {"title": "Draft", "project_id": project["id"]})

    async def embedded(path: str, field: str) -> Any:
        response = await api.get(path, params={"expand": field, "fields": "id"})
        assert response.status == 200, await response.text()
        (item,) = (await response.json())["items"]
        assert set(item) == {"id", field, "_expanded"}
        return item["_expanded"][field]

    for _ in range(2):  # the second answer may come from the cache
        assert (await embedded("/api/projects", "owner_id"))["name"] == "Ada"
        assert (await embedded("/api/documents", "project_id"))["name"] == "Trees"
    renamed = await api.patch(f"/api/users/{user['id']}", json={"name": "Ada L."})
    assert renamed.status == 200
    assert (await embedded("/api/projects", "owner_id"))["name"] == "Ada L."
    moved = await api.patch(f"/api/projects/{project['id']}", json={"name": "Forest"})
    assert moved.status == 200
    assert (await embedded("/api/documents", "project_id"))["name"] == "Forest"
