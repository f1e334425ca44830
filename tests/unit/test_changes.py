"""The change feed's pure half (keyspace.changes) and the ops the plans add for it."""

from __future__ import annotations

import hashlib
from typing import Any

import fakeredis
import orjson
import pytest

from keyspace import codec, feed, keys
from keyspace.bulk import bulk_args
from keyspace.changes import (
    ChangeCap,
    event_of,
    format_id,
    iso_ms,
    oldest_id,
    parse_id,
    sse,
    trimmed_past,
)
from keyspace.keys import Names
from keyspace.plan import Loaded, Plan, plan_create, plan_create_generated, plan_update
from keyspace.systems.multiframe.entities import MULTIFRAME, USER


def test_revision_is_the_sha1_lua_computes() -> None:
    raw = b'{"user_id":"user_1"}'
    assert codec.revision(raw) == hashlib.sha1(raw).hexdigest()
    assert len(codec.revision(raw)) == 40


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("0-0", (0, 0)), ("1700000000000-7", (1700000000000, 7)), (" 5-1 ", (5, 1))],
)
def test_event_ids_parse_and_format(text: str, parsed: tuple[int, int]) -> None:
    assert parse_id(text) == parsed
    assert format_id(parsed) == text.strip()


def test_a_milliseconds_only_id_is_its_first_sequence_as_redis_reads_it() -> None:
    assert parse_id("0") == (0, 0)
    assert parse_id("1700000000000") == (1700000000000, 0)


@pytest.mark.parametrize(
    "text", ["", "5-", "-5", "a-1", "1-2-3", "1.5-0", f"{2**64}-0", "1-" + "9" * 21]
)
def test_malformed_event_ids_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="event id"):
        parse_id(text)


def test_ids_compare_numerically_not_as_text() -> None:
    assert parse_id("9-0") < parse_id("10-0")
    assert parse_id("10-2") < parse_id("10-10")


def test_at_is_iso_utc_with_milliseconds() -> None:
    assert iso_ms(0) == "1970-01-01T00:00:00.000Z"
    assert iso_ms(1759141800123) == "2025-09-29T10:30:00.123Z"


def test_an_entry_becomes_an_event_from_either_reply_shape() -> None:
    fields = [b"op", b"update", b"collection", b"drivers", b"id", b"driver_1"]
    fields += [b"rev", b"ab" * 20, b"at", b"1759141800005"]
    expected = {
        "id": "1759141800005-0",
        "op": "update",
        "collection": "drivers",
        "doc_id": "driver_1",
        "revision": "ab" * 20,
        "at": "2025-09-29T10:30:00.005Z",
    }
    assert event_of(b"1759141800005-0", fields) == expected
    as_map = dict(zip(fields[::2], fields[1::2], strict=True))
    assert event_of("1759141800005-0", as_map) == expected


def test_a_delete_has_no_revision() -> None:
    fields = {"op": "delete", "collection": "users", "id": "u", "rev": "", "at": "0"}
    assert event_of("1-0", fields)["revision"] is None


def test_an_sse_frame_carries_the_id_type_and_json_data() -> None:
    event = {"id": "5-1", "op": "create", "collection": "users", "doc_id": "u", "revision": "r"}
    frame = sse(event).decode()
    assert frame.endswith("\n\n")
    lines = frame.rstrip("\n").split("\n")
    assert lines[0] == "id: 5-1"
    assert lines[1] == "event: change"
    assert orjson.loads(lines[2].removeprefix("data: ")) == event


def _info(first: str | None, deleted: str, added: int, length: int) -> dict[str, object]:
    return {
        "first-entry": None if first is None else [first.encode(), []],
        "max-deleted-entry-id": deleted.encode(),
        "entries-added": added,
        "length": length,
    }


def test_trimmed_past_uses_the_max_deleted_id_where_the_server_keeps_it() -> None:
    info = _info("100-0", "99-0", 10, 5)
    assert trimmed_past((98, 5), info)
    assert not trimmed_past((99, 0), info)  # the last trimmed one was read: nothing missed
    assert not trimmed_past((150, 0), info)
    assert oldest_id(info) == "100-0"


def test_an_emptied_stream_was_trimmed_up_to_its_last_id() -> None:
    """reset/restore empty the feed (feed.restart): a consumer from before is told so even
    before the first new write, whether or not the server recorded the deleted id."""
    for deleted in ("0-0", "120-0"):
        info = _info(None, deleted, 7, 0) | {"last-generated-id": b"120-0"}
        assert trimmed_past((119, 9), info)
        assert not trimmed_past((120, 0), info)
    assert not trimmed_past((1, 0), _info(None, "0-0", 0, 0))  # a new, empty feed


def test_trimmed_past_falls_back_to_the_first_entry_without_it() -> None:
    assert trimmed_past((99, 0), _info("100-0", "0-0", 10, 5))
    assert not trimmed_past((100, 0), _info("100-0", "0-0", 10, 5))
    assert not trimmed_past((1, 0), _info("100-0", "0-0", 5, 5))  # nothing was ever removed
    assert not trimmed_past((1, 0), {})  # no stream yet
    assert oldest_id({}) is None


def test_the_cap_gives_the_trim_op_milliseconds() -> None:
    assert ChangeCap(10, 60).args() == (10, 60_000)
    assert ChangeCap().args() == (100_000, 86_400_000)


def _feed_ops(plan: Plan) -> list[list[object]]:
    args = plan.args(ChangeCap(50, 2))
    assert plan.events, "the plan appends to the feed"
    tail = [list(op) for op in plan.events]
    width = sum(len(op) for op in tail) + 4
    resolved: list[list[object]] = []
    for op in tail:  # [op, stream index, document key index, ...]
        resolved.append([op[0], plan.keys[int(op[1]) - 1], plan.keys[int(op[2]) - 1], *op[3:]])
    resolved.append(["trim", plan.keys[int(tail[0][1]) - 1], 50, 2000])
    assert args[-width:] == [x for op in tail for x in op] + ["trim", plan.events[0][1], 50, 2000]
    return resolved


def test_a_create_appends_its_event_last_then_trims() -> None:
    doc = {"user_id": "user_1", "username": "a", "email": "a@example.com", "role": "designer"}
    plan = plan_create(MULTIFRAME, USER, "user_1", doc, explicit_id=True)
    assert _feed_ops(plan) == [
        ["event", "mf:changes", "user:user_1", "create", "users", "user_1"],
        ["trim", "mf:changes", 50, 2000],
    ]


def test_a_generated_create_names_the_id_the_script_draws() -> None:
    doc = {"user_id": "pending", "username": "a", "email": "a@example.com", "role": "designer"}
    plan = plan_create_generated(MULTIFRAME, USER, doc, "pending")
    assert _feed_ops(plan)[0] == ["eventid", "mf:changes", "user:", "create", "users"]


def test_an_update_names_its_document_and_a_namespace_its_own_feed() -> None:
    doc = {"user_id": "user_1", "username": "a", "email": "a@example.com", "role": "designer"}
    old = Loaded(USER, "user_1", codec.dumps(doc), doc, keys.doc_key("user", "user_1"))
    plan = plan_update(MULTIFRAME, old, {**doc, "role": "engineer"})
    assert _feed_ops(plan)[0] == ["event", "mf:changes", "user:user_1", "update", "users", "user_1"]
    assert Names("nd:").changes_key() == "nd:mf:changes"


def test_a_plan_without_events_does_not_trim() -> None:
    plan = Plan(keys.pause_key())
    plan.write("set", "a", "1")
    assert "trim" not in plan.args()


def test_a_bulk_call_trims_its_feed_once_after_every_plan() -> None:
    """The plans of a bulk call carry no trim: bulk_commit.lua trims each feed they append
    to once they all ran (review 28: a trim carried by the last plan was lost when that plan
    was refused; tests/behaviour/test_changes.py holds the outcome)."""

    def user(n: int) -> Plan:
        doc = {"user_id": f"user_{n}", "username": f"u{n}", "email": f"{n}@x.io", "role": "admin"}
        return plan_create(MULTIFRAME, USER, f"user_{n}", doc, explicit_id=True)

    quiet = Plan(keys.pause_key())
    quiet.write("set", "a", "1")
    plans = [user(1), user(2), user(3), quiet]
    args = bulk_args(plans, ChangeCap(7, 9))
    n_keys = int(args[0])
    assert "trim" not in args
    assert args[1 : 1 + n_keys] == [*(k for p in plans for k in p.keys), "mf:pause", "mf:changes"]
    assert args[-6:] == [7, 9000, 1, 1, 1, 0]  # the cap, then each plan's feed (0: none)
    alone = quiet.args()
    n = len(quiet.keys)
    assert bulk_args([quiet]) == [n, *quiet.keys, 1, n, len(alone), *alone]


def test_the_cap_reads_the_services_variables() -> None:
    assert ChangeCap.from_env({}) == ChangeCap()
    env = {"MULTIFRAME_CHANGES_MAXLEN": "500", "MULTIFRAME_CHANGES_MAX_AGE": " 31536000 "}
    assert ChangeCap.from_env(env) == ChangeCap(500, 31_536_000)
    for name, raw in (
        ("MULTIFRAME_CHANGES_MAXLEN", "0"),
        ("MULTIFRAME_CHANGES_MAXLEN", "1e3"),
        ("MULTIFRAME_CHANGES_MAX_AGE", "31622401"),
        ("MULTIFRAME_CHANGES_MAX_AGE", "-5"),
    ):
        with pytest.raises(ValueError, match=name):
            ChangeCap.from_env({name: raw})


def test_the_admin_cli_trims_the_feed_as_the_service_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A command's commits trim with the service's cap (review 24: `generate` trimmed a feed
    kept for a year to the default day)."""
    from scripts import cli
    from scripts.exits import USAGE

    monkeypatch.setenv("MULTIFRAME_CHANGES_MAX_AGE", "31536000")
    monkeypatch.setenv("MULTIFRAME_CHANGES_MAXLEN", "100000000")
    args = cli._prepare(["generate", "--users", "1"])
    assert not isinstance(args, int)
    assert args.changes_cap == ChangeCap(100_000_000, 31_536_000)
    monkeypatch.setenv("MULTIFRAME_CHANGES_MAX_AGE", "forever")
    assert cli._prepare(["generate", "--users", "1"]) == USAGE


async def test_a_restart_is_one_transaction() -> None:
    """Review 25 (and 27, which found it undone): sent step by step, a page read between the
    steps, or a restart cut short, left a consumer a silent gap."""
    client = fakeredis.FakeAsyncRedis(protocol=2)
    await client.xadd("mf:changes", {"op": "create"}, id="5-0")
    alone: list[str] = []
    send = client.execute_command

    async def recorded(*args: Any, **options: Any) -> Any:
        alone.append(str(args[0]).upper())
        return await send(*args, **options)  # type: ignore[no-untyped-call]

    client.execute_command = recorded  # type: ignore[method-assign]
    await feed.restart(client, "mf:changes")
    assert not {"XADD", "XTRIM", "XSETID"} & set(alone), alone
    assert await client.xlen("mf:changes") == 0
    await client.aclose()
