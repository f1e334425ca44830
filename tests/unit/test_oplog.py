"""Operation logs as declarations (``OpLog``) and the pure half of keyspace.oplog: what an
append may hold, the stored entries, the keys and arguments of oplog.lua, and how replies are
numbered. The script itself runs in tests/integration/test_oplog.py (real server) and
tests/api/test_locks_api.py."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from keyspace import NotFound
from keyspace.declare import Lockable, OpLog, string, table
from keyspace.errors import ValidationFailed
from keyspace.locks import Locked, StaleFencingToken
from keyspace.oplog import (
    MAX_BATCH,
    Append,
    Gone,
    Op,
    append_args,
    appended,
    entry,
    log_keys,
    page,
    parse_append,
    parse_op_query,
)
from keyspace.schema import IdStrategy, Schema
from keyspace.system import System

ACCOUNT = table("account", collection="accounts", id=IdStrategy.CUID, fields=(), owner="id")
DOC = table(
    "document",
    collection="documents",
    id=IdStrategy.UUID,
    fields=(string("title"),),
    lock=Lockable(),
    oplog=OpLog(ttl_seconds=60, cap=5),
)
NOTE = table(
    "note",
    collection="notes",
    id=IdStrategy.UUID,
    fields=(),
    oplog=OpLog(key="notes:ops", lock_guarded=False),
)
SYSTEM = System(
    name="logging",
    title="logging",
    schema=Schema((ACCOUNT, DOC, NOTE)),
    namespace="logging:",
    principal="account",
).served()
SPEC, UNLOCKED = SYSTEM.schema.entity("document"), SYSTEM.schema.entity("note")
INSERT = {"operation": "insert", "position": 3, "content": "hi"}


def test_the_declaration_defaults_are_the_seeds() -> None:
    assert OpLog() == OpLog(key="doc:ops", ttl_seconds=3600, cap=10_000, lock_guarded=True)
    assert SPEC.oplog == OpLog(ttl_seconds=60, cap=5)
    for bad in ({"cap": 0}, {"ttl_seconds": 0}, {"key": "a b"}):
        with pytest.raises(AssertionError):
            OpLog(**bad)


def test_one_op_a_list_or_an_envelope_with_a_fencing_token() -> None:
    one = parse_append(INSERT, "u1", 5)
    assert one == Append((Op("insert", 3, "hi"),))
    assert parse_append({**INSERT, "fencing_token": 4}, "u1", 5).fencing_token == 4
    listed = parse_append([INSERT, {"operation": "delete", "position": 0}], "u1", 5)
    assert listed.ops == (Op("insert", 3, "hi"), Op("delete", 0, None))
    wrapped = parse_append({"ops": [INSERT], "fencing_token": 9}, "u1", 5)
    assert wrapped == Append((Op("insert", 3, "hi"),), 9)
    assert parse_append({**INSERT, "user_id": "u1"}, "u1", 5).ops == (Op("insert", 3, "hi"),)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"operation": "move", "position": 0}, "(body).operation"),
        ({"operation": "insert", "position": -1, "content": "x"}, "(body).position"),
        ({"operation": "insert", "position": True, "content": "x"}, "(body).position"),
        ({"operation": "insert", "position": 1.0, "content": "x"}, "(body).position"),
        ({"operation": "insert", "position": 0}, "(body).content"),
        ({"operation": "insert", "position": 0, "content": ""}, "(body).content"),
        ({"operation": "retain", "position": 0, "content": 5}, "(body).content"),
        ({"operation": "retain", "position": 0, "content": "x" * 65_537}, "(body).content"),
        ({**INSERT, "user_id": "u2"}, "(body).user_id"),
        ({**INSERT, "timestamp": "2025-01-01T00:00:00"}, "(body).timestamp"),
        ({**INSERT, "colour": "red"}, "(body).colour"),
        ({**INSERT, "fencing_token": "4"}, "fencing_token"),
        ([], "(body)"),
        ([INSERT] * 6, "(body)"),  # more than the cap: it would drop its own entries
        ([INSERT, "x"], "(body)[1]"),
        ({"ops": [INSERT, {"operation": "retain"}]}, "ops[1].position"),
        ({"ops": [INSERT], "extra": 1}, "extra"),
        ({"ops": "x"}, "ops"),
        ("insert", "(body)"),
    ],
)
def test_malformed_appends_name_the_field(body: Any, field: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_append(body, "u1", 5)
    assert refused.value.details[0]["field"] == field


def test_a_batch_is_bounded_by_the_cap_and_by_max_batch() -> None:
    assert len(parse_append([INSERT] * MAX_BATCH, "u1", 10_000).ops) == MAX_BATCH
    with pytest.raises(ValidationFailed):
        parse_append([INSERT] * (MAX_BATCH + 1), "u1", 10_000)


def test_read_parameters() -> None:
    assert parse_op_query({}) == (0, 100)
    assert parse_op_query({"since": ["7"], "limit": ["5"]}) == (7, 5)
    assert parse_op_query({"limit": ["5000"]}) == (0, 1000)  # capped like list pages
    for bad in (
        {"since": ["-1"]},
        {"since": ["x"]},
        {"since": ["1", "2"]},
        {"limit": ["0"]},
        {"since": ["9" * 17]},
        {"cursor": ["a"]},
    ):
        with pytest.raises(ValidationFailed):
            parse_op_query(bad)


def test_entries_are_the_seeds_json_with_the_servers_author_and_time() -> None:
    stored = entry(Op("insert", 3, "hi"), "u1", "2025-09-29T10:30:00.000")
    assert list(orjson.loads(stored)) == [
        "user_id",
        "operation",
        "position",
        "content",
        "timestamp",
    ]
    assert orjson.loads(stored) == {
        "user_id": "u1",
        "operation": "insert",
        "position": 3,
        "content": "hi",
        "timestamp": "2025-09-29T10:30:00.000",
    }


def test_keys_and_arguments_of_an_append() -> None:
    doc_id = "d1"
    assert log_keys(SPEC, doc_id, with_lock=True) == [
        "logging:mf:pause",
        "logging:doc:ops:d1",
        "logging:mf:seq:doc:ops:d1",
        "logging:document:d1",
        "logging:doc:lock:d1",
    ]
    assert len(log_keys(SPEC, doc_id, with_lock=False)) == 4
    assert len(log_keys(UNLOCKED, doc_id, with_lock=True)) == 4  # nothing to guard it
    args = append_args(SPEC, "u1", Append((Op("delete", 1, None),), 3), "t")
    assert args[:6] == ["append", 60_000, 5, "u1", "1", 3]
    assert [orjson.loads(a) for a in args[6:]] == [  # type: ignore[arg-type]
        {"user_id": "u1", "operation": "delete", "position": 1, "content": None, "timestamp": "t"}
    ]
    assert append_args(UNLOCKED, "u1", Append((Op("delete", 1, None),)), "t")[4:6] == ["0", ""]


def test_an_entity_without_a_log_has_no_log_keys() -> None:
    with pytest.raises(ValueError, match="no operation log"):
        log_keys(SYSTEM.schema.entity("account"), "c1", with_lock=False)


def test_append_replies() -> None:
    two = Append((Op("retain", 0, None), Op("retain", 1, None)), fencing_token=3)
    assert appended([b"ok", 41], SPEC, "d1", two, "t").seqs == [41, 42]
    lock = orjson.dumps({"user_id": "u2", "operation": "editing", "fencing_token": 4})
    with pytest.raises(Locked) as held:
        appended([b"locked", lock, 3000], SPEC, "d1", two, "t")
    assert held.value.details["holder"] == "u2" and held.value.details["expires_in"] == 3
    with pytest.raises(StaleFencingToken) as stale:
        appended([b"stale_token", lock, 3000], SPEC, "d1", two, "t")
    assert stale.value.details == {"fencing_token": 3, "current": 4}
    with pytest.raises(StaleFencingToken) as unlocked:
        appended([b"stale_token", None, 0], SPEC, "d1", two, "t")
    assert unlocked.value.details == {"fencing_token": 3, "current": None}
    with pytest.raises(NotFound):
        appended([b"not_found"], SPEC, "d1", two, "t")


def test_read_replies_are_numbered_from_since() -> None:
    raw = [orjson.dumps({"user_id": "u", "operation": "retain", "position": n}) for n in (5, 6)]
    got = page([b"ok", 3, 9, *raw], SPEC, "d1", 4)
    assert [i["seq"] for i in got.items] == [5, 6]
    assert got.items[0] == {"seq": 5, "user_id": "u", "operation": "retain", "position": 5}
    assert (got.oldest_seq, got.latest_seq) == (3, 9)
    with pytest.raises(Gone) as trimmed:
        page([b"gone", 5, 9], SPEC, "d1", 2)
    assert trimmed.value.details == {"since": 2, "oldest_seq": 5, "latest_seq": 9}
    assert "oldest kept is 5" in trimmed.value.message
    with pytest.raises(Gone) as ahead:
        page([b"gone", 1, 3], SPEC, "d1", 7)
    assert "reset" in ahead.value.message
    with pytest.raises(NotFound):
        page([b"not_found"], SPEC, "d1", 0)
