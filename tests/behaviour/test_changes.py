"""The change feed as commits write it (keyspace.changes): one event per document a commit
writes or deletes, cascades and set-null edits included, none for a refused write, in commit
order, each naming the revision (ETag) the document was left with. On fakeredis and on the
real server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from keyspace import (
    COLLAB,
    DRIVER,
    USER,
    Keyspace,
    MissingReference,
    StaleRevision,
    UniqueConflict,
    codec,
    feed,
    systems,
)
from keyspace.changes import ChangeCap, parse_id, trimmed_past
from keyspace.connection import call
from keyspace.plan import Plan, plan_create
from tests import factories as f

ND = systems.load("normaldance")


async def events(ks: Keyspace) -> list[dict[str, Any]]:
    return await feed.after(ks.client, ks.schema.names.changes_key(), None, 10_000)


async def since(ks: Keyspace, mark: int) -> list[tuple[str, str, str]]:
    return [(e["op"], e["collection"], e["doc_id"]) for e in (await events(ks))[mark:]]


async def revision_of(ks: Keyspace, key: str) -> str:
    raw: bytes = await call(ks.client, "JSON.GET", key, ".")
    return codec.revision(raw)


async def test_creates_with_generated_and_explicit_ids_carry_the_stored_revision(
    ks: Keyspace,
) -> None:
    generated = await f.user(ks, "Ada")
    explicit = await ks.create(
        USER,
        {"user_id": "user_77", "username": "Bo", "email": "bo@example.com", "role": "designer"},
    )
    got = await events(ks)
    assert [(e["op"], e["collection"], e["doc_id"]) for e in got] == [
        ("create", "users", generated.doc["user_id"]),
        ("create", "users", "user_77"),
    ]
    assert got[0]["revision"] == generated.revision == await revision_of(ks, "user:user_1")
    assert got[1]["revision"] == explicit.revision
    assert parse_id(got[0]["id"]) < parse_id(got[1]["id"])


async def test_updates_and_member_changes_are_updates_with_the_new_revision(ks: Keyspace) -> None:
    owner = await f.user(ks, "Ada")
    other = await f.user(ks, "Bo")
    made = await f.collab(ks, owner.doc["user_id"], [])
    doc_id = made.doc["collab_id"]
    mark = len(await events(ks))
    patched = await ks.patch(COLLAB, doc_id, {"status": "active"})
    added = await ks.add_member(COLLAB, doc_id, "collaborators", other.doc["user_id"])
    removed = await ks.remove_member(COLLAB, doc_id, "collaborators", other.doc["user_id"])
    got = (await events(ks))[mark:]
    assert [(e["op"], e["doc_id"]) for e in got] == [("update", doc_id)] * 3
    assert [e["revision"] for e in got] == [s.revision for s in (patched, added, removed)]


async def test_a_delete_names_every_document_its_cascade_deleted_and_pulled(ks: Keyspace) -> None:
    ada = (await f.user(ks, "Ada")).doc["user_id"]
    bo = (await f.user(ks, "Bo")).doc["user_id"]
    driver = (await f.driver(ks, ada)).doc["driver_id"]
    owned = (await f.collab(ks, ada, [])).doc["collab_id"]
    shared = (await f.collab(ks, bo, [ada])).doc["collab_id"]
    mark = len(await events(ks))
    await ks.delete(USER, ada)
    got = (await events(ks))[mark:]
    assert sorted((e["op"], e["collection"], e["doc_id"]) for e in got) == sorted(
        [
            ("delete", "users", ada),
            ("delete", "drivers", driver),
            ("delete", "collabs", owned),
            ("update", "collabs", shared),
        ]
    )
    assert all(e["revision"] is None for e in got if e["op"] == "delete")
    (pulled,) = [e for e in got if e["op"] == "update"]
    assert pulled["revision"] == await revision_of(ks, f"collab:{shared}")


async def test_set_null_edits_are_updates_of_the_referrers(ks: Keyspace) -> None:
    nd = Keyspace(ks.client, ND.schema, use_search=False)
    await nd.setup()
    user = (await nd.create(ND.schema.entity("user"), {"username": "Ada"})).doc["id"]
    collection = await nd.create(
        ND.schema.entity("nft_collection"),
        {"name": "Waves", "creatorId": user, "contractAddress": "0xC0"},
    )
    nfts = [
        (
            await nd.create(
                ND.schema.entity("nft"),
                {
                    "tokenId": str(n),
                    "contractAddress": "0xC0",
                    "name": f"#{n}",
                    "owner": user,
                    "creatorId": user,
                    "collectionId": collection.doc["id"],
                },
            )
        ).doc["id"]
        for n in range(2)
    ]
    mark = len(await events(nd))
    await nd.delete(ND.schema.entity("nft_collection"), collection.doc["id"])
    assert sorted(await since(nd, mark)) == sorted(
        [("delete", "nft_collections", collection.doc["id"])]
        + [("update", "nfts", n) for n in nfts]
    )


async def test_refused_writes_append_nothing(ks: Keyspace) -> None:
    ada = await f.user(ks, "Ada")
    mark = len(await events(ks))
    with pytest.raises(UniqueConflict):
        await f.user(ks, "Ada")
    with pytest.raises(MissingReference):
        await f.driver(ks, "user_404")
    with pytest.raises(StaleRevision):
        await ks.patch(USER, ada.doc["user_id"], {"role": "admin"}, if_revision="0" * 40)
    assert await since(ks, mark) == []


async def test_events_are_in_commit_order(ks: Keyspace) -> None:
    ada = (await f.user(ks, "Ada")).doc["user_id"]
    drivers = [(await f.driver(ks, ada, cores=n + 1)).doc["driver_id"] for n in range(5)]
    for doc_id in reversed(drivers):
        await ks.delete(DRIVER, doc_id)
    got = await events(ks)
    ids = [parse_id(e["id"]) for e in got]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert [(e["op"], e["doc_id"]) for e in got] == [
        ("create", ada),
        *[("create", d) for d in drivers],
        *[("delete", d) for d in reversed(drivers)],
    ]


async def test_nothing_follows_the_largest_id(ks: Keyspace) -> None:
    # Review 20b: an exclusive range from the largest id is refused by Redis (it was a 500).
    await f.user(ks, "Ada")
    largest = (2**64 - 1, 2**64 - 1)
    assert await feed.after(ks.client, ks.schema.names.changes_key(), largest) == []


async def test_a_bulk_call_ending_on_a_refused_plan_still_trims(ks: Keyspace) -> None:
    """Review 28: a bulk call trimmed only by its last plan; when that one was refused the
    call trimmed nothing, and calls that all ended so grew the feed past both caps."""
    capped = Keyspace(ks.client, changes_cap=ChangeCap(maxlen=10, max_age=86_400))
    await capped.setup_basics()

    def user(name: str) -> Plan:
        doc = {"user_id": name, "username": name, "email": f"{name}@x.io", "role": "admin"}
        return plan_create(capped.schema, USER, name, doc, explicit_id=True)

    await capped.commit_batch([user("taken")])
    for turn in range(20):
        results = await capped.commit_batch(
            [*(user(f"u{turn}x{n}") for n in range(50)), user("taken")]
        )
        assert [r.ok for r in results] == [True] * 50 + [False]
    # XTRIM MAXLEN ~ trims whole stream nodes (100 entries): past the cap by less than one.
    assert await ks.client.xlen(capped.schema.names.changes_key()) < 10 + 100


async def test_a_bulk_call_whose_applied_plans_append_nothing_leaves_the_feed_alone(
    ks: Keyspace,
) -> None:
    """Review 29: the bulk call trimmed the feed once any plan was applied, even one without
    an event. After a quiet spell past the age cap that trim emptied the stream, left no
    entry to record the newest removed id on, and the next event let a consumer that had
    missed trimmed events resume past them with 200 (a silent gap) instead of 410."""
    capped = Keyspace(ks.client, changes_cap=ChangeCap(maxlen=2, max_age=1))
    await capped.setup_basics()
    names = capped.schema.names
    stream = names.changes_key()

    def user(name: str) -> Plan:
        doc = {"user_id": name, "username": name, "email": f"{name}@x.io", "role": "admin"}
        return plan_create(capped.schema, USER, name, doc, explicit_id=True)

    # 150 events in one call: the length cap trims a whole node and records the newest id
    # it removed; then three more, of which the consumer read the first.
    assert all(r.ok for r in await capped.commit_batch([user(f"a{n}") for n in range(150)]))
    for n in range(3):
        assert all(r.ok for r in await capped.commit_batch([user(f"b{n}")]))
    kept = [e["id"] for e in await feed.after(ks.client, stream, None, 10_000)]
    consumer_at = parse_id(kept[-3])

    await asyncio.sleep(1.2)  # a quiet spell past the age cap
    quiet = Plan(names.pause_key())
    quiet.write("set", "quiet", "1")  # applied, appends no event
    results = await capped.commit_batch([user("a0"), quiet])  # a0 is refused: it exists
    assert [r.ok for r in results] == [False, True]
    assert [e["id"] for e in await feed.after(ks.client, stream, None, 10_000)] == kept

    assert all(r.ok for r in await capped.commit_batch([user("c0")]))  # the next event
    assert trimmed_past(consumer_at, await feed.info(ks.client, stream))  # 410, not a gap
