"""RediSearch index definitions derived from the declarations, and FT.INFO parsing."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from keyspace import search
from keyspace.projection import projected
from keyspace.schema import EntitySpec, FieldKind, Indexed
from keyspace.systems.multiframe.entities import COLLAB, DRIVER, MULTIFRAME, NFT, QUEST, USER

HEAD_LEN = 8

# Drivers without their time field and with cores unranked: indexed as documents, not
# through projections.
UNTIMED = tuple(dataclasses.replace(f, ranked=False) for f in DRIVER.fields[:-1])


def attributes(spec: EntitySpec) -> dict[str, list[str]]:
    """Attribute name -> its SCHEMA arguments (path first), split on the '$.' paths."""
    schema = search.definition(spec)[HEAD_LEN:]
    starts = [i for i, arg in enumerate(schema) if arg.startswith("$.")]
    out: dict[str, list[str]] = {}
    for begin, end in zip(starts, [*starts[1:], len(schema)], strict=True):
        chunk = schema[begin:end]
        assert chunk[1] == "AS"
        assert chunk[2] not in out
        out[chunk[2]] = [chunk[0], *chunk[3:]]
    return out


@pytest.mark.parametrize("spec", MULTIFRAME.entities, ids=lambda s: s.name)
def test_definition_header(spec: EntitySpec) -> None:
    head = search.definition(spec)[:HEAD_LEN]
    prefix = f"mf:proj:{spec.prefix}:" if projected(spec) else f"{spec.prefix}:"
    assert head == ["ON", "JSON", "PREFIX", "1", prefix, "STOPWORDS", "0", "SCHEMA"]


def test_entities_with_text_caseless_or_time_fields_are_indexed_through_projections() -> None:
    # Every MultiFrame entity: a time field's numeric shadow lives in the projection.
    assert [s.name for s in MULTIFRAME.entities if projected(s)] == [
        "user",
        "driver",
        "collab",
        "process",
        "nft",
        "quest",
    ]
    assert not projected(dataclasses.replace(DRIVER, fields=UNTIMED))


@pytest.mark.parametrize("spec", MULTIFRAME.entities, ids=lambda s: s.name)
def test_every_indexed_field_is_declared_with_its_kind(spec: EntitySpec) -> None:
    attrs = attributes(spec)
    times = [f.name for f in spec.fields if f.kind is FieldKind.TIME and not f.array]
    shadows = [n for t in times for n in (f"_us_{t}", f"_odd_{t}")]
    assert list(attrs) == [f.name for f in spec.fields] + shadows
    for name in times:
        assert attrs[f"_us_{name}"] == [f"$._us_{name}", "NUMERIC"]
        assert attrs[f"_odd_{name}"] == [f"$._odd_{name}", "TAG"]
    for field in spec.fields:
        path, kind, *options = attrs[field.name]
        where = field.name if projected(spec) else field.path
        assert path == "$." + where + ("[*]" if field.array else "")
        expected_kind = {FieldKind.NUMERIC: "NUMERIC", FieldKind.TEXT: "TEXT"}.get(
            field.kind, "TAG"
        )
        assert kind == expected_kind
        assert ("SORTABLE" in options) is field.sortable
        if field.kind is FieldKind.TEXT:
            assert "NOSTEM" in options
        if field.kind is FieldKind.TIME:
            assert options == ["CASESENSITIVE", "SORTABLE"]


def test_user_definition_exactly() -> None:
    assert attributes(USER) == {
        "user_id": ["$.user_id", "TAG", "CASESENSITIVE", "SORTABLE"],
        "username": ["$.username", "TAG", "CASESENSITIVE"],
        "username_text": ["$.username_text", "TEXT", "NOSTEM"],
        "email": ["$.email", "TAG", "CASESENSITIVE"],  # folded by the service
        "role": ["$.role", "TAG", "CASESENSITIVE"],
        "created_at": ["$.created_at", "TAG", "CASESENSITIVE", "SORTABLE"],
        "_us_created_at": ["$._us_created_at", "NUMERIC"],
        "_odd_created_at": ["$._odd_created_at", "TAG"],
    }


def test_nested_numeric_array_and_case_insensitive_fields() -> None:
    driver = attributes(dataclasses.replace(DRIVER, fields=UNTIMED))  # unprojected
    assert driver["cores"] == ["$.chip_data.cores", "NUMERIC", "SORTABLE"]
    assert driver["chip_type"] == ["$.chip_data.type", "TAG", "CASESENSITIVE"]
    driver = attributes(DRIVER)  # through its projection: fields by name
    assert driver["cores"] == ["$.cores", "NUMERIC", "SORTABLE"]
    assert driver["chip_type"] == ["$.chip_type", "TAG", "CASESENSITIVE"]
    assert driver["timestamp"] == ["$.timestamp", "TAG", "CASESENSITIVE", "SORTABLE"]
    assert attributes(COLLAB)["collaborators"] == ["$.collaborators[*]", "TAG", "CASESENSITIVE"]
    assert attributes(NFT)["owner"] == ["$.owner", "TAG", "CASESENSITIVE"]
    quest = attributes(QUEST)
    assert quest["title"] == ["$.title", "TEXT", "NOSTEM"]
    assert quest["description"] == ["$.description", "TEXT", "NOSTEM"]


def test_time_fields_are_case_sensitive_even_if_declared_otherwise() -> None:
    field = Indexed("at", "at", FieldKind.TIME, sortable=True, case_sensitive=False)
    spec = dataclasses.replace(DRIVER, fields=(*DRIVER.fields, field))
    assert attributes(spec)["at"] == ["$.at", "TAG", "CASESENSITIVE", "SORTABLE"]


def test_version_is_stable_and_distinct_per_entity() -> None:
    versions = {spec.name: search.version(spec) for spec in MULTIFRAME.entities}
    assert all(re.fullmatch(r"[0-9a-f]{10}", v) for v in versions.values())
    assert len(set(versions.values())) == len(versions)
    assert versions["driver"] == search.version(DRIVER)
    copy = dataclasses.replace(DRIVER, defaults={}, touch_on_update=())
    assert search.version(copy) == versions["driver"]  # not part of the index definition
    assert search.current_name(DRIVER) == f"mf:idx:driver:{versions['driver']}"


@pytest.mark.parametrize(
    "fields",
    [
        UNTIMED,
        (*DRIVER.fields, Indexed("extra", "extra", FieldKind.TAG)),
        tuple(
            dataclasses.replace(f, sortable=False, ranked=False) if f.name == "cores" else f
            for f in DRIVER.fields
        ),
        tuple(reversed(DRIVER.fields)),
    ],
)
def test_version_changes_when_the_definition_changes(fields: tuple[Indexed, ...]) -> None:
    changed = dataclasses.replace(DRIVER, fields=fields)
    assert search.definition(changed) != search.definition(DRIVER)
    assert search.version(changed) != search.version(DRIVER)


def test_version_changes_when_a_field_is_ranked() -> None:
    # The upgrade to it fills the set (keyspace.reproject) before any list reads it.
    fields = tuple(dataclasses.replace(f, ranked=False) for f in DRIVER.fields)
    unranked = dataclasses.replace(DRIVER, fields=fields)
    assert search.definition(unranked) == search.definition(DRIVER)
    assert search.version(unranked) != search.version(DRIVER)


PLAIN = dataclasses.replace(DRIVER, fields=UNTIMED)  # no time field: unprojected


@pytest.mark.parametrize(
    "fields",
    [
        tuple(
            dataclasses.replace(f, case_sensitive=False) if f.name == "status" else f
            for f in PLAIN.fields
        ),
        tuple(
            dataclasses.replace(f, path="chip_data.n") if f.name == "cores" else f
            for f in PLAIN.fields
        ),
    ],
)
def test_version_of_a_document_index_changes_with_case_and_paths(
    fields: tuple[Indexed, ...],
) -> None:
    # Through a projection these change the projections instead (rewritten on upgrade).
    changed = dataclasses.replace(PLAIN, fields=fields)
    assert search.version(changed) != search.version(PLAIN)


def test_version_changes_with_the_prefix() -> None:
    moved = dataclasses.replace(PLAIN, prefix="drv")
    assert search.definition(moved)[4] == "drv:"
    assert search.version(moved) != search.version(PLAIN)
    assert search.definition(dataclasses.replace(DRIVER, prefix="drv"))[4] == "mf:proj:drv:"
    assert search.version(dataclasses.replace(DRIVER, prefix="drv")) != search.version(DRIVER)


def test_parse_info_decodes_keys_and_keeps_values() -> None:
    reply: list[Any] = [
        b"index_name",
        b"mf:idx:user:abc",
        b"indexing",
        b"1",
        b"percent_indexed",
        b"0.5",
        "num_docs",
        7,
        b"attributes",
        [[b"identifier", b"$.user_id"]],
    ]
    info = search.parse_info(reply)
    assert info == {
        "index_name": b"mf:idx:user:abc",
        "indexing": b"1",
        "percent_indexed": b"0.5",
        "num_docs": 7,
        "attributes": [[b"identifier", b"$.user_id"]],
    }
    assert search.parse_info([]) == {}
    with pytest.raises(ValueError):  # noqa: PT011 - zip(strict=True) on an odd-length reply
        search.parse_info([b"indexing"])


@pytest.mark.parametrize(
    ("info", "building"),
    [
        ({"indexing": b"1", "percent_indexed": b"0.5"}, True),
        ({"indexing": b"1", "percent_indexed": b"1"}, True),
        ({"indexing": b"0", "percent_indexed": b"0.5"}, True),
        ({"indexing": 0, "percent_indexed": "0.99"}, True),
        ({"indexing": b"0", "percent_indexed": b"1"}, False),
        ({"indexing": "0.0", "percent_indexed": "1.0"}, False),
        ({"indexing": 0, "percent_indexed": 1}, False),
        ({}, False),
    ],
)
def test_is_building(info: dict[str, Any], building: bool) -> None:
    assert search.is_building(info) is building


def test_is_building_on_a_parsed_reply() -> None:
    reply = [b"indexing", b"1", b"percent_indexed", b"0.5"]
    assert search.is_building(search.parse_info(reply))
    done = [b"indexing", b"0", b"percent_indexed", b"1"]
    assert not search.is_building(search.parse_info(done))
