"""Locks as declarations (``Lockable``) and the pure half of keyspace.locks: key names, the
lock's stored JSON, argument validation and how each lock.lua reply reads. The script itself
runs in tests/integration/test_locks.py (real server) and tests/api/test_locks_api.py."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from keyspace import NotFound, keys
from keyspace.declare import Lockable, OpLog, ref, string, table
from keyspace.errors import ValidationFailed
from keyspace.keys import SEED_NAMES, Names
from keyspace.locks import (
    Lock,
    Locked,
    NotLocked,
    NotLockHolder,
    StaleFencingToken,
    acquire_args,
    fencing_token_of,
    holder_args,
    lock_keys,
    operation_of,
    outcome,
    parse_lock,
)
from keyspace.schema import IdStrategy, Schema
from keyspace.system import System

ACCOUNT = table("account", collection="accounts", id=IdStrategy.CUID, fields=(), owner="id")
DOC = table(
    "document",
    collection="documents",
    id=IdStrategy.UUID,
    fields=(string("title"), ref("owner_id", "account", null=True)),
    owner="owner_id",
    lock=Lockable(ttl_seconds=12),
)
SYSTEM = System(
    name="locking",
    title="locking",
    schema=Schema((ACCOUNT, DOC)),
    namespace="locking:",
    principal="account",
).served()
SPEC = SYSTEM.schema.entity("document")
DOC_ID = "0b9a6c1e-3f1c-4f0e-9a57-0d6f7e3c2b11"


def test_table_declares_the_lock_and_the_default_is_the_seeds() -> None:
    assert SPEC.lock == Lockable(ttl_seconds=12, key="doc:lock")
    assert Lockable() == Lockable(ttl_seconds=30, key="doc:lock")
    assert ACCOUNT.lock is None and ACCOUNT.oplog is None


@pytest.mark.parametrize(
    "make",
    [
        lambda: Lockable(ttl_seconds=0),
        lambda: Lockable(key="doc lock"),
        lambda: Lockable(key=":doc"),
        lambda: Lockable(key="doc:"),
    ],
)
def test_a_lock_needs_a_ttl_and_a_key_prefix(make: Any) -> None:
    with pytest.raises(AssertionError):
        make()


def test_lock_keys_may_not_cover_or_repeat_other_key_prefixes() -> None:
    other = table("doc", collection="docs", id=IdStrategy.UUID, fields=(), lock=Lockable())
    with pytest.raises(AssertionError, match="cover"):  # doc:* would find doc:lock:<id>
        Schema((ACCOUNT, other))
    twice = table("sheet", collection="sheets", id=IdStrategy.UUID, fields=(), lock=Lockable())
    with pytest.raises(AssertionError, match="twice"):  # two entities' locks in one key
        Schema((ACCOUNT, DOC, twice))
    reserved = table(
        "sheet", collection="sheets", id=IdStrategy.UUID, fields=(), lock=Lockable(key="mf:x")
    )
    with pytest.raises(AssertionError, match="reserved"):
        Schema((ACCOUNT, reserved))
    apart = table(
        "sheet", collection="sheets", id=IdStrategy.UUID, fields=(), lock=Lockable(key="sheet:lock")
    )
    with pytest.raises(AssertionError, match="cover"):  # sheet:* would find sheet:lock:<id>
        Schema((ACCOUNT, apart))
    fine = table(
        "sheet", collection="sheets", id=IdStrategy.UUID, fields=(), lock=Lockable(key="lk")
    )
    assert Schema((ACCOUNT, DOC, fine)).entity("sheet").lock == Lockable(key="lk")


def test_a_lock_guarded_log_needs_a_lock() -> None:
    with pytest.raises(AssertionError, match="needs a lock"):
        table("sheet", collection="sheets", id=IdStrategy.UUID, fields=(), oplog=OpLog())
    unguarded = OpLog(lock_guarded=False)
    sheet = table("sheet", collection="sheets", id=IdStrategy.UUID, fields=(), oplog=unguarded)
    assert sheet.oplog == unguarded and sheet.lock is None


def test_lock_keys_are_the_seeds_inside_the_namespace() -> None:
    assert lock_keys(SPEC, DOC_ID) == [
        "locking:mf:pause",
        f"locking:doc:lock:{DOC_ID}",
        f"locking:mf:fence:doc:lock:{DOC_ID}",
        f"locking:document:{DOC_ID}",
    ]
    # Without a namespace the lock is exactly the seed's key.
    assert SEED_NAMES.lock_key_of("doc:lock", "d1") == keys.lock_key_of("doc:lock", "d1")
    assert SEED_NAMES.lock_key_of("doc:lock", "d1") == "doc:lock:d1"
    assert Names("nf:").fence_key("doc:lock", "d1") == "nf:mf:fence:doc:lock:d1"
    assert Names("nf:").oplog_key("doc:ops", "d1") == "nf:doc:ops:d1"
    assert Names("nf:").oplog_seq_key("doc:ops", "d1") == "nf:mf:seq:doc:ops:d1"


def test_an_entity_without_a_lock_has_no_lock_keys() -> None:
    with pytest.raises(ValueError, match="declares no lock"):
        lock_keys(SYSTEM.schema.entity("account"), "c1")


def test_the_stored_lock_is_the_seeds_json_plus_the_token_the_script_draws() -> None:
    args = acquire_args(SPEC, "u1", "editing", "2025-09-29T10:30:00.000")
    assert args[:5] == ["acquire", 12_000, "", "0", ""]
    head, tail = args[5], args[6]
    assert isinstance(head, bytes) and isinstance(tail, bytes)
    stored = orjson.loads(head + b"7" + tail)
    assert list(stored) == ["user_id", "locked_at", "operation", "fencing_token"]
    assert stored == {
        "user_id": "u1",
        "locked_at": "2025-09-29T10:30:00.000",
        "operation": "editing",
        "fencing_token": 7,
    }
    # Quotes in a user id cannot break out of the JSON.
    odd = acquire_args(SPEC, 'u"1', "editing", "t")
    assert orjson.loads(bytes(odd[5]) + b"1" + bytes(odd[6]))["user_id"] == 'u"1'  # type: ignore[arg-type]


def test_holder_args_name_the_caller_and_the_token() -> None:
    assert holder_args("refresh", SPEC, "u1", False, None) == ["refresh", 12_000, "u1", "0", ""]
    assert holder_args("release", SPEC, "u2", True, 5) == ["release", 12_000, "u2", "1", 5]


def test_operation_defaults_to_editing_and_is_a_word() -> None:
    assert operation_of(None) == "editing"
    assert operation_of("reviewing") == "reviewing"
    for bad in ("", "two words", 3, "x" * 65, "1st", "edit\n"):
        with pytest.raises(ValidationFailed):
            operation_of(bad)


def test_a_fencing_token_is_a_positive_integer() -> None:
    assert fencing_token_of(None) is None
    assert fencing_token_of(3) == 3
    for bad in (0, -1, True, "3", 3.0, 2**53):
        with pytest.raises(ValidationFailed):
            fencing_token_of(bad)


def _raw(user: str = "u1", token: int = 4) -> bytes:
    return orjson.dumps(
        {"user_id": user, "locked_at": "t0", "operation": "editing", "fencing_token": token}
    )


def test_ok_replies_read_as_the_lock_with_seconds_left_rounded_up() -> None:
    lock = outcome([b"ok", _raw(), 1001], SPEC, DOC_ID)
    assert lock == Lock("u1", "editing", "t0", 4, 1001)
    assert lock.expires_in == 2
    assert lock.body() == {
        "holder": "u1",
        "fencing_token": 4,
        "expires_in": 2,
        "operation": "editing",
        "locked_at": "t0",
    }
    assert outcome([b"ok", _raw(), -1], SPEC, DOC_ID).expires_in is None  # no expiry set


def test_refusals_read_as_their_errors() -> None:
    with pytest.raises(Locked) as held:
        outcome([b"locked", _raw("u2"), 2500], SPEC, DOC_ID)
    assert held.value.details == {
        "holder": "u2",
        "operation": "editing",
        "locked_at": "t0",
        "expires_in": 3,
    }
    assert "u2" in held.value.message and "3 more seconds" in held.value.message
    with pytest.raises(NotLocked) as none:
        outcome([b"no_lock", None, 0], SPEC, DOC_ID)
    assert isinstance(none.value, NotFound) and none.value.code == "not_locked"
    with pytest.raises(NotFound) as missing:
        outcome([b"not_found", None, 0], SPEC, DOC_ID)
    assert not isinstance(missing.value, NotLocked)
    with pytest.raises(NotLockHolder) as other:
        outcome([b"not_holder", _raw("u2"), 900], SPEC, DOC_ID)
    assert other.value.details == {"holder": "u2", "expires_in": 1}
    with pytest.raises(StaleFencingToken) as stale:
        outcome([b"stale_token", _raw(token=9), 900], SPEC, DOC_ID, 8)
    assert stale.value.details == {"fencing_token": 8, "current": 9}
    with pytest.raises(RuntimeError):
        outcome([b"what", None, 0], SPEC, DOC_ID)


def test_a_value_that_is_not_the_locks_json_is_held_by_nobody() -> None:
    assert parse_lock(b"not json", 5).holder == ""
    assert parse_lock(b"[1]", 5) == Lock("", "", "", 0, 5)
