"""A user's documents, the collabs they take part in, and collaborator membership."""

from __future__ import annotations

import pytest

from tests.api.test_collections import (
    Client,
    collab_body,
    created,
    driver_body,
    fetch,
    make_users,
    nft_body,
    process_body,
    quest_body,
)
from tests.api.test_lists import ids, listed


async def two_users_with_documents(api: Client) -> None:
    await make_users(api, "One", "Two", "Three")
    for owner in ("user_1", "user_2", "user_1"):
        await created(api, "drivers", driver_body(owner))
        await created(api, "processes", process_body(owner))
        await created(api, "quests", quest_body(owner))
        await created(api, "collabs", collab_body(owner))
    await created(api, "drivers", driver_body("user_1", status="optimized"))
    await created(api, "nfts", nft_body("user_1"))
    await created(api, "nfts", nft_body("user_1", "chip_neural_2"))
    await created(api, "nfts", nft_body("user_2"))


@pytest.mark.parametrize(
    ("collection", "id_field", "mine"),
    [
        ("drivers", "driver_id", ["driver_1", "driver_3", "driver_4"]),
        ("processes", "process_id", ["process_1", "process_3"]),
        ("quests", "quest_id", ["quest_1", "quest_3"]),
        ("collabs", "collab_id", ["collab_1", "collab_3"]),
        ("nfts", "nft_id", ["nft_user_1_chip_neural_2", "nft_user_1_chip_quantum_1"]),
    ],
)
async def test_user_documents_lists_only_theirs(
    api: Client, collection: str, id_field: str, mine: list[str]
) -> None:
    await two_users_with_documents(api)
    page = await listed(api, f"/api/users/user_1/{collection}")
    assert (ids(page, id_field), page["total"], page["next_cursor"]) == (mine, len(mine), None)
    assert all(doc["user_id"] == "user_1" for doc in page["items"])
    full = await fetch(api, f"/api/{collection}/{mine[0]}")
    assert page["items"][0] == full[1]
    assert (await listed(api, f"/api/users/user_3/{collection}"))["total"] == 0
    first = await listed(api, f"/api/users/user_1/{collection}", limit="1")
    assert ids(first, id_field) == mine[:1]
    rest = await listed(api, f"/api/users/user_1/{collection}", cursor=first["next_cursor"])
    assert ids(rest, id_field) == mine[1:]


async def test_user_documents_accept_extra_filters(api: Client) -> None:
    await two_users_with_documents(api)
    page = await listed(api, "/api/users/user_1/drivers", status="optimized")
    assert (ids(page, "driver_id"), page["total"]) == (["driver_4"], 1)
    page = await listed(api, "/api/users/user_1/drivers", status="generated", sort="-driver_id")
    assert ids(page, "driver_id") == ["driver_3", "driver_1"]
    page = await listed(api, "/api/users/user_2/quests", q="quantum")
    assert ids(page, "quest_id") == ["quest_2"]
    resp = await api.get("/api/users/user_1/drivers", params={"user_id": "user_2"})
    assert resp.status == 400  # the owner is fixed by the URL
    resp = await api.get("/api/users/user_1/drivers", params={"colour": "red"})
    assert resp.status == 400


@pytest.mark.parametrize(
    "collection", ["drivers", "collabs", "processes", "nfts", "quests", "collaborations"]
)
async def test_unknown_user_is_404(api: Client, collection: str) -> None:
    await make_users(api, "One")
    resp = await api.get(f"/api/users/user_9/{collection}")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"


async def test_collaborations_lists_collabs_the_user_takes_part_in(api: Client) -> None:
    await make_users(api, "One", "Two", "Three")
    await created(api, "collabs", collab_body("user_1", ["user_2", "user_3"]))
    await created(api, "collabs", collab_body("user_2", ["user_1"]))
    await created(api, "collabs", collab_body("user_3", ["user_2"], status="completed"))
    await created(api, "collabs", collab_body("user_1"))
    page = await listed(api, "/api/users/user_2/collaborations")
    assert (ids(page, "collab_id"), page["total"]) == (["collab_1", "collab_3"], 2)
    assert all("user_2" in doc["collaborators"] for doc in page["items"])
    page = await listed(api, "/api/users/user_2/collaborations", status="active")
    assert ids(page, "collab_id") == ["collab_1"]
    page = await listed(api, "/api/users/user_1/collaborations")
    assert ids(page, "collab_id") == ["collab_2"]  # owning collab_1 and collab_4 is not taking part
    assert (await listed(api, "/api/users/user_3/collaborations"))["total"] == 1


async def test_add_collaborator_is_idempotent(api: Client) -> None:
    await make_users(api, "One", "Two", "Three")
    first = await created(api, "collabs", collab_body("user_1", ["user_2"]))
    url = "/api/collabs/collab_1/collaborators"
    resp = await api.post(url, json={"user_id": "user_3"})
    assert resp.status == 200, await resp.text()
    added = await resp.json()
    assert added == {**first, "collaborators": ["user_2", "user_3"]}
    tag = resp.headers["ETag"]
    again = await api.post(url, json={"user_id": "user_3"}, headers={"If-Match": tag})
    assert again.status == 200
    assert (await again.json())["collaborators"] == ["user_2", "user_3"]
    assert await fetch(api, "/api/collabs/collab_1") == (200, added, again.headers["ETag"])
    page = await listed(api, "/api/users/user_3/collaborations")
    assert ids(page, "collab_id") == ["collab_1"]


async def test_add_collaborator_refusals(api: Client) -> None:
    await make_users(api, "One", "Two")
    before = await created(api, "collabs", collab_body("user_1", ["user_2"]))
    url = "/api/collabs/collab_1/collaborators"
    resp = await api.post(url, json={"user_id": "user_9"})
    assert resp.status == 409
    error = (await resp.json())["error"]
    assert (error["code"], error["details"]["field"]) == ("missing_reference", "collaborators")
    for bad in ({}, {"user_id": 3}, {"user_id": "user_2", "extra": 1}, {"user_id": "a b"}):
        resp = await api.post(url, json=bad)
        assert resp.status == 422, bad
        assert (await resp.json())["error"]["details"][0]["field"] == "user_id"
    assert (await api.post(url, json=["user_2"])).status == 422
    resp = await api.post("/api/collabs/collab_9/collaborators", json={"user_id": "user_2"})
    assert resp.status == 404
    assert (await fetch(api, "/api/collabs/collab_1"))[1] == before


async def test_remove_collaborator(api: Client) -> None:
    await make_users(api, "One", "Two", "Three")
    first = await created(api, "collabs", collab_body("user_1", ["user_2", "user_3"]))
    resp = await api.delete("/api/collabs/collab_1/collaborators/user_2")
    assert resp.status == 200, await resp.text()
    removed = await resp.json()
    assert removed == {**first, "collaborators": ["user_3"]}
    assert await fetch(api, "/api/collabs/collab_1") == (200, removed, resp.headers["ETag"])
    assert (await listed(api, "/api/users/user_2/collaborations"))["total"] == 0
    resp = await api.delete("/api/collabs/collab_1/collaborators/user_2")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
    assert (await api.delete("/api/collabs/collab_1/collaborators/user_1")).status == 404
    assert (await api.delete("/api/collabs/collab_9/collaborators/user_3")).status == 404
    stale = await api.delete(
        "/api/collabs/collab_1/collaborators/user_3", headers={"If-Match": '"0000"'}
    )
    assert stale.status == 412
    assert (await fetch(api, "/api/collabs/collab_1"))[1]["collaborators"] == ["user_3"]
    assert (await api.get("/api/users/user_2")).status == 200  # the user is untouched
