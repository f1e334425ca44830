"""Roles and ownership: cross-user attempts on every write route are 403 with the rule and
write nothing; owners, collaborators and admins can do what the rules allow."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import ClientResponse
from redis.asyncio import Redis

from .conftest import (
    COLLECTIONS,
    Actor,
    World,
    error_of,
    forbidden,
    id_field,
    new_doc,
    new_user,
    snapshot,
)

pytestmark = pytest.mark.redis

METRICS = {"performance": 1.0, "efficiency": 2.0, "temperature": 3.0}
CHANGES: dict[str, dict[str, Any]] = {
    "users": {"username": "Mallory", "email": "mallory@evil.io"},
    "drivers": {"version": "6.6.6"},
    "collabs": {"chip_id": "chip_evil"},
    "processes": {"status": "completed"},
    "nfts": {"metadata_uri": "ipfs://evil"},
    "quests": {"title": "Evil"},
}
ITEM_CASES = [f"{c}:{m}" for c in COLLECTIONS for m in ("POST", "PUT", "PATCH", "DELETE")]
OTHER_CASES = [
    "collaborators:POST",
    "collaborators:DELETE",
    "tokens:POST",
    "config:PUT",
    "config:PATCH",
    "analytics:PUT",
    "metrics:PUT",
]


def _item_rule(collection: str, method: str) -> str:
    if collection == "users":
        return "admin-only"
    if method == "POST":
        return "own-documents-only"
    if collection == "collabs" and method != "DELETE":
        return "owner-or-collaborator-status-and-membership"
    return "owner-only"


async def _replacement(actor: Actor, path: str, collection: str) -> dict[str, Any]:
    """A valid PUT body for the document at ``path`` with the collection's change applied."""
    doc: dict[str, Any] = await actor.json(path)
    doc.pop(id_field(collection))
    return {**doc, **CHANGES[collection]}


def reread_path(w: World, case: str) -> str:
    """The resource a refused ``case`` must leave unchanged."""
    target = case.split(":")[0]
    if target in COLLECTIONS:
        return f"/api/{target}/{w.docs[target]}"
    return {
        "collaborators": f"/api/collabs/{w.docs['collabs']}",
        "tokens": f"/api/users/{w.alice.user_id}",
        "config": "/api/config/system",
        "analytics": "/api/analytics/metrics",
        "metrics": "/api/analytics/metrics",
    }[target]


async def cross_user(w: World, case: str) -> tuple[ClientResponse, str]:
    """Bob's attempt at ``case`` on Alice's data: the response and the rule it must name."""
    target, method = case.split(":")
    bob, alice, path = w.bob, w.alice, reread_path(w, case)
    if target in COLLECTIONS:
        rule = _item_rule(target, method)
        if method == "POST":
            body = (
                new_user("Mallory", "admin")
                if target == "users"
                else new_doc(target, alice.user_id, 2)
            )
            return await bob.post(f"/api/{target}", json=body), rule
        if method == "PUT":
            return await bob.put(path, json=await _replacement(bob, path, target)), rule
        if method == "PATCH":
            return await bob.patch(path, json=CHANGES[target]), rule
        return await bob.delete(path), rule
    if case == "collaborators:POST":
        body = {"user_id": bob.user_id}
        return await bob.post(f"{path}/collaborators", json=body), "owner-or-collaborator"
    if case == "collaborators:DELETE":
        resp = await bob.delete(f"{path}/collaborators/{w.carol.user_id}")
        return resp, "owner-or-collaborator"
    if case == "tokens:POST":
        resp = await bob.post(f"/api/users/{alice.user_id}/tokens", json={"kind": "api_key"})
        return resp, "self-or-admin"
    if case == "config:PUT":
        body = await bob.json(path)
        body["system"]["maintenance"] = True
        return await bob.put(path, json=body), "admin-only"
    if case == "config:PATCH":
        return await bob.patch(path, json={"subscription_price": 0}), "admin-only"
    if case == "metrics:PUT":  # the whole document, sent back as read
        return await bob.put(path, json=await bob.json(path)), "admin-only"
    assert case == "analytics:PUT"
    return await bob.put("/api/analytics/metrics/chip_quantum_1", json=METRICS), "admin-only"


@pytest.mark.parametrize("case", ITEM_CASES + OTHER_CASES)
async def test_cross_user_write_is_403_and_writes_nothing(
    world: World, redis: Redis, case: str
) -> None:
    path = reread_path(world, case)
    seen = await world.admin.json(path)
    before = await snapshot(redis)
    resp, rule = await cross_user(world, case)
    await forbidden(resp, rule)
    assert await world.admin.json(path) == seen
    assert await snapshot(redis) == before


@pytest.mark.parametrize("collection", COLLECTIONS[1:])
async def test_owner_cannot_hand_a_document_to_someone_else(
    world: World, redis: Redis, collection: str
) -> None:
    alice, bob = world.alice, world.bob
    path = f"/api/{collection}/{world.docs[collection]}"
    body = {**await _replacement(alice, path, collection), "user_id": bob.user_id}
    before = await snapshot(redis)
    for resp in (
        await alice.patch(path, json={"user_id": bob.user_id}),
        await alice.put(path, json=body),
    ):
        if collection == "nfts":  # the owner is part of an NFT's id, which never changes
            assert (await error_of(resp, 422))["code"] == "validation_failed"
        else:
            await forbidden(resp, _item_rule(collection, "PATCH"))
    assert await snapshot(redis) == before


async def test_explicit_id_of_someone_elses_document_never_overwrites(
    world: World, redis: Redis
) -> None:
    bob, driver_id = world.bob, world.docs["drivers"]
    before = await snapshot(redis)
    body = {**new_doc("drivers", bob.user_id, 9), "driver_id": driver_id}
    error = await error_of(await bob.post("/api/drivers", json=body), 409)
    assert error["code"] == "already_exists"
    assert await snapshot(redis) == before


@pytest.mark.parametrize("collection", COLLECTIONS[1:])
async def test_designers_and_engineers_create_change_and_delete_their_own(
    world: World, collection: str
) -> None:
    for actor in (world.alice, world.bob):  # designer, engineer
        doc = await actor.create(collection, new_doc(collection, actor.user_id, 5))
        path = f"/api/{collection}/{doc[id_field(collection)]}"
        assert (await actor.patch(path, json=CHANGES[collection])).status == 200
        resp = await actor.put(path, json=await _replacement(actor, path, collection))
        assert resp.status == 200, await resp.text()
        assert (await actor.delete(path)).status == 204
        await error_of(await actor.get(path), 404)


async def test_everyone_reads_everything(world: World) -> None:
    for actor in (world.bob, world.carol, world.alice):
        for collection, doc_id in world.docs.items():
            assert (await actor.json(f"/api/{collection}"))["total"] >= 1
            assert (await actor.json(f"/api/{collection}/{doc_id}"))[id_field(collection)]
        for path in ("/api/config/system", "/api/analytics/metrics"):
            assert await actor.json(path)
        assert (await actor.json(f"/api/users/{world.alice.user_id}/drivers"))["total"] == 1


async def test_admin_may_do_everything(world: World) -> None:
    admin, alice = world.admin, world.alice
    for case in ITEM_CASES + OTHER_CASES:
        if case.endswith(":DELETE"):
            continue
        target, method = case.split(":")
        if target in COLLECTIONS and method != "POST":
            path = f"/api/{target}/{world.docs[target]}"
            body = CHANGES[target]
            if method == "PUT":
                body = await _replacement(admin, path, target)
            resp = await admin.call(method, path, json=body)
            assert resp.status == 200, (case, await resp.text())
    doc = await admin.create("drivers", new_doc("drivers", alice.user_id, 7))
    assert doc["user_id"] == alice.user_id
    await admin.create("users", new_user("Root2", "admin"))
    assert (await admin.patch("/api/config/system", json={"subscription_price": 11})).status == 200
    resp = await admin.put("/api/analytics/metrics/chip_9", json=METRICS)
    assert resp.status == 200
    collab = f"/api/collabs/{world.docs['collabs']}"
    assert (await admin.post(f"{collab}/collaborators", json={"user_id": "user_2"})).status == 200
    assert (await admin.delete(f"{collab}/collaborators/user_2")).status == 200
    assert (await admin.delete(collab)).status == 204
    assert (await admin.delete(f"/api/users/{alice.user_id}")).status == 204


async def test_collaborators_change_status_and_members_only(world: World, redis: Redis) -> None:
    carol, bob = world.carol, world.bob
    path = f"/api/collabs/{world.docs['collabs']}"
    before = await snapshot(redis)
    rule = "owner-or-collaborator-status-and-membership"
    await forbidden(await carol.patch(path, json={"chip_id": "chip_x"}), rule)
    await forbidden(await carol.patch(path, json={"status": "completed", "chip_id": "x"}), rule)
    await forbidden(await carol.put(path, json=await _replacement(carol, path, "collabs")), rule)
    await forbidden(await carol.delete(path), "collaborators-cannot-delete")
    await forbidden(await bob.delete(path), "owner-only")
    assert await snapshot(redis) == before

    resp = await carol.post(f"{path}/collaborators", json={"user_id": bob.user_id})
    assert resp.status == 200
    assert (await resp.json())["collaborators"] == [carol.user_id, bob.user_id]
    assert (await bob.delete(f"{path}/collaborators/{carol.user_id}")).status == 200
    assert (await bob.patch(path, json={"status": "completed"})).status == 200
    doc = await world.alice.json(path)
    assert (doc["status"], doc["collaborators"], doc["chip_id"]) == (
        "completed",
        [bob.user_id],
        "chip_1",
    )
    await forbidden(await carol.patch(path, json={"status": "completed"}), rule)


async def test_users_edit_their_own_name_and_email_but_not_their_role_or_created_at(
    world: World, redis: Redis
) -> None:
    alice = world.alice
    path = f"/api/users/{alice.user_id}"
    resp = await alice.patch(path, json={"username": "Alicia", "email": "alicia@example.com"})
    assert resp.status == 200, await resp.text()
    before = await snapshot(redis)
    await forbidden(await alice.patch(path, json={"role": "admin"}), "admin-only")
    body = {**await _replacement(alice, path, "users"), "role": "admin"}
    await forbidden(await alice.put(path, json=body), "admin-only")
    await forbidden(await alice.delete(path), "admin-only")
    await forbidden(await alice.post("/api/users", json=new_user("Sock", "admin")), "admin-only")
    await forbidden(
        await alice.patch(path, json={"created_at": "2000-01-01T00:00:00"}), "admin-only"
    )
    body = {**await _replacement(alice, path, "users"), "created_at": "2000-01-01T00:00:00"}
    await forbidden(await alice.put(path, json=body), "admin-only")
    assert await snapshot(redis) == before
    assert (await alice.json(path))["role"] == "designer"
    # A replacement carrying the stored created_at is hers to make.
    body = await _replacement(alice, path, "users")
    resp = await alice.put(path, json={**body, "username": "Ally"})
    assert resp.status == 200, await resp.text()
