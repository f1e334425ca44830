"""Expiring documents with real expiry (TTLs of 1-2 s): once a document has expired nothing it
left behind changes an answer. Unique values are free again, restrict rules do not count it,
lists, counts and relation routes (through RediSearch and the scan path) leave it out, and
``check`` reports nothing; backups keep remaining TTLs and restores drop what expired."""

from __future__ import annotations

import argparse
import asyncio
import gzip
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from app import create_app
from app.config import Settings
from keyspace import HasDependents, Keyspace, UniqueConflict, connect, parse, systems
from keyspace.connection import call
from keyspace.plan import Plan
from keyspace.server import EmbeddedRedis
from keyspace.system import System
from scripts.backup import backup
from scripts.exits import OK
from scripts.inspection import inspect
from scripts.repair import prune
from scripts.restore import restore
from tests.unit.test_expiry_plan import SYSTEM

pytestmark = pytest.mark.redis

SHORT = SYSTEM.served(ttls={"session": 1, "presence": 1})  # expiry within a test
LONG = SYSTEM.served(ttls={"session": 2, "presence": 2})  # room to write before it
SETTLE = 0.4  # past a TTL: Redis's active expiry (10 times a second) has deleted the keys
A = "c" + "1" * 24
B = "c" + "2" * 24
TEAM = "c" + "3" * 24


@pytest.fixture(params=[True, False], ids=["redis-search", "redis-scan"])
async def make(
    request: pytest.FixtureRequest, redis_server: EmbeddedRedis
) -> AsyncIterator[Callable[[System], Any]]:
    """Keyspaces serving a variant of the test system on the real server (flushed), through
    RediSearch or through the scan path."""
    client = connect(redis_server.url)
    await client.flushall()

    async def build(system: System) -> Keyspace:
        ks = Keyspace(client, system.schema, use_search=None if request.param else False)
        await ks.setup()
        return ks

    yield build
    await client.aclose()


async def world(ks: Keyspace) -> None:
    await ks.create(ks.entity("account"), {"id": A, "name": "neo"})
    await ks.create(ks.entity("account"), {"id": B, "name": "trinity"})
    await ks.create(ks.entity("team"), {"id": TEAM})


async def new_session(ks: Keyspace, token: str, **extra: Any) -> dict[str, Any]:
    data = {"account_id": A, "token": token, "device": None} | extra
    return (await ks.create(ks.entity("session"), data)).doc


async def pexpiretime(client: Redis, *keys: str) -> list[int]:
    return [int(await client.execute_command("PEXPIRETIME", key)) for key in keys]  # type: ignore[no-untyped-call]


async def listed(ks: Keyspace, entity: str, **params: str) -> tuple[list[str], int]:
    spec = ks.entity(entity)
    page = await ks.list(spec, parse(spec, {k: [v] for k, v in params.items()}))
    assert page.total is not None
    return [d["id"] for d in page.items], page.total


async def test_expiry_frees_single_and_composite_unique_values(make: Any) -> None:
    ks: Keyspace = await make(SHORT)
    await world(ks)
    await new_session(ks, "t1", device="phone")
    with pytest.raises(UniqueConflict):
        await new_session(ks, "t1")
    with pytest.raises(UniqueConflict):  # the (account_id, device) pair
        await new_session(ks, "t2", device="phone")
    presence = ks.entity("presence")
    made = await ks.create(presence, {"account_id": A, "nick": "Neo"})  # an id drawn by Lua
    assert made.doc["id"] == "presence_1"
    with pytest.raises(UniqueConflict):
        await ks.create(presence, {"account_id": B, "nick": "NEO"})
    await asyncio.sleep(1 + SETTLE)
    again = await new_session(ks, "t1", device="phone")
    assert again["token"] == "t1"
    assert (await ks.create(presence, {"account_id": B, "nick": "NEO"})).doc["id"] == "presence_2"


async def test_a_document_its_claims_and_projection_expire_in_one_millisecond(
    make: Any,
) -> None:
    ks: Keyspace = await make(SHORT)
    await world(ks)
    names, client = ks.schema.names, ks.client
    doc = await new_session(ks, "t1", device="phone", team_id=TEAM)
    key = names.doc_key("user:session", doc["id"])
    claims = [
        names.unique_key("user:session", "token", "t1"),
        names.source_claim_key("user:session", {"account_id": A, "device": "phone"}),
    ]
    shown = names.projection_key("user:session", doc["id"])
    times = await pexpiretime(client, key, shown, *claims)
    assert times[0] > 0 and set(times) == {times[0]}
    assert 0 < await client.pttl(key) <= 1000
    await ks.create(ks.entity("presence"), {"account_id": A, "nick": "Neo"})  # drawn id
    drawn = [
        names.doc_key("presence", "presence_1"),
        names.projection_key("presence", "presence_1"),
        names.unique_key("presence", "nick", "neo"),
    ]
    times = await pexpiretime(client, *drawn)
    assert times[0] > 0 and set(times) == {times[0]}
    await asyncio.sleep(1 + SETTLE)
    left = sorted([k.decode() async for k in client.scan_iter(match=names.namespace + "*")])
    # Only reference sets keep an expired document's id (no answer counts it); the counter
    # of drawn ids stays, like any counter.
    assert [k for k in left if "session" in k or "presence" in k] == [
        names.ref_key(names.doc_key("account", A), "presence", "account_id"),
        names.ref_key(names.doc_key("account", A), "user:session", "account_id"),
        names.ref_key(names.doc_key("org:team", TEAM), "user:session", "team_id"),
        names.counter_key("presence"),
    ]


async def test_a_write_refreshes_the_ttl_only_where_declared(make: Any) -> None:
    ks: Keyspace = await make(LONG)
    await world(ks)
    names, client = ks.schema.names, ks.client
    session = await new_session(ks, "t1")
    presence = (await ks.create(ks.entity("presence"), {"account_id": A, "nick": "Neo"})).doc
    await asyncio.sleep(0.8)
    await ks.patch(ks.entity("session"), session["id"], {"device": "phone"})
    await ks.patch(ks.entity("presence"), presence["id"], {"nick": "Trinity"})
    session_key = names.doc_key("user:session", session["id"])
    assert await client.pttl(session_key) > 1500  # refreshed to 2 s
    pair = names.source_claim_key("user:session", {"account_id": A, "device": "phone"})
    token = names.unique_key("user:session", "token", "t1")
    times = await pexpiretime(client, session_key, pair, token)
    assert set(times) == {times[0]}  # the kept claim refreshed with the new one
    presence_key = names.doc_key("presence", presence["id"])
    assert 0 < await client.pttl(presence_key) <= 1200  # kept: the time it had left
    nick = names.unique_key("presence", "nick", "trinity")
    shown = names.projection_key("presence", presence["id"])
    times = await pexpiretime(client, presence_key, nick, shown)
    assert set(times) == {times[0]}  # the new claim got the document's remaining time
    assert not await client.exists(names.unique_key("presence", "nick", "neo"))
    await asyncio.sleep(1.2 + SETTLE)  # past the presence's first expiry, not the session's
    assert await client.exists(session_key, pair, token) == 3
    assert await client.exists(presence_key, nick, shown) == 0
    assert (await ks.create(ks.entity("presence"), {"account_id": B, "nick": "trinity"})).doc


async def test_expired_referrers_neither_restrict_nor_cascade(make: Any) -> None:
    ks: Keyspace = await make(SHORT)
    await world(ks)
    names = ks.schema.names
    account, team = ks.entity("account"), ks.entity("team")
    await new_session(ks, "t1", team_id=TEAM)  # restrict on account, set null on team
    await ks.create(ks.entity("presence"), {"account_id": A, "nick": "Neo"})  # cascade
    with pytest.raises(HasDependents) as refused:
        await ks.delete(account, A)
    assert refused.value.details == {"field": "session.account_id", "count": 1}
    await asyncio.sleep(1 + SETTLE)
    living = await new_session(ks, "t2", account_id=B)
    with pytest.raises(HasDependents) as refused:  # only the living count
        await ks.delete(account, B)
    assert refused.value.details == {"field": "session.account_id", "count": 1}
    assert await ks.delete(account, A) == 1  # nothing expired was cascaded or counted
    assert await ks.delete(team, TEAM) == 1  # nothing to set null
    stale = names.ref_key(names.doc_key("account", A), "user:session", "account_id")
    assert not await ks.client.exists(stale)  # the target's sets go with it
    assert (await ks.get(ks.entity("session"), living["id"])).doc["token"] == "t2"


async def test_lists_counts_and_relations_leave_expired_documents_out(make: Any) -> None:
    ks: Keyspace = await make(LONG)
    await world(ks)
    first = await new_session(ks, "t1", device="phone")
    second = await new_session(ks, "t2", device="tablet")
    assert sorted((await listed(ks, "session"))[0]) == sorted([first["id"], second["id"]])
    await asyncio.sleep(1.2)
    await ks.patch(ks.entity("session"), second["id"], {"token": "t3"})  # 2 s again
    await asyncio.sleep(0.8 + SETTLE)  # the first has expired, the second has not
    assert await listed(ks, "session") == ([second["id"]], 1)
    assert await listed(ks, "session", account_id=A) == ([second["id"]], 1)  # the relation's
    assert await listed(ks, "session", device="phone") == ([], 0)
    assert await listed(ks, "session", sort="-id", limit="1") == ([second["id"]], 1)


async def test_check_reports_nothing_about_expired_documents(make: Any) -> None:
    ks: Keyspace = await make(SHORT)
    await world(ks)
    session = await new_session(ks, "t1", device="phone", team_id=TEAM)
    await ks.create(ks.entity("presence"), {"account_id": A, "nick": "Neo"})
    assert (await inspect(ks)).clean
    await asyncio.sleep(1 + SETTLE)
    report = await inspect(ks)
    assert report.problems == []
    names = ks.schema.names
    leftovers = {
        (names.ref_key(names.doc_key("account", A), "user:session", "account_id"), session["id"]),
        (names.ref_key(names.doc_key("org:team", TEAM), "user:session", "team_id"), session["id"]),
        (names.ref_key(names.doc_key("account", A), "presence", "account_id"), "presence_1"),
    }
    assert set(report.expired) == leftovers
    assert await prune(ks, report) == 3  # check --repair removes them
    assert not [k async for k in ks.client.scan_iter(match=names.reserved + "ref:*")]
    again = await inspect(ks)
    assert again.problems == [] and again.expired == []


async def test_a_delete_is_stale_when_an_expired_referrer_comes_back(
    redis_server: EmbeddedRedis,
) -> None:
    # The plan of a delete counted a member whose document had expired; if that id is
    # created again (or the member removed) before the commit, the set's size alone would
    # not tell: the 'gone' check does.
    client = connect(redis_server.url)
    await client.flushall()
    ks = Keyspace(client, SHORT.schema, use_search=False)
    names = ks.schema.names
    ref_set, member_key = names.reserved + "ref:x", names.doc_key("user:session", "s1")

    async def gone() -> str | None:
        plan = Plan(names.pause_key())
        plan.check("gone", member_key, plan.key(ref_set), "s1")
        plan.write("del", ref_set)
        return (await ks.commit(plan)).error

    await client.sadd(ref_set, "s1")
    await call(client, "JSON.SET", member_key, "$", "{}")
    assert await gone() == "stale"  # it exists (again)
    await client.delete(member_key)
    await client.srem(ref_set, "s1")
    await client.sadd(ref_set, "s2")
    assert await gone() == "stale"  # no longer a member
    await client.sadd(ref_set, "s1")
    assert await gone() is None
    assert not await client.exists(ref_set)
    await client.aclose()


def _records(path: Path) -> dict[str, dict[str, Any]]:
    lines = gzip.decompress(path.read_bytes()).splitlines()[1:-1]
    return {r["k"]: r for r in map(orjson.loads, lines)}


async def test_backup_keeps_remaining_ttls_and_restore_drops_what_expired(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    client = connect(redis_server.url)
    await client.flushall()
    system = SYSTEM.served(ttls={"session": 1, "presence": 30})
    ks = Keyspace(client, system.schema)
    await ks.setup()
    await world(ks)
    names = ks.schema.names
    session = await new_session(ks, "t1", device="phone")
    await ks.create(ks.entity("presence"), {"account_id": A, "nick": "Neo"})
    presence_keys = [
        names.doc_key("presence", "presence_1"),
        names.unique_key("presence", "nick", "neo"),
    ]
    at = (await pexpiretime(client, *presence_keys))[0]
    file = tmp_path / "b.jsonl.gz"
    assert await backup(argparse.Namespace(file=file), ks) == OK
    records = _records(file)
    assert {records[k]["pxat"] for k in presence_keys} == {at}  # the expiry itself, exact
    session_key = names.doc_key("user:session", session["id"])
    token = names.unique_key("user:session", "token", "t1")
    assert records[session_key]["pxat"] == records[token]["pxat"] > 0
    assert "pxat" not in records[names.doc_key("account", A)]
    await asyncio.sleep(1 + SETTLE)  # the session expires meanwhile
    await client.flushall()
    args = argparse.Namespace(file=file, replace=False, index_timeout=60.0)
    assert await restore(args, Keyspace(client, system.schema)) == OK  # nothing disagrees
    assert not await client.exists(session_key, token)
    shown = names.projection_key("presence", "presence_1")
    assert await pexpiretime(client, *presence_keys, shown) == [at, at, at]
    restored = Keyspace(client, system.schema)
    await restored.setup()
    assert await listed(restored, "session") == ([], 0)
    assert await listed(restored, "presence") == (["presence_1"], 1)
    assert (await inspect(restored)).problems == []
    await client.aclose()


async def test_relation_routes_leave_expired_documents_out(
    redis_server: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = connect(redis_server.url)
    await client.flushall()
    monkeypatch.setattr(systems, "load", lambda *args: SHORT)  # serve the test system
    token = "test-admin-token-0123456789abcdef"
    app = create_app(Settings(admin_token=token, system="expiring"), client=client)
    api: TestClient[web.Request, web.Application] = TestClient(
        TestServer(app), headers={"Authorization": f"Bearer {token}"}
    )
    await api.start_server()
    try:
        assert (await api.post("/api/accounts", json={"id": A, "name": "neo"})).status == 201
        made = await api.post("/api/sessions", json={"account_id": A, "token": "t1"})
        assert made.status == 201
        body = await (await api.get(f"/api/accounts/{A}/sessions")).json()
        assert body["total"] == 1
        await asyncio.sleep(1 + SETTLE)
        for path in (f"/api/accounts/{A}/sessions", "/api/sessions"):
            body = await (await api.get(path)).json()
            assert (body["items"], body["total"]) == ([], 0), path
        assert (await api.delete(f"/api/accounts/{A}")).status == 204
    finally:
        await api.close()
        await client.aclose()
