"""project() in one pass keeps the two-pass definition's output byte for byte: values of the
id entry and every declared field by name (the first of a name), then the time shadows and
odd marks of the declared fields in their order, however names repeat (review 22). Its steps
are compiled once per entity (fields kept as stored skip index_value): every entity of every
system still projects as the definition does, whatever each field holds."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from keyspace import MULTIFRAME, codec, systems
from keyspace.projection import ODD, SHADOW, index_value, shadow, shadowed
from keyspace.projection import project as project_now
from keyspace.schema import EntitySpec, FieldKind, Indexed, get_path

DRIVER = MULTIFRAME.entity("driver")


def two_passes(spec: EntitySpec, doc: dict[str, Any]) -> dict[str, Any]:
    """The definition before the one-pass rewrite (commit 86b0ee2)."""
    out: dict[str, Any] = {}
    for field in (spec.id_index, *spec.fields):
        value = get_path(doc, field.path)
        if value is None or field.name in out:
            continue
        shown = index_value(field, value)
        if shown is not None:
            out[field.name] = shown
    for field in spec.fields:
        value = get_path(doc, field.path)
        if not shadowed(field) or value is None:
            continue
        micros = shadow(value)
        if micros is None:
            out[ODD + field.name] = "1"
        else:
            out[SHADOW + field.name] = micros
    return out


def test_a_repeated_time_name_keeps_every_mark() -> None:
    extra = (Indexed("when", "a", FieldKind.TIME), Indexed("when", "b", FieldKind.TIME))
    spec = replace(DRIVER, fields=DRIVER.fields + extra)
    doc = {"driver_id": "driver_1", "a": "2024-01-01T00:00:00", "b": "odd time"}
    got = project_now(spec, doc)
    assert codec.dumps(got) == codec.dumps(two_passes(spec, doc))
    assert got[ODD + "when"] == "1" and SHADOW + "when" in got


def test_a_time_id_field_has_its_shadow_in_its_declared_place() -> None:
    rest = tuple(f for f in DRIVER.fields if f.name != DRIVER.id_field)
    t0 = Indexed("t0", "t0", FieldKind.TIME)
    spec = replace(
        DRIVER, fields=(t0, *rest, Indexed(DRIVER.id_field, DRIVER.id_field, FieldKind.TIME))
    )
    doc = {
        DRIVER.id_field: "2024-01-01T00:00:00",
        "t0": "2024-01-02T00:00:00",
        "timestamp": "2024-01-03T00:00:00",
    }
    got = project_now(spec, doc)
    assert codec.dumps(got) == codec.dumps(two_passes(spec, doc))
    marks = [k for k in got if k.startswith(SHADOW)]
    assert marks == [SHADOW + "t0", SHADOW + "timestamp", SHADOW + DRIVER.id_field]


def test_served_documents_project_as_before() -> None:
    doc = {
        "driver_id": "driver_7",
        "user_id": "user_1",
        "chip_id": "chip_1",
        "chip_data": {"type": "Quantum", "cores": 512, "frequency": "5GHz", "architecture": "X"},
        "status": "active",
        "version": "1.0.0",
        "timestamp": "2026-12-04T15:30:51.000123",
    }
    for variant in (doc, {**doc, "timestamp": "yesterday"}, {**doc, "chip_data": None}):
        assert codec.dumps(project_now(DRIVER, variant)) == codec.dumps(two_passes(DRIVER, variant))


# Values of every shape a stored document can hold at a field, and ones written around the
# service: caseless and odd text, a sealed value, numbers, booleans, decimals, times (canonical
# and not), lists of them, an empty list, objects and nulls.
_VALUES: list[Any] = [
    "Straße ÉTÉ\u00a0x",
    "enc:" + "ab" * 16,
    "2024-02-29T10:00:00",
    "2024-02-29 10:00",
    "12.50",
    7,
    -2.5,
    True,
    False,
    ["A", "b", "A"],
    [1, 2.5],
    [0.0, 0.0, 3.0],
    [],
    {"nested": 1},
    None,
]


def _doc_for(spec: EntitySpec, pick: int) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for at, field in enumerate((spec.id_index, *spec.fields)):
        value = _VALUES[(pick + at) % len(_VALUES)]
        node = doc
        *parents, last = field.path.split(".")
        for part in parents:
            node = node.setdefault(part, {}) if isinstance(node.get(part), dict | None) else {}
        node[last] = value
    return doc


@pytest.mark.parametrize("system", systems.names())
def test_every_entity_projects_as_the_definition(system: str) -> None:
    served = systems.load(system).schema
    for spec in served.entities:
        for pick in range(len(_VALUES)):
            doc = _doc_for(spec, pick)
            assert _outcome(project_now, spec, doc) == _outcome(two_passes, spec, doc), (
                spec.name,
                pick,
            )


def _outcome(project: Any, spec: EntitySpec, doc: dict[str, Any]) -> object:
    """The projection's bytes, or the error it raised (a value no validation would pass)."""
    try:
        return codec.dumps(project(spec, doc))
    except (ValueError, TypeError) as error:
        return repr(error)


def test_specs_built_at_run_time_are_not_kept_alive_by_the_projection() -> None:
    # project() and projected() keep their answers per spec while it lives (review 37: every
    # spec ever projected stayed in memory, ~20 KiB a system loaded in a test session).
    import gc
    import weakref

    from keyspace import projection

    doc = {"driver_id": "driver_1", "timestamp": "2024-01-01T00:00:00"}
    gc.collect()
    before = len(projection._STEPS), len(projection._PROJECTED)
    refs = []
    for n in range(50):
        spec = replace(DRIVER, collection=f"drivers{n}")
        assert projection.projected(spec)
        assert project_now(spec, doc) == project_now(DRIVER, doc)
        refs.append(weakref.ref(spec))
    del spec
    gc.collect()
    assert not [r for r in refs if r() is not None]
    assert (len(projection._STEPS), len(projection._PROJECTED)) == before
