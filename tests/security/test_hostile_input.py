"""Hostile bodies, ids and headers: 400/404/413/415/422, never a 500, nothing written and no
key outside the known patterns."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson
import pytest
from redis.asyncio import Redis

from keyspace import MAX_BATCH

from .conftest import (
    BODY_LIMIT,
    COLLECTIONS,
    World,
    assert_known_keys,
    chip,
    client_error,
    id_field,
    new_doc,
    new_user,
    snapshot,
)

pytestmark = pytest.mark.redis

REFUSED = (400, 404, 405, 413, 415, 422)
JSON = {"Content-Type": "application/json"}
BAD_IDS = [
    "a:b",
    "user:user_1",
    "*",
    "user_*",
    "{x}",
    "x}",
    "a\nb",
    "user_1\n",
    "\r\nSET x y",
    "a\x00b",
    "a b",
    "é",
    "a" * 129,
    "a" * 301,
    "a" * 5000,
]
RAW_IDS = ["%FF", "%C0%AF", "%ED%A0%80", "%00", "a%0Ab", "%2A", "user%3Auser_1", "%7Bx%7D", "%25"]


def create_body(collection: str, owner: str) -> dict[str, Any]:
    return new_user("Hostile", "designer") if collection == "users" else new_doc(collection, owner)


def write_routes(w: World) -> list[tuple[str, str]]:
    """(method, path) of every write route that reads a JSON body."""
    out: list[tuple[str, str]] = []
    for collection in COLLECTIONS:
        path = f"/api/{collection}/{w.docs[collection]}"
        out += [("POST", f"/api/{collection}"), ("PUT", path), ("PATCH", path)]
    return [
        *out,
        ("POST", f"/api/collabs/{w.docs['collabs']}/collaborators"),
        ("POST", f"/api/users/{w.alice.user_id}/tokens"),
        ("PUT", "/api/config/system"),
        ("PATCH", "/api/config/system"),
        ("PUT", "/api/analytics/metrics/chip_1"),
    ]


async def test_bodies_over_the_limit_are_413_on_every_write_route(
    world: World, redis: Redis
) -> None:
    before = await snapshot(redis)
    big = b'{"username": "' + b"x" * (BODY_LIMIT + 1) + b'"}'

    async def chunks() -> Any:  # no Content-Length: the limit applies while reading
        for _ in range(BODY_LIMIT // 1024 + 2):
            yield b" " * 1024

    for method, path in write_routes(world):
        await client_error(await world.admin.call(method, path, data=big, headers=JSON), 413)
        resp = await world.admin.call(method, path, data=chunks(), headers=JSON)
        await client_error(resp, 413)
        # a non-admin gets 413, or 403 where the route refuses before reading the body
        await client_error(await world.alice.call(method, path, data=big, headers=JSON), 403, 413)
    assert await snapshot(redis) == before


def bodies(collection: str, valid: dict[str, Any]) -> list[bytes | dict[str, Any] | list[Any]]:
    """Malformed, oversized, mistyped and unknown-field variants of a valid body."""
    deep_list = "[" * 20_000 + "]" * 20_000
    deep_obj = ('{"a": ' * 2_000 + "1" + "}" * 2_000).encode()
    text = next((k for k, v in valid.items() if isinstance(v, str) and k != "user_id"), "status")
    valid_json = orjson.dumps(valid)[:-1]
    return [
        b"",
        b"{",
        b"null",
        b'"string"',
        b"42",
        b"[]",
        deep_list.encode(),
        b'{"x": ' + deep_list.encode() + b"}",
        b'{"' + text.encode() + b'": "\xff\xfe"}',
        b'{"' + text.encode() + b'": "\xc0\xaf"}',
        b'{"' + text.encode() + b'": "\xed\xa0\x80"}',
        b'{"' + text.encode() + b'": "\\ud800"}',
        b'{"' + text.encode() + b'": "a\x00b"}',
        "\ufeff{}".encode("utf-16"),
        b'{"cores": 1e400}',
        b'{"cores": 123456789012345678901234567890}',
        b'{"cores": NaN}',
        b'{"a": 1, "a": 2}',
        {**valid, "unknown": 1},
        {**valid, "__proto__": {"role": "admin"}},
        valid_json + b', "' + text.encode() + b'": ' + deep_obj + b"}",
        valid_json + b', "x": ' + deep_obj + b"}",
        {**valid, text: "x" * 5001},
        {**valid, text: ["list"]},
        {**valid, text: None},
        {**valid, text: 12},
        {**valid, text: True},
        {**valid, "user_id": 5},
        {**valid, "user_id": ["user_1"]},
        {f"k{n}": n for n in range(4000)},
        [valid] * (MAX_BATCH + 1),  # one past a batch create's limit (413); no array updates
    ]


@pytest.mark.parametrize("collection", COLLECTIONS)
async def test_hostile_bodies_on_entity_writes(world: World, redis: Redis, collection: str) -> None:
    admin, path = world.admin, f"/api/{collection}/{world.docs[collection]}"
    valid = create_body(collection, world.alice.user_id)
    before = await snapshot(redis)
    for body in bodies(collection, valid):
        for method, target in (("POST", f"/api/{collection}"), ("PUT", path), ("PATCH", path)):
            if isinstance(body, bytes):
                resp = await admin.call(method, target, data=body, headers=JSON)
            else:
                resp = await admin.call(method, target, json=body)
            await client_error(resp, *REFUSED)
    resp = await admin.post(f"/api/{collection}", data=b"{}", headers={"Content-Type": "text/x"})
    await client_error(resp, 415)
    assert await snapshot(redis) == before
    await assert_known_keys(redis)


FIELD_LIMITS: dict[str, list[dict[str, Any]]] = {
    "users": [
        {"username": "u" * 65},
        {"username": ""},
        {"username": "a\nb"},
        {"email": "a" * 250 + "@x.io"},
        {"email": "no-at-sign"},
        {"role": "root"},
        {"created_at": "yesterday"},
    ],
    "drivers": [
        {"version": "v" * 65},
        {"status": "hacked"},
        {"chip_data": {**chip(), "cores": 0}},
        {"chip_data": {**chip(), "cores": 10**7}},
        {"chip_data": {**chip(), "cores": "8"}},
        {"chip_data": {**chip(), "cores": 8.5}},
        {"chip_data": {**chip(), "extra": 1}},
        {"chip_data": {**chip(), "type": "toaster"}},
        {"chip_data": [1, 2]},
        {"timestamp": "x" * 41},
    ],
    "collabs": [{"collaborators": ["user_2"] * 1001}, {"collaborators": "user_2"}],
    "processes": [{"status": "stopped"}, {"chip_data": None}],
    "nfts": [{"owner": "0x1"}, {"owner": "0x" + "g" * 40}, {"metadata_uri": "u" * 513}],
    "quests": [{"title": "t" * 201}, {"description": "d" * 5001}, {"reward": "r" * 201}],
}


@pytest.mark.parametrize("collection", COLLECTIONS)
async def test_wrong_types_and_values_over_field_limits(
    world: World, redis: Redis, collection: str
) -> None:
    admin, path = world.admin, f"/api/{collection}/{world.docs[collection]}"
    valid = create_body(collection, world.alice.user_id)
    before = await snapshot(redis)
    for change in FIELD_LIMITS[collection]:
        await client_error(await admin.post(f"/api/{collection}", json={**valid, **change}), 422)
        await client_error(await admin.patch(path, json=change), 422)
        full = {**await admin.json(path), **change}
        full.pop(id_field(collection))
        await client_error(await admin.put(path, json=full), 422)
    assert await snapshot(redis) == before


@pytest.mark.parametrize("collection", COLLECTIONS)
async def test_hostile_ids_in_paths(world: World, redis: Redis, collection: str) -> None:
    admin, alice = world.admin, world.alice
    valid = create_body(collection, alice.user_id)
    before = await snapshot(redis)
    for bad in BAD_IDS:
        item = f"/api/{collection}/{quote(bad, safe='')}"
        for actor in (admin, alice):
            await client_error(await actor.get(item), 400, 404)
            await client_error(await actor.put(item, json=valid), 400, 403, 404, 422)
            await client_error(await actor.patch(item, json={}), 400, 403, 404, 422)
            await client_error(await actor.delete(item), 400, 403, 404)
        if collection == "users":
            await client_error(await admin.get(f"{item}/drivers"), 400, 404)
            await client_error(await admin.get(f"{item}/collaborations"), 400, 404)
            await client_error(await admin.post(f"{item}/tokens", json={}), 400, 404)
        if collection == "collabs":
            collab = f"/api/collabs/{world.docs['collabs']}"
            resp = await admin.post(f"{item}/collaborators", json={"user_id": "user_1"})
            await client_error(resp, 400, 404, 422)
            await client_error(await admin.delete(f"{collab}/collaborators/{quote(bad)}"), 400, 404)
        if collection == "nfts":
            chip_path = f"/api/analytics/metrics/{quote(bad, safe='')}"
            await client_error(await admin.get(chip_path), 400, 404, 422)
            metrics = {"performance": 1, "efficiency": 1, "temperature": 1}
            await client_error(await admin.put(chip_path, json=metrics), 400, 404, 422)
    for raw in RAW_IDS:  # percent-encoded as sent, including bytes that are not UTF-8
        item = f"/api/{collection}/{raw}"
        for method in ("GET", "PATCH", "DELETE"):
            resp = await admin.call(method, item, json={})
            await client_error(resp, 400, 404, 422)
    assert await snapshot(redis) == before
    await assert_known_keys(redis)


async def test_hostile_authorization_headers_are_not_500(world: World) -> None:
    api = world.alice.api
    token = world.alice.token
    for value in ("Bearer " + "a" * 9000, "Bearer mf_\u00e9\u2028", f"Bearer  {token} x"):
        resp = await api.get("/api/users", headers={"Authorization": value})
        assert resp.status in (400, 401, 431), resp.status


@pytest.mark.parametrize("collection", COLLECTIONS)
async def test_hostile_explicit_ids_and_references_in_bodies(
    world: World, redis: Redis, collection: str
) -> None:
    admin = world.admin
    valid = create_body(collection, world.alice.user_id)
    id_name = "chip_id" if collection == "nfts" else id_field(collection)
    before = await snapshot(redis)
    for bad in BAD_IDS:
        resp = await admin.post(f"/api/{collection}", json={**valid, id_name: bad})
        await client_error(resp, 400, 422)
        if collection != "users":
            resp = await admin.post(f"/api/{collection}", json={**valid, "user_id": bad})
            await client_error(resp, 400, 422)
        if collection == "collabs":
            path = f"/api/collabs/{world.docs['collabs']}"
            await client_error(await admin.patch(path, json={"collaborators": [bad]}), 400, 422)
            await client_error(
                await admin.post(f"{path}/collaborators", json={"user_id": bad}), 400, 422
            )
    assert await snapshot(redis) == before
    await assert_known_keys(redis)
