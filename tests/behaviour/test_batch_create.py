"""Batch creates (keyspace.batch, batch_commit.lua): all or none, asserted against what Redis
holds, on fakeredis and the real server (RediSearch and scan path)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from keyspace import DRIVER, MAX_BATCH, USER, BatchRefused, Keyspace, ValidationFailed
from keyspace.connection import call
from keyspace.errors import Paused
from tests import factories as f


def person(name: str, **extra: Any) -> dict[str, Any]:
    return {"username": name, "email": f"{name.lower()}@example.com", "role": "designer", **extra}


def driver(user_id: str, **extra: Any) -> dict[str, Any]:
    data = {"user_id": user_id, "chip_id": "chip_quantum_1", "chip_data": f.chip(), "version": "1"}
    return {**data, **extra}


async def keys_of(ks: Keyspace) -> set[bytes]:
    return {key async for key in ks.client.scan_iter(count=1000)}


async def test_creates_every_item_in_order(ks: Keyspace) -> None:
    made = await ks.create_many(USER, [person("Ann"), person("Bob"), person("Cid")])
    assert [s.doc["username"] for s in made] == ["Ann", "Bob", "Cid"]
    assert [s.doc["user_id"] for s in made] == ["user_1", "user_2", "user_3"]
    for stored in made:
        raw = await call(ks.client, "JSON.GET", f"user:{stored.doc['user_id']}", ".")
        assert orjson.loads(raw) == stored.doc
    assert await ks.client.get("user_counter") == b"3"


async def test_mixes_explicit_and_generated_ids(ks: Keyspace) -> None:
    # The generated item comes first: it must not take the id the explicit one asks for.
    made = await ks.create_many(
        USER, [person("Gen"), person("Imp", user_id="user_1"), person("Gen2")]
    )
    assert [s.doc["user_id"] for s in made] == ["user_2", "user_1", "user_3"]
    assert [s.doc["username"] for s in made] == ["Gen", "Imp", "Gen2"]
    assert await ks.client.get("user_counter") == b"3"


async def test_one_bad_item_writes_nothing(ks: Keyspace) -> None:
    await f.user(ks, "Taken")
    before = await keys_of(ks)
    counter = await ks.client.get("user_counter")
    items = [
        person("Ann"),
        person("Bob"),
        person("Cid"),
        person("Other", email="taken@example.com"),
    ]
    with pytest.raises(BatchRefused) as refused:
        await ks.create_many(USER, items)
    assert refused.value.code == "unique_conflict"
    assert [r.index for r in refused.value.refusals] == [3]
    assert refused.value.details[0]["field"] == "email"
    assert refused.value.details[0]["index"] == 3
    assert await keys_of(ks) == before  # no document, no claim, no reference set
    assert await ks.client.get("user_counter") == counter


async def test_every_stored_conflict_is_named(ks: Keyspace) -> None:
    await f.user(ks, "Ann")
    await f.user(ks, "Bob")
    items = [
        person("Ann", email="new@example.com"),
        person("Cid"),
        person("Bob", user_id="user_9", email="b2@example.com"),
    ]
    with pytest.raises(BatchRefused) as refused:
        await ks.create_many(USER, items)
    entries = refused.value.details
    assert [(e["index"], e["code"], e["field"]) for e in entries] == [
        (0, "unique_conflict", "username"),
        (2, "unique_conflict", "username"),
    ]
    assert not await ks.client.exists("user:user_9", "user:user_3")


async def test_in_batch_unique_conflict_names_both(ks: Keyspace) -> None:
    before = await keys_of(ks)
    items = [person("Ann"), person("Bob"), person("Ann", email="ann2@example.com")]
    with pytest.raises(BatchRefused) as refused:
        await ks.create_many(USER, items)
    entries = refused.value.details
    assert [(e["index"], e["with_index"], e["field"]) for e in entries] == [
        (0, 2, "username"),
        (2, 0, "username"),
    ]
    assert refused.value.code == "unique_conflict"
    assert await keys_of(ks) == before


async def test_same_explicit_id_twice_names_both(ks: Keyspace) -> None:
    before = await keys_of(ks)
    items = [person("Ann", user_id="user_5"), person("Bob", user_id="user_5")]
    with pytest.raises(BatchRefused) as refused:
        await ks.create_many(USER, items)
    assert [(e["index"], e["code"], e["with_index"]) for e in refused.value.details] == [
        (0, "already_exists", 1),
        (1, "already_exists", 0),
    ]
    assert await keys_of(ks) == before


async def test_invalid_items_are_named_before_any_write(ks: Keyspace) -> None:
    before = await keys_of(ks)
    items = [person("Ann"), {"username": "x"}, "not an object", person("Dan")]
    with pytest.raises(BatchRefused) as refused:
        await ks.create_many(USER, items)
    assert [e["index"] for e in refused.value.details] == [1, 2]
    assert {e["code"] for e in refused.value.details} == {"validation_failed"}
    assert await keys_of(ks) == before


async def test_missing_reference_and_reference_inside_the_batch(ks: Keyspace) -> None:
    await f.user(ks, "Ann")
    items = [driver("user_1"), driver("user_404")]
    with pytest.raises(BatchRefused) as refused:
        await ks.create_many(DRIVER, items)
    assert [(e["index"], e["code"]) for e in refused.value.details] == [(1, "missing_reference")]
    assert await ks.client.get("driver_counter") is None
    assert not await ks.client.exists("driver:driver_1")


async def test_reference_sets_and_counters_after_a_batch(ks: Keyspace) -> None:
    await f.user(ks, "Ann")
    made = await ks.create_many(DRIVER, [driver("user_1"), driver("user_1", driver_id="driver_10")])
    assert [s.doc["driver_id"] for s in made] == ["driver_11", "driver_10"]
    ref_set = ks.schema.names.ref_key("user:user_1", DRIVER.prefix, "user_id")
    members = await ks.client.smembers(ref_set)
    assert members == {b"driver_10", b"driver_11"}
    assert await ks.client.get("driver_counter") == b"11"


async def test_thousand_items_and_limit(ks: Keyspace) -> None:
    items = [person(f"U{n}") for n in range(MAX_BATCH)]
    made = await ks.create_many(USER, items)
    assert len(made) == MAX_BATCH
    assert made[-1].doc["user_id"] == f"user_{MAX_BATCH}"
    assert await ks.client.get("user_counter") == str(MAX_BATCH).encode()
    with pytest.raises(ValidationFailed):
        await ks.create_many(USER, [person(f"V{n}") for n in range(MAX_BATCH + 1)])
    with pytest.raises(ValidationFailed):
        await ks.create_many(USER, [])
    assert await ks.client.get("user_counter") == str(MAX_BATCH).encode()


async def test_dry_run_writes_nothing_and_draws_no_id(ks: Keyspace) -> None:
    before = await keys_of(ks)
    prepared = ks.prepare_create(USER, person("Ann"))
    prepared.plan.returning = -1  # commit.lua's ARGV[2] = '-1'
    result = await ks.commit(prepared.plan)
    assert result.ok and result.raw is None
    assert await keys_of(ks) == before
    assert await ks.client.get("user_counter") is None
    await ks.client.set("user_counter", str(2**53 - 1))
    refused = await ks.commit(prepared.plan)
    assert refused.error == "counter_exhausted"


async def test_a_paused_keyspace_refuses_the_batch(ks: Keyspace) -> None:
    await ks.client.set(ks.schema.names.pause_key(), "restore")
    with pytest.raises(Paused):
        await ks.create_many(USER, [person("Ann"), person("Bob")])
    await ks.client.delete(ks.schema.names.pause_key())
    assert [s.doc["user_id"] for s in await ks.create_many(USER, [person("Ann")])] == ["user_1"]


async def test_a_counter_without_room_for_every_draw_writes_nothing(ks: Keyspace) -> None:
    # Room for one id: the first draw fits, the second would pass 2^53 - 1. Refused before
    # the first write, not after it (a half-written batch).
    await ks.client.set("user_counter", str(2**53 - 2))
    before = await keys_of(ks)
    with pytest.raises(BatchRefused) as refused:
        await ks.create_many(USER, [person("Ann"), person("Bob")])
    assert refused.value.code == "counter_exhausted"
    assert await keys_of(ks) == before
    assert await ks.client.get("user_counter") == str(2**53 - 2).encode()


async def test_an_explicit_id_raising_the_counter_leaves_the_draws_no_room(ks: Keyspace) -> None:
    # Review 20a: explicit ids are applied first and move the counter to their end; the
    # generated item after them then had no id left, after the explicit one was written.
    before = await keys_of(ks)
    top = person("Top", user_id=f"user_{2**53 - 1}")
    with pytest.raises(BatchRefused) as refused:
        await ks.create_many(USER, [top, person("Gen")])
    assert refused.value.code == "counter_exhausted"
    assert await keys_of(ks) == before


async def test_a_run_of_taken_ids_longer_than_one_draw_never_halves_a_batch(ks: Keyspace) -> None:
    # Ids an import took above the counter (legacy data written beside it): more than the 64
    # commit.lua draws before answering 'contention'. The batch used to fail there after its
    # first items were written (a 500); the plan now draws again past them.
    taken = [person(f"Taken{n}", user_id=f"user_{n}") for n in range(1, 151)]
    await ks.create_many(USER, taken)
    await ks.client.set("user_counter", "1")  # user_1 drawn; user_2..user_150 taken beside it
    made = await ks.create_many(USER, [person("Ann"), person("Bob"), person("Cid")])
    assert [s.doc["user_id"] for s in made] == ["user_151", "user_152", "user_153"]
    assert await ks.client.get("user_counter") == b"153"
