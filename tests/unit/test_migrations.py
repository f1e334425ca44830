"""Migration declarations (keyspace/migrations.py), pure: constructors, their idempotence,
ordering, the registry's entries, status, and one batch's commit plan."""

from __future__ import annotations

from typing import Any

import pytest

from keyspace import codec
from keyspace.documents import validate
from keyspace.migrations import (
    Applied,
    Migration,
    MigrationFailed,
    Progress,
    add_field,
    check,
    converted,
    index_change,
    parse_applied,
    parse_progress,
    plan_batch,
    plan_record,
    rename_field,
    split_value,
    status,
    to_run,
)
from keyspace.plan import Loaded
from tests.migration_world import ADD_FORMAT, COUNT, RENAME_AUTHOR, book_id, world

NEW = world(2, counting=True)
BOOKS = NEW.schema.entity("book")


def _split(value: Any) -> dict[str, Any]:
    first, _, last = str(value).partition(" ")
    return {"first": first, "last": last}


@pytest.mark.parametrize(
    ("migration", "doc", "once"),
    [
        (add_field(1, "c", "f", [1]), {"id": "a"}, {"id": "a", "f": [1]}),
        (add_field(1, "c", "f", 0), {"id": "a", "f": 5}, None),
        (rename_field(1, "c", "a", "b"), {"id": "x", "a": 1}, {"id": "x", "b": 1}),
        (rename_field(1, "c", "a", "b"), {"id": "x", "b": 2}, None),
        # A new-release write merged into an unconverted document: the new name wins.
        (rename_field(1, "c", "a", "b"), {"id": "x", "a": 1, "b": 2}, {"id": "x", "b": 2}),
        (split_value(1, "c", "n", _split), {"n": "Ada L"}, {"first": "Ada", "last": "L"}),
        (
            split_value(1, "c", "n", _split, keep=True),
            {"n": "Ada L"},
            {"n": "Ada L", "first": "Ada", "last": "L"},
        ),
        (split_value(1, "c", "n", _split), {"first": "Ada"}, None),
    ],
)
def test_constructors_convert_once_and_then_change_nothing(
    migration: Migration, doc: dict[str, Any], once: dict[str, Any] | None
) -> None:
    assert migration.convert(doc) == once
    after = once if once is not None else doc
    assert migration.convert(after) is None  # idempotent: a second pass is no write
    assert migration.upgrade(doc) == after
    assert migration.kind == "data"


def test_add_field_copies_a_mutable_default() -> None:
    migration = add_field(1, "c", "tags", [])
    first = migration.convert({"id": "a"})
    assert first is not None
    first["tags"].append("x")
    assert migration.convert({"id": "b"}) == {"id": "b", "tags": []}


def test_an_index_change_converts_nothing() -> None:
    migration = index_change(4, "index writer as text", "books")
    assert migration.kind == "index"
    assert migration.convert({"id": "a"}) is None
    assert migration.upgrade({"id": "a"}) == {"id": "a"}
    assert migration.upgrade(["not", "an", "object"]) == ["not", "an", "object"]


def test_versions_rise_strictly_and_name_declared_collections() -> None:
    check((ADD_FORMAT, RENAME_AUTHOR), NEW.schema)
    with pytest.raises(ValueError, match="rise strictly"):
        check((RENAME_AUTHOR, ADD_FORMAT), NEW.schema)
    with pytest.raises(ValueError, match="rise strictly"):
        check((ADD_FORMAT, add_field(1, "books", "x", 0)), NEW.schema)
    with pytest.raises(ValueError, match="no collection 'shelves'"):
        check((add_field(1, "shelves", "x", 0),), NEW.schema)
    with pytest.raises(AssertionError):
        Migration(0, "zero", "books")
    with pytest.raises(AssertionError):
        Migration(1, " ", "books")


def test_a_system_refuses_migrations_out_of_order() -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match="rise strictly"):
        replace(world(2), migrations=(RENAME_AUTHOR, ADD_FORMAT))


def test_the_model_accepts_the_older_shape_and_stores_the_new() -> None:
    old = {"id": book_id(0), "title": "T", "author": "A"}
    stored = validate(BOOKS.model, old)
    assert stored == {
        "id": book_id(0),
        "title": "T",
        "writer": "A",
        "format": "paper",
        "conversions": None,
    }
    with pytest.raises(Exception, match="writer"):
        validate(BOOKS.model, {"id": book_id(0), "title": "T"})  # neither shape


def test_registry_entries_round_trip_and_malformed_ones_are_named() -> None:
    entry = Applied(2, "rename author to writer", "books", "data", "2025-01-01T00:00:00", 7)
    assert parse_applied("2", entry.encode()) == entry
    for field, value, why in [
        ("02", entry.encode(), "not a migration version"),
        ("x", entry.encode(), "not a migration version"),
        ("2", "{", "not JSON"),
        ("2", '{"description": "d"}', "exactly"),
        ("2", entry.encode().replace('"data"', '"other"'), "kind"),
        ("2", entry.encode().replace("7", '"7"'), "documents must be a int"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_applied(field, value)


def test_status_orders_pending_and_sets_apart_unknown_and_malformed() -> None:
    applied = Applied(1, "add format", "books", "data", "2025-01-01T00:00:00")
    newer = Applied(9, "from a newer release", "books", "data", "2025-01-02T00:00:00")
    found = status(
        (ADD_FORMAT, RENAME_AUTHOR, COUNT),
        {"1": applied.encode(), "9": newer.encode(), "bad": "{}"},
    )
    assert found.applied == [applied]
    assert [m.version for m in found.pending] == [2, 3]
    assert found.unknown == [newer]
    assert len(found.malformed) == 1
    assert [m.version for m in to_run(found.pending, 2)] == [2]
    assert [m.version for m in to_run(reversed(found.pending), None)] == [2, 3]
    assert found.shown()["pending"][0] == {
        "version": 2,
        "description": "rename author to writer",
        "collection": "books",
        "kind": "data",
    }


def test_progress_round_trips_and_a_damaged_one_restarts_the_pass() -> None:
    at = Progress(cursor=1234, examined=400, converted=390, scanned=False)
    assert parse_progress(at.fields()) == at
    assert parse_progress({}) is None
    assert parse_progress({**at.fields(), "cursor": "x"}) is None


def _loaded(n: int, doc: dict[str, Any]) -> Loaded:
    return Loaded(BOOKS, book_id(n), codec.dumps(doc), doc, BOOKS.key(book_id(n)))


def test_converted_validates_and_refuses_what_the_declaration_would_not_hold() -> None:
    old = _loaded(0, {"id": book_id(0), "title": "T", "author": "A"})
    assert converted(RENAME_AUTHOR, old) == {
        "id": book_id(0),
        "title": "T",
        "writer": "A",
        "format": "paper",  # the model's upgrades run too: the stored form is the new shape
        "conversions": None,
    }
    done = _loaded(1, validate(BOOKS.model, {"id": book_id(1), "title": "T", "writer": "W"}))
    assert converted(RENAME_AUTHOR, done) is None
    assert converted(COUNT, done) == {**done.doc, "conversions": 1}
    bad = Migration(5, "break it", "books", lambda d: {**d, "format": "scroll"})
    with pytest.raises(MigrationFailed, match=BOOKS.key(book_id(1))):
        converted(bad, done)
    broken = Migration(7, "a bug", "books", lambda d: {**d, "n": 1 // 0})
    with pytest.raises(MigrationFailed, match="ZeroDivisionError"):
        converted(broken, done)
    moved = Migration(6, "move it", "books", lambda d: {**d, "id": book_id(9)})
    with pytest.raises(MigrationFailed, match="id"):
        converted(moved, done)


def test_one_batch_is_one_plan_checking_every_document_and_recording_the_resume_point() -> None:
    olds = [_loaded(n, {"id": book_id(n), "title": "T", "author": "A"}) for n in range(3)]
    changes = [(old, validate(BOOKS.model, dict(old.doc))) for old in olds]
    progress_key = NEW.schema.names.migration_progress_key(2)
    after = Progress(cursor=77, examined=3, converted=3)
    plan = plan_batch(NEW.schema, changes, progress_key, after)
    assert plan.keys[0] == NEW.schema.names.pause_key()
    equals = [c for c in plan.checks if c[0] == "equals"]
    assert [plan.keys[int(c[1]) - 1] for c in equals] == [o.key for o in olds]
    assert [c[2] for c in equals] == [o.raw for o in olds]
    jsets = [w for w in plan.writes if w[0] == "jset"]
    assert [codec.loads(w[2]) for w in jsets if isinstance(w[2], bytes)] == [n for _, n in changes]
    hsets = {w[2]: w[3] for w in plan.writes if w[0] == "hset"}
    assert hsets == {"cursor": "77", "examined": "3", "converted": "3", "scanned": "0"}
    assert all(plan.keys[int(w[1]) - 1] == progress_key for w in plan.writes if w[0] == "hset")
    assert progress_key == "shelf:mf:migrating:2"


def test_recording_writes_the_registry_and_drops_the_resume_point_in_one_plan() -> None:
    names = NEW.schema.names
    entry = Applied(2, "rename", "books", "data", "2025-01-01T00:00:00", 3)
    plan = plan_record(names, entry, names.migration_progress_key(2))
    assert [w[0] for w in plan.writes] == ["hset", "del"]
    assert plan.keys[int(plan.writes[0][1]) - 1] == "shelf:mf:migrations"
    assert plan.writes[0][2:] == ["2", entry.encode()]
