"""Create, read, update and delete, asserted against what Redis holds."""

from __future__ import annotations

import orjson
import pytest

from keyspace import (
    DRIVER,
    NFT,
    USER,
    AlreadyExists,
    Conflict,
    InvalidTransition,
    Keyspace,
    MissingReference,
    NotFound,
    StaleRevision,
    UniqueConflict,
    ValidationFailed,
)
from keyspace.connection import call
from tests import factories as f


async def raw_doc(ks: Keyspace, key: str) -> object:
    raw = await call(ks.client, "JSON.GET", key, ".")
    return None if raw is None else orjson.loads(raw)


async def test_create_assigns_seed_style_ids_from_counters(ks: Keyspace) -> None:
    first = await f.user(ks, "HoloMisha", role="admin")
    second = await f.user(ks, "Bob")
    assert first.doc["user_id"] == "user_1"
    assert second.doc["user_id"] == "user_2"
    assert await ks.client.get("user_counter") == b"2"
    assert await raw_doc(ks, "user:user_1") == first.doc
    assert list(first.doc) == ["user_id", "username", "email", "role", "created_at"]


async def test_driver_document_is_seed_shaped(ks: Keyspace) -> None:
    await f.user(ks, "HoloMisha")
    made = await f.driver(ks, "user_1", status="optimized", timestamp="2025-09-29T10:30:00")
    assert made.doc == {
        "driver_id": "driver_1",
        "user_id": "user_1",
        "chip_id": "chip_quantum_1",
        "chip_data": {
            "type": "quantum_processor",
            "cores": 128,
            "frequency": "4.5GHz",
            "architecture": "QubitCore",
        },
        "status": "optimized",
        "version": "2.1.0",
        "timestamp": "2025-09-29T10:30:00",
    }
    assert await raw_doc(ks, "driver:driver_1") == made.doc
    assert await ks.client.get("driver_counter") == b"1"


async def test_explicit_id_moves_counter_past_it(ks: Keyspace) -> None:
    imported = await ks.create(
        USER, {"user_id": "user_7", "username": "Imported", "email": "i@x.io", "role": "engineer"}
    )
    assert imported.doc["user_id"] == "user_7"
    assert await ks.client.get("user_counter") == b"7"
    generated = await f.user(ks, "Next")
    assert generated.doc["user_id"] == "user_8"
    with pytest.raises(AlreadyExists):
        await ks.create(
            USER, {"user_id": "user_7", "username": "X", "email": "x@x.io", "role": "admin"}
        )


async def test_explicit_id_may_restore_a_deleted_generated_id(ks: Keyspace) -> None:
    await f.user(ks, "First")
    await f.user(ks, "Second")
    await ks.delete(USER, "user_1")
    restored = await ks.create(
        USER, {"user_id": "user_1", "username": "Back", "email": "b@x.io", "role": "admin"}
    )
    assert await raw_doc(ks, "user:user_1") == restored.doc
    assert await ks.client.get("user_counter") == b"2"  # the floor never lowers it
    assert (await f.user(ks, "Third")).doc["user_id"] == "user_3"


async def test_an_explicit_id_past_the_counter_range_leaves_the_counter_usable(
    ks: Keyspace,
) -> None:
    await f.user(ks, "First")
    huge = "user_99999999999999999999999"
    made = await ks.create(
        USER, {"user_id": huge, "username": "Huge", "email": "h@x.io", "role": "admin"}
    )
    assert made.doc["user_id"] == huge
    assert await ks.client.get("user_counter") == b"1"
    assert (await f.user(ks, "Next")).doc["user_id"] == "user_2"


async def test_generated_id_never_overwrites_a_document_beyond_the_counter(ks: Keyspace) -> None:
    legacy = {"user_id": "user_1", "username": "Legacy", "email": "l@x.io", "role": "admin"}
    await call(ks.client, "JSON.SET", "user:user_1", "$", orjson.dumps(legacy))
    made = await f.user(ks, "Fresh")
    assert made.doc["user_id"] == "user_2"
    assert await raw_doc(ks, "user:user_1") == legacy


async def test_refused_creates_do_not_advance_the_counter(ks: Keyspace) -> None:
    await f.user(ks, "HoloMisha")
    with pytest.raises(UniqueConflict):
        await f.user(ks, "holomisha")
    with pytest.raises(MissingReference):
        await f.driver(ks, "user_9")
    assert await ks.client.get("user_counter") == b"1"
    assert await ks.client.get("driver_counter") is None
    assert (await f.user(ks, "Next")).doc["user_id"] == "user_2"


async def test_unique_fields_are_case_insensitive(ks: Keyspace) -> None:
    await f.user(ks, "HoloMisha")
    with pytest.raises(UniqueConflict) as err:
        await ks.create(USER, {"username": "HOLOMISHA", "email": "other@x.io", "role": "admin"})
    assert err.value.field == "username"
    with pytest.raises(UniqueConflict) as err:
        await ks.create(
            USER, {"username": "Other", "email": "HoloMisha@Example.com", "role": "admin"}
        )
    assert err.value.field == "email"
    assert await ks.client.exists("user:user_2", "user:user_3") == 0
    assert await ks.client.get("mf:uniq:user:email:holomisha@example.com") == b"user_1"


async def test_update_reclaims_and_releases_uniques(ks: Keyspace) -> None:
    await f.user(ks, "Alice")
    await ks.patch(USER, "user_1", {"email": "new@example.com"})
    assert await ks.client.get("mf:uniq:user:email:alice@example.com") is None
    assert await ks.client.get("mf:uniq:user:email:new@example.com") == b"user_1"
    again = await f.user(ks, "Bob", email="alice@example.com")
    assert again.doc["email"] == "alice@example.com"


async def test_create_with_missing_reference_writes_nothing(ks: Keyspace) -> None:
    with pytest.raises(MissingReference) as err:
        await f.driver(ks, "user_404")
    assert err.value.field == "user_id"
    assert await ks.client.exists("driver:driver_1") == 0


async def test_invalid_documents_are_rejected_with_the_field(ks: Keyspace) -> None:
    await f.user(ks, "A")
    with pytest.raises(ValidationFailed) as err:
        await ks.create(DRIVER, {"user_id": "user_1", "chip_id": "c", "chip_data": {"type": "x"}})
    fields = {d["field"] for d in err.value.details}
    assert "chip_data.type" in fields
    with pytest.raises(ValidationFailed):
        await f.user(ks, "B", unexpected="field")
    with pytest.raises(ValidationFailed):
        await ks.create(
            USER, {"user_id": "user:9", "username": "C", "email": "c@x.io", "role": "admin"}
        )
    assert await ks.client.exists("user:user_2") == 0


async def test_revision_guards_updates(ks: Keyspace) -> None:
    made = await f.user(ks, "Alice")
    read = await ks.get(USER, "user_1")
    assert read.revision == made.revision
    changed = await ks.patch(USER, "user_1", {"role": "engineer"}, if_revision=made.revision)
    assert changed.revision != made.revision
    with pytest.raises(StaleRevision):
        await ks.patch(USER, "user_1", {"role": "admin"}, if_revision=made.revision)
    with pytest.raises(StaleRevision):
        await ks.delete(USER, "user_1", if_revision=made.revision)
    assert (await raw_doc(ks, "user:user_1")) == changed.doc


async def test_replace_keeps_id_and_validates_whole_document(ks: Keyspace) -> None:
    await f.user(ks, "Alice")
    body = {
        "username": "Alicia",
        "email": "a@x.io",
        "role": "admin",
        "created_at": "2025-01-01T00:00:00",
    }
    replaced = await ks.replace(USER, "user_1", body)
    assert replaced.doc == {"user_id": "user_1", **body}
    with pytest.raises(ValidationFailed):
        await ks.replace(USER, "user_1", {"username": "NoEmail"})
    with pytest.raises(ValidationFailed):
        await ks.replace(USER, "user_1", {**body, "user_id": "user_2"})


async def test_status_transitions(ks: Keyspace) -> None:
    await f.user(ks, "A")
    await f.driver(ks, "user_1")
    optimized = await ks.patch(DRIVER, "driver_1", {"status": "optimized"})
    assert optimized.doc["status"] == "optimized"
    with pytest.raises(InvalidTransition):
        await ks.patch(DRIVER, "driver_1", {"status": "generated"})
    assert (await ks.get(DRIVER, "driver_1")).doc["status"] == "optimized"


async def test_nft_id_is_derived_and_unique_per_user_and_chip(ks: Keyspace) -> None:
    await f.user(ks, "A")
    minted = await f.nft(ks, "user_1")
    assert minted.doc["nft_id"] == "nft_user_1_chip_quantum_1"
    assert minted.doc["metadata_uri"] == "ipfs://metadata/nft_user_1_chip_quantum_1"
    with pytest.raises(AlreadyExists):
        await f.nft(ks, "user_1")
    assert await ks.client.get("nft_counter") == b"1"
    with pytest.raises(ValidationFailed):
        await ks.create(NFT, {"user_id": "user_1", "chip_id": "c2", "owner": "0x123"})


async def test_get_and_delete_unknown_ids(ks: Keyspace) -> None:
    for bad in ("user_404", "user:1", "*", "a b", "x" * 400):
        with pytest.raises(NotFound):
            await ks.get(USER, bad)
        with pytest.raises(NotFound):
            await ks.delete(USER, bad)


async def test_delete_releases_uniques_and_never_reuses_ids(ks: Keyspace) -> None:
    await f.user(ks, "Alice")
    assert await ks.delete(USER, "user_1") == 1
    assert await ks.client.exists("user:user_1", "mf:uniq:user:email:alice@example.com") == 0
    again = await f.user(ks, "Alice")
    assert again.doc["user_id"] == "user_2"


async def test_a_plan_never_half_writes_on_a_corrupted_key(ks: Keyspace) -> None:
    await ks.client.hset("user_counter", "not", "a counter")
    with pytest.raises(Conflict) as err:
        await ks.create(
            USER, {"user_id": "user_5", "username": "Five", "email": "5@x.io", "role": "admin"}
        )
    assert "user_counter" in err.value.message
    assert await ks.client.exists("user:user_5", "mf:uniq:user:email:5@x.io") == 0
    assert await ks.client.hgetall("user_counter") == {b"not": b"a counter"}


@pytest.mark.parametrize("corrupt", ["hash", "text"])
async def test_a_generated_id_from_a_corrupted_counter_writes_nothing(
    ks: Keyspace, corrupt: str
) -> None:
    if corrupt == "hash":
        await ks.client.hset("user_counter", "not", "a counter")
    else:
        await ks.client.set("user_counter", "seven")
    body = {"username": "Gen", "email": "gen@x.io", "role": "admin"}
    with pytest.raises(Conflict) as err:
        await ks.create(USER, body)
    assert "user_counter" in err.value.message
    assert await ks.client.exists("mf:uniq:user:email:gen@x.io", "mf:uniq:user:username:gen") == 0
    assert [k async for k in ks.client.scan_iter(match="user:*")] == []
    await ks.client.delete("user_counter")
    assert (await ks.create(USER, body)).doc["user_id"] == "user_1"
