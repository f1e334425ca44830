"""Pure document rules: defaults, validation, merge patches, transitions, timestamps."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from keyspace.codec import normalize_iso, now_iso
from keyspace.documents import MAX_DEPTH, explicit_id, for_create, for_update, merge_patch
from keyspace.errors import InvalidTransition, ValidationFailed
from keyspace.schema import EntitySpec
from keyspace.systems.multiframe.entities import COLLAB, DRIVER, NFT, PROCESS, QUEST, USER

SEED_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")
OWNER = "0x1234567890123456789012345678901234567890"


def chip(**changes: Any) -> dict[str, Any]:
    base = {"type": "quantum_processor", "cores": 128, "frequency": "4.5GHz"}
    return {**base, "architecture": "QubitCore", **changes}


def driver_input(**changes: Any) -> dict[str, Any]:
    base = {"user_id": "user_1", "chip_id": "chip_quantum_1", "chip_data": chip()}
    return {**base, "version": "2.1.0", **changes}


def stored_driver(**changes: Any) -> dict[str, Any]:
    doc = {"driver_id": "driver_1", **driver_input(), "status": "generated"}
    return {**doc, "timestamp": "2025-09-29T10:30:00", **changes}


def failed_fields(spec: EntitySpec, data: Any, doc_id: str) -> list[str]:
    with pytest.raises(ValidationFailed) as info:
        for_create(spec, data, doc_id)
    return [d["field"] for d in info.value.details]


def assert_recent(stamp: str) -> None:
    assert SEED_TIME.match(stamp), stamp
    moment = datetime.fromisoformat(stamp).replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - moment) < timedelta(seconds=5)


def test_driver_create_fills_status_and_timestamp_in_seed_order() -> None:
    doc = for_create(DRIVER, driver_input(), "driver_3")
    assert list(doc) == [
        "driver_id",
        "user_id",
        "chip_id",
        "chip_data",
        "status",
        "version",
        "timestamp",
    ]
    assert list(doc["chip_data"]) == ["type", "cores", "frequency", "architecture"]
    assert doc["driver_id"] == "driver_3"
    assert doc["status"] == "generated"
    assert_recent(doc["timestamp"])


def test_given_values_win_over_defaults_and_times_are_normalized() -> None:
    data = driver_input(status="optimized", timestamp="2025-09-29T12:30:00+02:00")
    doc = for_create(DRIVER, data, "driver_1")
    assert doc["status"] == "optimized"
    assert doc["timestamp"] == "2025-09-29T10:30:00"


def test_user_create_fills_created_at() -> None:
    doc = for_create(USER, {"username": "Holo", "email": "holo@misha.com", "role": "admin"}, "u1")
    assert list(doc) == ["user_id", "username", "email", "role", "created_at"]
    assert_recent(doc["created_at"])


def test_nft_create_derives_metadata_uri_from_its_id() -> None:
    data = {"user_id": "user_1", "chip_id": "chip_quantum_1", "owner": OWNER}
    nft_id = NFT.derive_id(data) if NFT.derive_id else ""
    assert nft_id == "nft_user_1_chip_quantum_1"
    doc = for_create(NFT, data, nft_id)
    assert doc == {
        "nft_id": "nft_user_1_chip_quantum_1",
        "user_id": "user_1",
        "chip_id": "chip_quantum_1",
        "metadata_uri": "ipfs://metadata/nft_user_1_chip_quantum_1",
        "owner": OWNER,
    }


def test_collab_process_quest_defaults() -> None:
    collab = for_create(COLLAB, {"user_id": "user_1", "chip_id": "c1", "chip_data": chip()}, "c_1")
    assert (collab["collaborators"], collab["status"]) == ([], "active")
    process = for_create(PROCESS, {"user_id": "user_1", "chip_data": chip()}, "process_1")
    assert process["status"] == "running"
    quest = for_create(QUEST, {"user_id": "user_1", "title": "T", "reward": "r"}, "quest_1")
    assert (quest["description"], quest["status"]) == ("", "active")
    assert list(quest) == [
        "quest_id",
        "user_id",
        "title",
        "description",
        "status",
        "reward",
        "timestamp",
    ]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (driver_input(nickname="x"), "nickname"),
        (driver_input(chip_data=chip(cores="128")), "chip_data.cores"),
        (driver_input(chip_data=chip(cores=True)), "chip_data.cores"),
        (driver_input(chip_data=chip(cores=0)), "chip_data.cores"),
        (driver_input(chip_data=chip(type="gpu")), "chip_data.type"),
        (driver_input(chip_data=chip(extra=1)), "chip_data.extra"),
        (driver_input(status="deleted"), "status"),
        (driver_input(version=2), "version"),
        (driver_input(user_id="user:1"), "user_id"),
        (driver_input(chip_id="chip*"), "chip_id"),
        (driver_input(timestamp="yesterday"), "timestamp"),
    ],
)
def test_create_rejects_bad_driver_fields_naming_them(data: dict[str, Any], field: str) -> None:
    assert failed_fields(DRIVER, data, "driver_1") == [field]


def test_create_rejects_bad_enum_owner_and_member_ids() -> None:
    user = {"username": "Holo", "email": "holo@misha.com", "role": "root"}
    assert failed_fields(USER, user, "user_1") == ["role"]
    assert failed_fields(USER, {**user, "role": "admin", "email": "not-mail"}, "u") == ["email"]
    nft = {"user_id": "user_1", "chip_id": "c", "owner": "0x1234"}
    assert failed_fields(NFT, nft, "nft_user_1_c") == ["owner"]
    assert failed_fields(NFT, {**nft, "owner": "1x" + "0" * 40}, "nft_user_1_c") == ["owner"]
    collab = {"user_id": "user_1", "chip_id": "c", "chip_data": chip(), "collaborators": ["a:b"]}
    assert failed_fields(COLLAB, collab, "collab_1") == ["collaborators.0"]
    twice = {**collab, "collaborators": ["user_3", "user_4", "user_3"]}
    assert failed_fields(COLLAB, twice, "collab_1") == ["collaborators"]


def test_create_rejects_ids_with_colons() -> None:
    user = {"username": "Holo", "email": "holo@misha.com", "role": "admin"}
    assert failed_fields(USER, user, "user:1") == ["user_id"]
    with pytest.raises(ValidationFailed) as info:
        explicit_id(USER, {**user, "user_id": "user:1"})
    assert info.value.details[0]["field"] == "user_id"
    assert explicit_id(USER, {**user, "user_id": "user_9"}) == "user_9"
    assert explicit_id(USER, user) is None


def test_create_rejects_an_id_in_data_that_differs_from_the_assigned_one() -> None:
    assert failed_fields(DRIVER, driver_input(driver_id="driver_2"), "driver_1") == ["driver_id"]


def test_create_rejects_non_objects() -> None:
    assert failed_fields(DRIVER, ["not", "an", "object"], "driver_1") == ["(document)"]


def test_documents_nested_deeper_than_max_depth_are_rejected() -> None:
    def nest(levels: int) -> Any:
        value: Any = "leaf"
        for _ in range(levels):
            value = {"k": value}
        return value

    too_deep = driver_input(chip_data=nest(MAX_DEPTH))  # MAX_DEPTH + 1 levels of objects
    with pytest.raises(ValidationFailed) as info:
        for_create(DRIVER, too_deep, "driver_1")
    assert "nested too deeply" in info.value.message
    assert info.value.details == [
        {"field": "(document)", "message": f"nesting deeper than {MAX_DEPTH}"}
    ]
    # One level less passes the depth check and fails on the model instead.
    assert "chip_data.k" in failed_fields(
        DRIVER, driver_input(chip_data=nest(MAX_DEPTH - 1)), "driver_1"
    )


def test_merge_patch_follows_rfc_7386() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "list": [1, 2]}
    patch = {"a": "z", "c": {"f": None, "h": {"i": 1}}, "list": [3], "new": None}
    assert merge_patch(target, patch) == {
        "a": "z",
        "c": {"d": "e", "h": {"i": 1}},
        "list": [3],
    }
    assert target == {"a": "b", "c": {"d": "e", "f": "g"}, "list": [1, 2]}  # not mutated
    assert merge_patch({"a": 1}, ["x"]) == ["x"]
    assert merge_patch({"a": 1}, None) is None
    assert merge_patch("text", {"a": {"b": None}}) == {"a": {}}
    assert merge_patch({"a": [1]}, {"a": {"b": 1}}) == {"a": {"b": 1}}
    assert merge_patch({"a": 1}, {}) == {"a": 1}


def test_update_merges_nested_fields() -> None:
    new = for_update(DRIVER, stored_driver(), {"chip_data": {"cores": 256}}, merge=True)
    assert new["chip_data"] == chip(cores=256)
    assert new["driver_id"] == "driver_1"


def test_update_null_removes_and_then_required_field_fails() -> None:
    with pytest.raises(ValidationFailed) as info:
        for_update(DRIVER, stored_driver(), {"version": None}, merge=True)
    assert [d["field"] for d in info.value.details] == ["version"]


def test_update_cannot_change_the_id() -> None:
    with pytest.raises(ValidationFailed) as info:
        for_update(DRIVER, stored_driver(), {"driver_id": "driver_2"}, merge=True)
    assert info.value.details[0]["field"] == "driver_id"
    whole = {k: v for k, v in stored_driver(version="3.0").items() if k != "driver_id"}
    replaced = for_update(DRIVER, stored_driver(), whole, merge=False)
    assert (replaced["driver_id"], replaced["version"]) == ("driver_1", "3.0")


def test_update_of_nft_cannot_change_the_parts_of_its_id() -> None:
    old = for_create(NFT, {"user_id": "user_1", "chip_id": "c1", "owner": OWNER}, "nft_user_1_c1")
    with pytest.raises(ValidationFailed) as info:
        for_update(NFT, old, {"chip_id": "c2"}, merge=True)
    assert info.value.details[0]["field"] == "chip_id/user_id"
    moved = for_update(NFT, old, {"owner": "0x" + "a" * 40}, merge=True)
    assert moved["owner"] == "0x" + "a" * 40


@pytest.mark.parametrize(
    ("spec", "old", "new"),
    [
        (DRIVER, "generated", "optimized"),
        (DRIVER, "optimized", "optimized"),
        (DRIVER, "generated", "generated"),
        (PROCESS, "running", "completed"),
        (QUEST, "active", "completed"),
        (COLLAB, "active", "completed"),
        (COLLAB, "completed", "completed"),
    ],
)
def test_allowed_transitions(spec: EntitySpec, old: str, new: str) -> None:
    assert spec.transitions is not None
    assert spec.transitions.permits(old, new)


def test_driver_status_transitions_on_update() -> None:
    new = for_update(DRIVER, stored_driver(), {"status": "optimized"}, merge=True)
    assert new["status"] == "optimized"
    with pytest.raises(InvalidTransition) as info:
        for_update(DRIVER, stored_driver(status="optimized"), {"status": "generated"}, merge=True)
    assert info.value.details == {"field": "status", "from": "optimized", "to": "generated"}
    assert info.value.field == "status"


@pytest.mark.parametrize(
    ("spec", "old", "new"),
    [
        (PROCESS, "completed", "running"),
        (QUEST, "completed", "active"),
        (COLLAB, "completed", "active"),
    ],
)
def test_backward_transitions_are_refused(spec: EntitySpec, old: str, new: str) -> None:
    assert spec.transitions is not None
    assert not spec.transitions.permits(old, new)


def test_process_and_quest_complete_through_update() -> None:
    process = for_create(PROCESS, {"user_id": "user_1", "chip_data": chip()}, "process_1")
    done = for_update(PROCESS, process, {"status": "completed"}, merge=True)
    assert done["status"] == "completed"
    with pytest.raises(InvalidTransition):
        for_update(PROCESS, done, {"status": "running"}, merge=True)
    quest = for_create(QUEST, {"user_id": "user_1", "title": "T", "reward": "r"}, "quest_1")
    assert for_update(QUEST, quest, {"status": "completed"}, merge=True)["status"] == "completed"


def test_driver_update_touches_timestamp_unless_given() -> None:
    touched = for_update(DRIVER, stored_driver(), {"version": "2.2.0"}, merge=True)
    assert touched["timestamp"] != "2025-09-29T10:30:00"
    assert_recent(touched["timestamp"])
    given = {"version": "2.2.0", "timestamp": "2025-10-01T00:00:00Z"}
    kept = for_update(DRIVER, stored_driver(), given, merge=True)
    assert kept["timestamp"] == "2025-10-01T00:00:00"
    quest = for_create(QUEST, {"user_id": "u", "title": "T", "reward": "r"}, "quest_1")
    quest["timestamp"] = "2025-09-29T10:30:00"
    assert for_update(QUEST, quest, {"title": "U"}, merge=True)["timestamp"] == quest["timestamp"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2025-09-29T10:30:00", "2025-09-29T10:30:00"),
        ("2025-09-29T12:30:00+02:00", "2025-09-29T10:30:00"),
        ("2025-09-29T10:30:00Z", "2025-09-29T10:30:00"),
        ("2025-09-29T01:00:00-05:30", "2025-09-29T06:30:00"),
        ("2025-09-29T10:30:00.250000", "2025-09-29T10:30:00.250000"),
        ("2025-09-29T10:30:00.5+01:00", "2025-09-29T09:30:00.500000"),
        ("2025-09-29", "2025-09-29T00:00:00"),
    ],
)
def test_normalize_iso(raw: str, expected: str) -> None:
    assert normalize_iso(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["yesterday", "", "2025-13-01T00:00:00", "2025-09-29T25:00:00", "2025-09-29T10:30:00" * 3],
)
def test_normalize_iso_rejects_garbage(raw: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the contract is ValueError, any message
        normalize_iso(raw)


def test_normalize_iso_rejects_out_of_range_aware_times_as_value_error() -> None:
    with pytest.raises(ValidationFailed):
        for_create(DRIVER, driver_input(timestamp="0001-01-01T00:00:00+01:00"), "driver_1")
    with pytest.raises(ValueError):  # noqa: PT011
        normalize_iso("9999-12-31T23:00:00-05:00")


def test_now_iso_is_in_seed_format() -> None:
    assert_recent(now_iso())
