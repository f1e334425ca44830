"""RediSearch query injection: filter and ``q`` values holding query syntax match literally
or are refused, never return other documents, never 500."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from keyspace.query import tokenize

from .conftest import Actor, World, assert_known_keys, client_error, id_field, new_doc

pytestmark = pytest.mark.redis

INJECTIONS = [
    "*",
    "@role:{admin}",
    "x} | @user_id:{user_1",
    "-foo",
    '"quoted"',
    "(a|b)",
    "\\",
    "\\}",
    "}",
    "{",
    "|",
    "admin*",
    "%admin%",
    "user_1 | user_2",
    "-@user_id:{user_2}",
    "*=>[KNN 10 @v $blob]",
    "@user_id:[0 +inf]",
    "' OR 1=1 --",
    "~admin",
    "a" * 512,
]
TOO_LONG = "a" * 513


def ids_of(page: dict[str, Any], collection: str) -> set[str]:
    return {doc[id_field(collection)] for doc in page["items"]}


async def all_docs(actor: Actor, collection: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await actor.json(f"/api/{collection}?limit=1000"))["items"]
    return items


async def listing(actor: Actor, path: str, params: dict[str, str]) -> dict[str, Any] | None:
    """The page, or None when the value is refused with 400."""
    resp = await actor.get(path, params=params)
    assert resp.status in (200, 400), f"{resp.status}: {await resp.text()}"
    if resp.status == 400:
        await client_error(resp, 400)
        return None
    page: dict[str, Any] = await resp.json()
    return page


async def test_tag_filters_match_literally(world: World, redis: Redis) -> None:
    admin, alice = world.admin, world.alice
    literal: dict[str, str] = {}
    for n, value in enumerate(v for v in INJECTIONS if len(v) <= 64):
        body = {"username": value, "email": f"inj{n}@example.com", "role": "engineer"}
        literal[value] = (await admin.create("users", body))["user_id"]
    await admin.create("drivers", new_doc("drivers", world.bob.user_id, 2))
    for value in [*INJECTIONS, TOO_LONG]:
        page = await listing(alice, "/api/users", {"username": value})
        if value in literal:
            assert page is not None
            assert ids_of(page, "users") == {literal[value]}, value
        else:
            assert page is None or page["total"] == 0, value
        for path, name in (
            ("/api/users", "role"),
            ("/api/users", "email"),
            ("/api/drivers", "user_id"),
            ("/api/drivers", "chip_type"),
            ("/api/collabs", "collaborators"),
            (f"/api/users/{alice.user_id}/drivers", "status"),
            (f"/api/users/{alice.user_id}/collaborations", "status"),
        ):
            page = await listing(alice, path, {name: value})
            assert page is None or page["items"] == [], (path, name, value)
            assert page is None or page["total"] == 0, (path, name, value)
    await assert_known_keys(redis)


@pytest.mark.parametrize(
    ("collection", "fields"), [("users", ("username",)), ("quests", ("title", "description"))]
)
async def test_full_text_q_matches_whole_words_literally(
    world: World, collection: str, fields: tuple[str, ...]
) -> None:
    admin = world.admin
    for n, value in enumerate(("@role:{admin} x", "foo bar", "quoted (a|b)")):
        body = (
            {"username": value, "email": f"q{n}@example.com", "role": "designer"}
            if collection == "users"
            else {**new_doc("quests", world.bob.user_id, n), "title": value}
        )
        await admin.create(collection, body)
    docs = await all_docs(admin, collection)
    for value in [*INJECTIONS, TOO_LONG]:
        page = await listing(world.alice, f"/api/{collection}", {"q": value})
        terms = set(tokenize(value))
        expected = {
            d[id_field(collection)]
            for d in docs
            if terms and terms <= {t for f in fields for t in tokenize(d[f])}
        }
        if page is None:
            assert len(value) > 512, value
            continue
        assert ids_of(page, collection) == expected, value
        assert page["total"] == len(expected)


async def test_sort_limit_cursor_and_parameter_injection_is_refused(world: World) -> None:
    alice = world.alice
    forged = [
        ["timestamp", False, "2025' || @user_id:{user_1}", "driver_1"],
        ["timestamp", False, "x'; FT.DROPINDEX", "driver_1"],
        ["driver_id", False, "driver_1", "driver_1' || 1"],
        ["cores", False, "NaN", "driver_1"],
    ]
    cursors = [base64.urlsafe_b64encode(orjson.dumps(c)).decode() for c in forged]
    cases = [
        {"sort": "@user_id"},
        {"sort": "-@role"},
        {"sort": "user_id DESC"},
        {"limit": "10 LIMIT 0 1000"},
        {"limit": "-1"},
        {"@role": "admin"},
        {"user_id}": "x"},
        {"cursor": "!!!"},
        *({"sort": "timestamp", "cursor": c} for c in cursors[:2]),
        {"cursor": cursors[2]},
        {"sort": "cores", "cursor": cursors[3]},
        {"cores": "NaN"},
        {"cores_min": "inf"},
        {"timestamp_min": "2025' || 1"},
    ]
    for params in cases:
        await client_error(await alice.get("/api/drivers", params=params), 400, 422)


NUL_QUERIES = [
    ("/api/drivers", {"user_id": "\x00"}),
    ("/api/users", {"email": "a\x00b"}),
    ("/api/users/user_1/drivers", {"status": "\x00"}),
    ("/api/quests", {"q": "\x00"}),
    ("/api/quests", {"q": "design\x00"}),
]


@pytest.mark.parametrize(("path", "params"), NUL_QUERIES)
async def test_nul_in_filters_and_q_is_not_500(
    world: World, path: str, params: dict[str, str]
) -> None:
    page = await listing(world.alice, path, params)
    assert page is None or page["total"] == 0
