"""fields= and expand= parsing and shaping (keyspace.sparse), without Redis."""

from __future__ import annotations

from typing import Any

import pytest

from keyspace import COLLAB, DRIVER, USER, ValidationFailed
from keyspace.sparse import (
    EXPANDED,
    Shape,
    json_path,
    minimal,
    model_tree,
    parse_expand,
    parse_fields,
    project,
    read_paths,
)

DOC: dict[str, Any] = {
    "driver_id": "driver_1",
    "user_id": "user_1",
    "chip_id": "chip_1",
    "chip_data": {"type": "quantum_processor", "cores": 128, "frequency": "4GHz"},
    "status": "generated",
}


def test_the_model_tree_descends_into_nested_models_only() -> None:
    tree = model_tree(DRIVER.model)
    assert set(tree) == {
        "driver_id",
        "user_id",
        "chip_id",
        "chip_data",
        "status",
        "version",
        "timestamp",
    }
    chip = tree["chip_data"]
    assert chip is not None and set(chip) == {"type", "cores", "frequency", "architecture"}
    assert tree["status"] is None
    assert model_tree(COLLAB.model)["collaborators"] is None  # an array: no member paths


def test_fields_keep_the_id_first_and_drop_paths_under_another() -> None:
    assert parse_fields(DRIVER, None) is None
    assert parse_fields(DRIVER, ["status,chip_data.cores"]) == (
        "driver_id",
        "status",
        "chip_data.cores",
    )
    assert parse_fields(DRIVER, ["chip_data.cores", "chip_data, status ,status"]) == (
        "driver_id",
        "chip_data",
        "status",
    )
    assert minimal(["a.b", "a", "ab", "a.b.c"]) == ("a", "ab")


@pytest.mark.parametrize(
    ("raw", "unknown"),
    [
        ("status,colour", ["colour"]),
        ("chip_data.colour,chip_data.cores.x", ["chip_data.colour", "chip_data.cores.x"]),
        ("status.x", ["status.x"]),
        ("chip_data.", ["chip_data."]),
    ],
)
def test_an_unknown_path_is_refused_by_name(raw: str, unknown: list[str]) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_fields(DRIVER, [raw])
    assert all(name in caught.value.message for name in unknown)
    assert [d["value"] for d in caught.value.details] == unknown
    assert {d["field"] for d in caught.value.details} == {"fields"}


@pytest.mark.parametrize("raw", ["", ",", " , "])
def test_empty_fields_and_expand_are_refused(raw: str) -> None:
    with pytest.raises(ValidationFailed):
        parse_fields(DRIVER, [raw])
    with pytest.raises(ValidationFailed):
        parse_expand(DRIVER, [raw])


def test_expand_takes_declared_references_only() -> None:
    assert parse_expand(DRIVER, None) == ()
    assert [r.field for r in parse_expand(COLLAB, ["collaborators,user_id"])] == [
        "collaborators",
        "user_id",
    ]
    for raw in ("chip_id", "status", "driver_id", "users"):
        with pytest.raises(ValidationFailed) as caught:
            parse_expand(DRIVER, [raw])
        assert raw in caught.value.message and "user_id" in caught.value.message
    with pytest.raises(ValidationFailed):
        parse_expand(USER, ["user_id"])  # users refer to nothing


def test_project_keeps_nesting_and_skips_what_the_document_lacks() -> None:
    assert project(DOC, ["driver_id", "status", "chip_data.cores"]) == {
        "driver_id": "driver_1",
        "status": "generated",
        "chip_data": {"cores": 128},
    }
    assert project(DOC, ["driver_id", "chip_data.architecture", "version"]) == {
        "driver_id": "driver_1"
    }
    assert project(DOC, ["chip_data.type", "chip_data.cores"]) == {
        "chip_data": {"type": "quantum_processor", "cores": 128}
    }
    assert project({"chip_data": None}, ["chip_data.cores"]) == {}


def test_read_paths_add_what_the_query_needs() -> None:
    assert read_paths(("driver_id", "status"), ["chip_data.cores", "status"]) == (
        "driver_id",
        "status",
        "chip_data.cores",
    )


def test_a_shape_embeds_targets_beside_the_fields_in_array_order() -> None:
    collab = {
        "collab_id": "collab_1",
        "user_id": "user_1",
        "status": "active",
        "collaborators": ["user_2", "user_9", "user_1"],
    }
    refs = parse_expand(COLLAB, ["collaborators,user_id"])
    shape = Shape(parse_fields(COLLAB, ["status"]), refs)
    assert shape.kept == ("collab_id", "status", "collaborators", "user_id")
    assert shape.wanted([collab]) == {"user": ["user_2", "user_9", "user_1"]}
    one, two = {"user_id": "user_1"}, {"user_id": "user_2"}
    found = {"user": {"user_1": one, "user_2": two, "user_9": None}}
    assert shape.apply(collab, found) == {
        "collab_id": "collab_1",
        "status": "active",
        "collaborators": ["user_2", "user_9", "user_1"],
        "user_id": "user_1",
        EXPANDED: {"collaborators": [two, None, one], "user_id": one},
    }
    whole = Shape(None, refs[1:])
    assert whole.kept is None and whole.apply(collab, {})[EXPANDED] == {"user_id": None}
    assert whole.apply({**collab, "user_id": None}, found)[EXPANDED] == {"user_id": None}
    assert Shape().plain and not whole.plain
    assert Shape().apply(collab) == collab


def test_json_paths_are_bracketed() -> None:
    assert json_path("chip_data.cores") == '$["chip_data"]["cores"]'
    assert json_path("isAdmin") == '$["isAdmin"]'
