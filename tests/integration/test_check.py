"""check and check --repair on a real server: every kind of planted inconsistency is found,
the repairable ones are fixed exactly, and nothing else is touched."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from keyspace import DRIVER, NFT, PROCESS, USER, Keyspace, codec, keys, search
from keyspace.connection import call
from keyspace.projection import project
from keyspace.server import EmbeddedRedis
from keyspace.store import Stored
from keyspace.tokens import token_hash
from scripts.cli import run_cli
from scripts.exits import OK, PROBLEMS
from scripts.inspection import inspect
from scripts.repair import repair
from scripts.report import Problem, Report
from tests import factories as f
from tests.redis_state import snapshot

pytestmark = pytest.mark.redis

STALE_INDEX = "mf:idx:nft:0000000000"


async def check(server: EmbeddedRedis, *flags: str) -> int:
    return await run_cli(["--redis-url", server.url, "check", *flags])


async def jset(client: Redis, key: str, doc: dict[str, Any]) -> None:
    await call(client, "JSON.SET", key, "$", codec.dumps(doc))


async def doc(client: Redis, key: str) -> Any:
    return codec.loads(await call(client, "JSON.GET", key, "."))


async def alias_target(client: Redis, alias: str) -> str:
    info = search.parse_info(await call(client, "FT.INFO", alias))
    return str(info["index_name"].decode())


def found(report: Report) -> set[tuple[str, str, bool]]:
    return {(p.kind, p.key, p.repairable) for p in report.problems}


@pytest.fixture
async def ks(real_client: Redis) -> Keyspace:
    keyspace = Keyspace(real_client)
    await keyspace.setup()
    return keyspace


async def populate(ks: Keyspace) -> dict[str, Stored]:
    """user_1..3 (ann, bob, cid), driver_1, collab_1 with bob and cid, process_1, nft, quest."""
    ann, bob, cid = [await f.user(ks, n) for n in ("Ann", "Bob", "Cid")]
    return {
        "ann": ann,
        "bob": bob,
        "cid": cid,
        "driver": await f.driver(ks, "user_1"),
        "collab": await f.collab(ks, "user_1", ["user_2", "user_3"]),
        "process": await f.process(ks, "user_2"),
        "nft": await f.nft(ks, "user_1"),
        "quest": await f.quest(ks, "user_3", "Build it"),
    }


async def test_clean_keyspace_reports_clean(
    ks: Keyspace, redis_server: EmbeddedRedis, capsys: pytest.CaptureFixture[str]
) -> None:
    await populate(ks)
    report = await inspect(ks)
    assert report.clean, report.problems
    assert report.documents == 8 + 2  # the singletons too
    before = await snapshot(ks.client)
    assert await check(redis_server) == OK
    assert "check: 10 documents: clean" in capsys.readouterr().out
    assert await check(redis_server, "--json", "--repair") == OK
    out = orjson.loads(capsys.readouterr().out)
    assert out["clean"] and out["problems"] == [] and out["repaired"] == 0
    assert await snapshot(ks.client) == before


REPAIRABLE = {
    ("dangling_reference", "collab:collab_1", True),
    ("reference_index", "mf:ref:user:user_3:collab.collaborators", True),
    ("reference_index", "mf:ref:user:user_2:driver.user_id", True),
    ("reference_index", "mf:ref:user:user_1:driver.user_id", True),
    ("unique_index", "mf:uniq:user:email:ghost@example.com", True),
    ("unique_index", "mf:uniq:user:username:bob", True),
    ("counter_behind", "process_counter", True),
    ("index", "mf:idx:user", True),
    ("index", "mf:idx:nft", True),
}
UNREPAIRABLE = {
    ("invalid_document", "process:process_1", False),
    ("invalid_document", "quest:legacy", False),
    ("dangling_reference", "driver:drv-old", False),
    ("unique_violation", "user:user_1", False),
    ("unique_violation", "user:user_dup", False),
    ("counter_out_of_range", "quest_counter", False),
}
# Search projections: user_dup was written without one; one stale, one of no document; and
# the documents plant() edits around the service, whose projections (a time's shadow) lag.
REPAIRABLE |= {
    ("projection", "mf:proj:user:user_dup", True),
    ("projection", "mf:proj:user:user_3", True),
    ("projection", "mf:proj:quest:quest_ghost", True),
    ("projection", "mf:proj:collab:collab_1", True),
    ("projection", "mf:proj:driver:drv-old", True),
    ("projection", "mf:proj:process:process_1", True),
    # drv-old has no member in the cores ranking; driver_gone is of no document
    ("projection", "mf:rank:driver:cores", True),
}
UNTOUCHED = [
    "process:process_1",
    "quest:legacy",
    "driver:drv-old",
    "user:user_1",
    "user:user_dup",
    "mf:ref:user:user_99:driver.user_id",
    "mf:uniq:user:email:ann@example.com",
]


async def plant(ks: Keyspace, made: dict[str, Stored]) -> None:
    """One inconsistency of every kind, written with raw commands (as a bug or a hand edit)."""
    c = ks.client
    # invalid documents: a status outside the enum, and a non-JSON value under a prefix
    await call(c, "JSON.SET", "process:process_1", "$.status", '"paused"')
    await c.set("quest:legacy", '{"quest_id": "legacy"}')
    # a dangling owner reference (CASCADE: reported, never repaired), recorded in its set
    driver = {**made["driver"].doc, "driver_id": "drv-old", "user_id": "user_99"}
    await jset(c, "driver:drv-old", driver)
    await c.sadd("mf:ref:user:user_99:driver.user_id", "drv-old")
    # a dangling collaborator (PULL: repaired by pulling it)
    await call(c, "JSON.ARRAPPEND", "collab:collab_1", "$.collaborators", '"user_98"')
    # a referrer missing from its set, a member that does not refer, one that does not exist
    await c.srem("mf:ref:user:user_3:collab.collaborators", "collab_1")
    await c.sadd("mf:ref:user:user_2:driver.user_id", "driver_1")
    await c.sadd("mf:ref:user:user_1:driver.user_id", "driver_77")
    # an orphan claim, a missing claim, and two users holding the same email
    await c.set("mf:uniq:user:email:ghost@example.com", "user_99")
    await c.delete("mf:uniq:user:username:bob")
    dup = {**made["ann"].doc, "user_id": "user_dup", "username": "Dup", "email": "ANN@example.com"}
    await jset(c, "user:user_dup", dup)
    await c.set("mf:uniq:user:username:dup", "user_dup")
    # a stale search projection and one of no document
    await call(c, "JSON.SET", "mf:proj:user:user_3", "$.role", '"admin"')
    await call(c, "JSON.SET", "mf:proj:quest:quest_ghost", "$", '{"quest_id": "quest_ghost"}')
    await c.zadd("mf:rank:driver:cores", {"driver_gone": 3.0})  # keyspace.ranks
    # a counter behind an imported id
    await ks.create(
        PROCESS, {"process_id": "process_7", "user_id": "user_2", "chip_data": f.chip()}
    )
    await c.set("process_counter", "2")
    # a counter no create can draw from (INCR would overflow; Lua reads it inexactly)
    await c.set("quest_counter", "99999999999999999999")
    # a dropped index, and an alias on an index of an older definition
    await call(c, "FT.DROPINDEX", search.current_name(USER))
    old = ["ON", "JSON", "PREFIX", "1", "nft:", "SCHEMA", "$.nft_id", "AS", "nft_id", "TAG"]
    await call(c, "FT.CREATE", STALE_INDEX, *old)
    await search.wait_built(c, STALE_INDEX, 10)
    await call(c, "FT.ALIASUPDATE", "mf:idx:nft", STALE_INDEX)


async def test_planted_problems_are_found_and_repaired(
    ks: Keyspace, redis_server: EmbeddedRedis, capsys: pytest.CaptureFixture[str]
) -> None:
    made = await populate(ks)
    await plant(ks, made)
    c = ks.client

    report = await inspect(ks)
    assert found(report) == REPAIRABLE | UNREPAIRABLE
    details = {(p.kind, p.key, p.fix.get("action")): p.detail for p in report.problems}
    assert (
        "does not exist"
        in details["reference_index", "mf:ref:user:user_1:driver.user_id", "remove"]
    )
    assert (
        "does not refer"
        in details["reference_index", "mf:ref:user:user_2:driver.user_id", "remove"]
    )
    assert "user_99" in details["unique_index", "mf:uniq:user:email:ghost@example.com", "delete"]
    assert "not JSON" in details["invalid_document", "quest:legacy", None]
    assert "missing" in details["index", "mf:idx:user", None]
    assert STALE_INDEX in details["index", "mf:idx:nft", None]

    # check alone reports and changes nothing (not even the indexes setup() would rebuild)
    before = await snapshot(c)
    assert await check(redis_server) == PROBLEMS
    out = capsys.readouterr().out
    assert "dangling_reference: 2 (1 repairable)" in out
    assert "check: 14 documents: 23 problems, 17 repairable" in out
    assert await snapshot(c) == before
    assert await alias_target(c, "mf:idx:nft") == STALE_INDEX
    untouched = {k: before[k.encode()] for k in UNTOUCHED}

    assert await check(redis_server, "--repair") == PROBLEMS
    out = capsys.readouterr().out
    assert "repair: fixed 17 of 17 repairable problems" in out
    assert "after repair: 14 documents: 6 problems, 0 repairable" in out

    # exactly the repairs, and nothing else
    collab = await doc(c, "collab:collab_1")
    assert collab == made["collab"].doc
    assert not await c.exists("mf:ref:user:user_98:collab.collaborators")
    assert await c.smembers("mf:ref:user:user_3:collab.collaborators") == {b"collab_1"}
    assert not await c.exists("mf:ref:user:user_2:driver.user_id")
    assert await c.smembers("mf:ref:user:user_1:driver.user_id") == {b"driver_1"}
    assert not await c.exists("mf:uniq:user:email:ghost@example.com")
    assert await c.get("mf:uniq:user:username:bob") == b"user_2"
    assert await c.get("process_counter") == b"7"
    assert await alias_target(c, "mf:idx:user") == search.current_name(USER)
    assert await alias_target(c, "mf:idx:nft") == search.current_name(NFT)
    assert STALE_INDEX not in await search.list_indexes(c)
    assert not await c.exists("mf:proj:quest:quest_ghost")
    assert await doc(c, "mf:proj:user:user_3") == project(USER, await doc(c, "user:user_3"))
    assert await doc(c, "mf:proj:user:user_dup") == project(USER, await doc(c, "user:user_dup"))
    ranked: list[Any] = await c.zrange("mf:rank:driver:cores", 0, -1, withscores=True)
    assert ranked == [(b"driver_1", 128.0), (b"drv-old", 128.0)]
    after = await snapshot(c)
    assert {k: after[k.encode()] for k in UNTOUCHED} == untouched

    # what is left is exactly what needs a human, through the API and the CLI
    left = await inspect(ks)
    assert found(left) == UNREPAIRABLE
    assert await check(redis_server, "--repair", "--json") == PROBLEMS
    out = orjson.loads(capsys.readouterr().out)
    assert out["repaired"] == 0 and not out["after"]["clean"]
    assert {(p["kind"], p["key"]) for p in out["problems"]} == {(k, n) for k, n, _ in UNREPAIRABLE}
    assert await snapshot(c) == after
    made_next = await ks.create(PROCESS, {"user_id": "user_2", "chip_data": f.chip()})
    assert made_next.doc["process_id"] == "process_8"


async def test_repair_skips_what_changes_under_it(
    ks: Keyspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write landing between repair's read and its commit makes the repair skip."""
    await populate(ks)
    c = ks.client
    for key in ("collab:collab_1", "mf:proj:collab:collab_1"):  # its projection follows
        await call(c, "JSON.ARRAPPEND", key, "$.collaborators", '"user_98"')
    await c.delete("mf:uniq:user:username:bob")
    report = await inspect(ks)
    assert {p.kind for p in report.problems} == {"dangling_reference", "unique_index"}

    commit = ks.commit
    concurrent = {
        "collab:collab_1": ("$.status", '"completed"'),
        "mf:proj:collab:collab_1": ("$.status", '"completed"'),
        "user:user_2": ("$.role", '"admin"'),
        "mf:proj:user:user_2": ("$.role", '"admin"'),  # as a real writer would
    }

    async def racing(plan: Any) -> Any:
        for key, (path, value) in concurrent.items():
            if key.removeprefix("mf:proj:") in plan.keys:
                await call(c, "JSON.SET", key, path, value)
        return await commit(plan)

    with monkeypatch.context() as patched:
        patched.setattr(ks, "commit", racing)
        assert await repair(ks, report) == 0
    collab = await doc(c, "collab:collab_1")
    assert collab["status"] == "completed"  # the concurrent write stands
    assert collab["collaborators"] == ["user_2", "user_3", "user_98"]  # not clobbered
    assert (await doc(c, "user:user_2"))["role"] == "admin"
    assert not await c.exists("mf:uniq:user:username:bob")

    # without interference the same report repairs both (fixes re-read current state)
    assert await repair(ks, report) == 2
    assert (await inspect(ks)).clean


async def test_problems_that_went_away_are_not_counted_as_fixed(ks: Keyspace) -> None:
    await populate(ks)
    c = ks.client
    await c.set("mf:uniq:user:email:ghost@example.com", "user_3")
    report = await inspect(ks)
    assert found(report) == {("unique_index", "mf:uniq:user:email:ghost@example.com", True)}
    await ks.patch(USER, "user_3", {"email": "Ghost@example.com"})  # now the claim is right
    assert await repair(ks, report) == 0
    assert await c.get("mf:uniq:user:email:ghost@example.com") == b"user_3"
    assert (await inspect(ks)).clean
    fake = Report([Problem("counter_behind", "collab_counter", "planted", True, {"value": "1"})], 0)
    assert await repair(ks, fake) == 1  # floor: raises a counter, never lowers it
    assert await c.get("collab_counter") == b"1"


NFT_PAIR = "mf:uniq:nft:user_id+chip_id:6:user_1,14:chip_quantum_1,"


async def test_nft_pair_claims_are_checked_and_repaired(
    ks: Keyspace, redis_server: EmbeddedRedis, capsys: pytest.CaptureFixture[str]
) -> None:
    """The (user, chip) claim of every NFT: missing (an NFT stored before the claims existed)
    is created, stale is deleted, malformed is reported for a person."""
    made = await populate(ks)
    c = ks.client
    assert await c.get(NFT_PAIR) == made["nft"].doc["nft_id"].encode()
    await c.delete(NFT_PAIR)
    stale = "mf:uniq:nft:user_id+chip_id:6:user_2,1:c,"
    await c.set(stale, "nft_user_2_c")  # no such NFT
    malformed = "mf:uniq:nft:user_id+chip_id:7:user_1,"
    await c.set(malformed, "nft_user_1_chip_quantum_1")

    report = await inspect(ks)
    assert found(report) == {
        ("unique_index", NFT_PAIR, True),
        ("unique_index", stale, True),
        ("unique_index", malformed, False),
    }
    actions = {p.key: p.fix.get("action") for p in report.problems}
    assert (actions[NFT_PAIR], actions[stale]) == ("create", "delete")

    assert await check(redis_server, "--repair") == PROBLEMS
    assert "repair: fixed 2 of 2 repairable problems" in capsys.readouterr().out
    assert await c.get(NFT_PAIR) == b"nft_user_1_chip_quantum_1"
    assert not await c.exists(stale)
    assert found(await inspect(ks)) == {("unique_index", malformed, False)}


async def test_check_beside_live_creates_reports_nothing(
    redis_server: EmbeddedRedis, real_client: Redis
) -> None:
    # A user created after check read the documents, before it read claims and projections,
    # was reported as their orphan: every check beside a live service could exit 1.
    ks = Keyspace(real_client)
    await ks.setup()
    for n in range(300):
        await f.user(ks, f"Base{n}")
    stop = asyncio.Event()

    async def creator(w: int) -> int:
        n = 0
        while not stop.is_set():
            await f.user(ks, f"Live{w}x{n}")
            n += 1
            await asyncio.sleep(0.002)  # a steady stream, not a flood that outgrows the checks
        return n

    workers = [asyncio.create_task(creator(w)) for w in range(3)]
    try:
        codes = [await check(redis_server) for _ in range(3)]
    finally:
        stop.set()
        made = await asyncio.gather(*workers)
    assert sum(made) > 50, made  # the checks did race creates
    assert codes == [OK, OK, OK]


async def test_tokens_disagreeing_with_their_users_are_reported_and_revoked(
    redis_server: EmbeddedRedis, real_client: Redis
) -> None:
    ks = Keyspace(real_client)
    await ks.setup()
    user = await f.user(ks, "Desi", role="designer")
    issued = await ks.tokens.mint(str(user.doc["user_id"]), user.raw)
    escalated, ghost = keys.token_key("a" * 64), keys.token_key("b" * 64)
    await real_client.hset(
        escalated, mapping={"user_id": "user_1", "role": "admin", "kind": "api_key"}
    )
    await real_client.hset(
        ghost, mapping={"user_id": "ghost_1", "role": "admin", "kind": "api_key"}
    )
    report = await inspect(ks)
    assert sorted((p.kind, p.key) for p in report.problems) == [
        ("token", escalated),
        ("token", ghost),
    ]
    assert await check(redis_server, "--repair") == OK
    assert not await real_client.exists(escalated, ghost)
    assert await real_client.exists(keys.token_key(token_hash(issued.token)))


async def test_check_beside_a_flapping_document_reports_nothing(
    redis_server: EmbeddedRedis, real_client: Redis
) -> None:
    # One driver made and deleted over and over: the index's count, read apart from the
    # documents', said "0 of 1" or "1 of 0 indexed" in both passes of one check.
    ks = Keyspace(real_client)
    await ks.setup()
    await f.user(ks, "Owner")
    stop = asyncio.Event()

    async def flap() -> int:
        n = 0
        while not stop.is_set():
            made = await f.driver(ks, "user_1")
            await ks.delete(DRIVER, str(made.doc["driver_id"]))
            n += 1
        return n

    worker = asyncio.create_task(flap())
    try:
        codes = [await check(redis_server) for _ in range(8)]
    finally:
        stop.set()
        flapped = await worker
    assert flapped > 20, flapped
    assert codes == [OK] * 8
