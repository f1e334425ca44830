"""Private fields through HTTP (``EntitySpec.private_fields``; Engineering Forge's pgcrypto
columns under the seed's ``user_own_data`` policy), on fakeredis and the real server: a
member reads its own, an admin reads everyone's, and no other member sees them in any
answer: a read by id, a list, ``fields=``, an expanded reference, a write's answer, an
Idempotency-Key replay. Encrypted or not, a member's ETag and change-feed events say
nothing of what it is not shown (review 40)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from keyspace import codec

from .conftest import Serve
from .test_changes_api import next_events
from .test_systems_api import member_token, post

Client = TestClient[web.Request, web.Application]
PRIVATE = ("encrypted_ssn", "encrypted_private_key")
KEY = bytes(range(32))


async def _forge(serve: Serve, **settings: Any) -> tuple[Client, dict[str, Any], dict[str, Any]]:
    """Engineering Forge with two users holding private values: Ada and Bob."""
    api = await serve("engineering_forge", **settings)
    ada = await post(
        api,
        "/api/users",
        {"email": "ada@forge.dev", "encrypted_ssn": "078-05-1120", "encrypted_private_key": "k1"},
    )
    bob = await post(api, "/api/users", {"email": "bob@forge.dev", "encrypted_ssn": "219-09-9999"})
    return api, ada, bob


async def _json(api: Client, path: str, headers: dict[str, str], **params: str) -> Any:
    answer = await api.get(path, headers=headers, params=params)
    assert answer.status == 200, await answer.text()
    return await answer.json()


async def test_a_member_reads_its_own_private_fields_and_no_one_elses(serve: Serve) -> None:
    api, ada, bob = await _forge(serve)
    as_bob = await member_token(api, bob["id"])
    theirs = await api.get(f"/api/users/{ada['id']}", headers=as_bob)
    assert theirs.status == 200
    shown = await theirs.json()
    assert not set(PRIVATE) & set(shown)
    assert shown == {k: v for k, v in ada.items() if k not in PRIVATE}
    admins = await api.get(f"/api/users/{ada['id']}")
    assert (await admins.json())["encrypted_ssn"] == "078-05-1120"
    assert theirs.headers["ETag"].startswith("W/")  # what Bob is shown: below
    own = await _json(api, f"/api/users/{bob['id']}", as_bob)
    assert own["encrypted_ssn"] == "219-09-9999"


async def test_lists_and_sparse_fields_withhold_them_per_document(serve: Serve) -> None:
    api, ada, bob = await _forge(serve)
    as_bob = await member_token(api, bob["id"])
    for params in ({}, {"fields": "encrypted_ssn"}, {"fields": "email,encrypted_private_key"}):
        items = (await _json(api, "/api/users", as_bob, **params))["items"]
        by_id = {d["id"]: d for d in items}
        assert not set(PRIVATE) & set(by_id[ada["id"]]), params
        assert by_id[bob["id"]].get("encrypted_ssn", "219-09-9999") == "219-09-9999"
        if params.get("fields") == "encrypted_ssn":
            assert by_id[bob["id"]] == {"id": bob["id"], "encrypted_ssn": "219-09-9999"}
            assert by_id[ada["id"]] == {"id": ada["id"]}
    admin_items = (await _json(api, "/api/users", {}, fields="encrypted_ssn"))["items"]
    assert {d["encrypted_ssn"] for d in admin_items} == {"078-05-1120", "219-09-9999"}
    one = await _json(api, f"/api/users/{ada['id']}", as_bob, fields="encrypted_ssn")
    assert one == {"id": ada["id"]}


async def test_an_expanded_owner_is_withheld_too(serve: Serve) -> None:
    api, ada, bob = await _forge(serve)
    as_ada, as_bob = await member_token(api, ada["id"]), await member_token(api, bob["id"])
    project = await post(
        api,
        "/api/projects",
        {"user_id": ada["id"], "title": "Qubit", "project_type": "sim", "components": {}},
        headers=as_ada,
    )
    path = f"/api/projects/{project['id']}"
    embedded = (await _json(api, path, as_bob, expand="user_id"))["_expanded"]["user_id"]
    assert embedded["id"] == ada["id"] and not set(PRIVATE) & set(embedded)
    listed = await _json(api, "/api/projects", as_bob, expand="user_id")
    assert not set(PRIVATE) & set(listed["items"][0]["_expanded"]["user_id"])
    relation = await _json(api, f"/api/users/{ada['id']}/projects", as_bob, expand="user_id")
    assert not set(PRIVATE) & set(relation["items"][0]["_expanded"]["user_id"])
    mine = (await _json(api, path, as_ada, expand="user_id"))["_expanded"]["user_id"]
    assert mine["encrypted_ssn"] == "078-05-1120"


async def test_writes_and_replays_answer_the_owner_whole(serve: Serve) -> None:
    api, ada, _ = await _forge(serve, encryption_key=KEY)
    as_ada = await member_token(api, ada["id"])
    headers = {**as_ada, "Idempotency-Key": "rename-1"}
    first = await api.patch(f"/api/users/{ada['id']}", json={"username": "ada"}, headers=headers)
    again = await api.patch(f"/api/users/{ada['id']}", json={"username": "ada"}, headers=headers)
    assert first.status == again.status == 200
    for answer in (first, again):
        assert (await answer.json())["encrypted_ssn"] == "078-05-1120"


async def test_another_member_cannot_learn_them_by_filter_or_sort(serve: Serve) -> None:
    api, _, bob = await _forge(serve)
    as_bob = await member_token(api, bob["id"])
    for params in ({"encrypted_ssn": "078-05-1120"}, {"sort": "encrypted_ssn"}):
        refused = await api.get("/api/users", headers=as_bob, params=params)
        assert refused.status == 400, params
        assert (await refused.json())["error"]["code"] == "invalid_parameter"


async def test_a_member_is_tagged_by_what_it_is_shown(serve: Serve) -> None:
    """Review 40: the stored revision hashes the private values too (a null against a sealed
    value included), so a member testing guesses against it learnt about them, and one tag
    shared with the owner's answer let a 304 answer one with the other."""
    api, ada, bob = await _forge(serve, encryption_key=KEY)
    as_bob = await member_token(api, bob["id"])
    path = f"/api/users/{ada['id']}"
    theirs, admins = await api.get(path, headers=as_bob), await api.get(path)
    tag = theirs.headers["ETag"]
    assert tag == f'W/"{codec.revision(codec.dumps(await theirs.json()))}"'
    assert tag != admins.headers["ETag"]
    stale = await api.get(path, headers={**as_bob, "If-None-Match": admins.headers["ETag"]})
    assert stale.status == 200
    assert (await api.get(path, headers={**as_bob, "If-None-Match": tag})).status == 304
    # A change of what Bob is not shown changes only what he is shown (updated_at, once the
    # clock has moved to another second): his tag is the hash of that, nothing else.
    shown = await theirs.json()
    patched = await api.patch(path, json={"encrypted_ssn": "000-00-0000"})
    assert patched.status == 200 and patched.headers["ETag"] != admins.headers["ETag"]
    again = await api.get(path, headers=as_bob)
    seen = await again.json()
    assert again.headers["ETag"] == f'W/"{codec.revision(codec.dumps(seen))}"'
    assert {**seen, "updated_at": None} == {**shown, "updated_at": None}
    tag = again.headers["ETag"]
    await api.patch(path, json={"avatar_url": "https://forge.dev/ada.png"})
    assert (await api.get(path, headers=as_bob)).headers["ETag"] != tag
    mine = await api.get(f"/api/users/{bob['id']}", headers=as_bob)
    assert not mine.headers["ETag"].startswith("W/")  # the owner's is the stored revision


async def test_the_change_feed_gives_members_no_revision_of_private_collections(
    serve: Serve,
) -> None:
    api, ada, bob = await _forge(serve)
    as_ada, as_bob = await member_token(api, ada["id"]), await member_token(api, bob["id"])
    stream = await api.get("/api/changes?collections=users,projects", headers=as_bob)
    await post(
        api,
        "/api/projects",
        {"user_id": ada["id"], "title": "Qubit", "project_type": "sim", "components": {}},
        headers=as_ada,
    )
    await api.patch(f"/api/users/{ada['id']}", json={"encrypted_ssn": "000-00-0000"})
    json_headers = {"Accept": "application/json"}
    for who, users_revised in ((as_bob, False), ({}, True)):
        events = (await _json(api, "/api/changes", {**who, **json_headers}, since="0-1"))["events"]
        users = [e for e in events if e["collection"] == "users"]
        assert len(users) == 3 and all((e["revision"] is not None) is users_revised for e in users)
        assert all(e["revision"] for e in events if e["collection"] == "projects")
    live = await next_events(stream, 2)  # the live stream, as the pages
    assert [(e["collection"], e["revision"] is None) for e in live] == [
        ("projects", False),
        ("users", True),
    ]
    stream.close()


async def test_if_match_tells_nothing_to_one_who_may_not_write(serve: Serve) -> None:
    """Review 41: the revision was compared before the rule that refuses the write, so 412
    against 403 told a member whether its guess of the whole stored document (private
    values included) was right. Now 403 either way (RFC 9110 13.2.1); an owner's and an
    admin's stale If-Match is still 412."""
    api, ada, bob = await _forge(serve)
    as_ada, as_bob = await member_token(api, ada["id"]), await member_token(api, bob["id"])
    path = f"/api/users/{ada['id']}"
    right = (await api.get(path)).headers["ETag"]  # what Bob would have guessed
    for tag in (right, '"0000000000000000000000000000000000000000"'):
        for method, body in (("PATCH", {"username": "x"}), ("PUT", ada), ("DELETE", None)):
            answer = await api.request(method, path, json=body, headers={**as_bob, "If-Match": tag})
            assert answer.status == 403, (method, tag, await answer.text())
    stale = '"0000000000000000000000000000000000000000"'
    mine = await api.patch(path, json={"username": "ada"}, headers={**as_ada, "If-Match": stale})
    assert mine.status == 412
    admin = await api.delete(path, headers={"If-Match": stale})
    assert admin.status == 412
    assert (
        await api.patch(path, json={"username": "ada"}, headers={**as_ada, "If-Match": right})
    ).status == 200
