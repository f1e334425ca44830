"""Idempotency-Key's pure half (keyspace.idempotency): keys, fingerprints, records, and the
ops a claim adds to a plan."""

from __future__ import annotations

from typing import Any

import pytest

from app.config import BadSetting, Settings
from keyspace import idempotency as idem
from keyspace import keys
from keyspace.documents import for_create
from keyspace.keys import Names
from keyspace.plan import Plan, plan_create
from keyspace.systems.multiframe.entities import MULTIFRAME, USER


def _claim(status: int | None = 201) -> idem.Claim:
    return idem.Claim("mf:idem:user_1:ab", "f" * 64, "t0k3n", status, 5000)


def test_a_key_is_1_to_255_printable_ascii_characters() -> None:
    assert idem.valid_key("a") and idem.valid_key("order 7f3a-~!") and idem.valid_key("x" * 255)
    for bad in ("", "x" * 256, "caf\u00e9", "tab\there", "new\nline", "\x7f"):
        assert not idem.valid_key(bad), bad


def test_a_fingerprint_names_method_path_and_body_unambiguously() -> None:
    base = idem.fingerprint("POST", "/api/drivers", b'{"a":1}')
    assert base == idem.fingerprint("post", "/api/drivers", b'{"a":1}')
    assert len(base) == 64
    others = {
        idem.fingerprint("PUT", "/api/drivers", b'{"a":1}'),
        idem.fingerprint("POST", "/api/drivers?x=1", b'{"a":1}'),
        idem.fingerprint("POST", "/api/drivers", b'{"a":2}'),
        idem.fingerprint("POST", "/api/driver", b's{"a":1}'),  # the same bytes, cut elsewhere
    }
    assert base not in others and len(others) == 4


def test_the_key_name_holds_the_caller_and_a_digest_of_the_client_key() -> None:
    digest = idem.key_digest("order:7f3a\n")
    assert len(digest) == 64 and digest == idem.key_digest("order:7f3a\n")
    assert keys.idempotency_key("user_1", digest) == f"mf:idem:user_1:{digest}"
    names = Names(namespace="shop:")
    assert names.idempotency_key("user_1", digest) == f"shop:mf:idem:user_1:{digest}"


def test_records_read_back_as_written() -> None:
    pending = idem.parse(idem.pending_record("f" * 64, "tok"))
    assert pending == idem.Record("pending", "f" * 64)
    body = b'{"note":"two\\nlines"}\nand a raw newline'
    done = idem.parse(idem.done_head("f" * 64, 201, "doc") + body)
    assert done == idem.Record("done", "f" * 64, 201, "doc", body)
    assert idem.parse(idem.done_head("e" * 64, 204, "none")) == idem.Record(
        "done", "e" * 64, 204, "none", b""
    )
    for junk in (b"", b"pending\nfp", b"done\nfp\nabc\ndoc\n", b"done\nfp\n200\nodd\n", b"x"):
        assert idem.parse(junk) is None, junk


def _user_plan() -> Plan:
    data: dict[str, Any] = {"username": "Ada", "email": "ada@x.io", "role": "designer"}
    doc = for_create(USER, data, "user_1")
    return plan_create(MULTIFRAME, USER, "user_1", doc, explicit_id=True)


def test_remember_adds_the_claim_check_and_the_outcome_last_to_a_copy() -> None:
    plan = _user_plan()
    before = plan.args()
    claim = _claim()
    out = idem.remember(plan, claim)
    assert plan.args() == before  # the plan itself is untouched
    at = out.key(claim.key)
    assert out.checks[-1] == ["claimed", at, claim.held()]
    assert out.writes[-1] == ["outcome", at, idem.done_head(claim.fingerprint, 201, "doc"), 5000]
    assert out.keys[: len(plan.keys)] == plan.keys and out.returning == plan.returning


def test_an_upsert_answers_201_when_its_plan_creates_and_200_when_it_replaces() -> None:
    upsert = _claim(status=None)
    creating = _user_plan()
    assert idem.status_of(creating, upsert) == 201
    replacing = Plan("mf:pause")
    replacing.check("equals", "user:user_1", b"{}")
    replacing.write("jset", "user:user_1", b"{}")
    replacing.returns("user:user_1")
    assert idem.status_of(replacing, upsert) == 200
    deleting = Plan("mf:pause")
    deleting.write("del", "user:user_1")
    assert idem.remember(deleting, _claim(204)).writes[-1][2] == idem.done_head(
        "f" * 64, 204, "none"
    )


def test_a_request_without_a_claim_commits_its_plan_as_built() -> None:
    plan = _user_plan()
    assert idem.attach(plan) is plan
    claim = _claim()
    token = idem.current.set(claim)
    try:
        assert idem.attach(plan).writes[-1][0] == "outcome"
        idem.carried(True, None, "")
        assert claim.committed
        assert idem.attach(plan) is plan  # a later commit of the request carries nothing
    finally:
        idem.current.reset(token)


def test_the_windows_are_settings_with_bounds() -> None:
    defaults = Settings.from_env({})
    assert (defaults.idempotency_ttl_seconds, defaults.idempotency_in_flight_seconds) == (
        86_400,
        60,
    )
    env = {
        "MULTIFRAME_IDEMPOTENCY_TTL_SECONDS": "5",
        "MULTIFRAME_IDEMPOTENCY_IN_FLIGHT_SECONDS": "2",
    }
    chosen = Settings.from_env(env)
    assert (chosen.idempotency_ttl_seconds, chosen.idempotency_in_flight_seconds) == (5, 2)
    for name in ("MULTIFRAME_IDEMPOTENCY_TTL_SECONDS", "MULTIFRAME_IDEMPOTENCY_IN_FLIGHT_SECONDS"):
        with pytest.raises(BadSetting, match=name):
            Settings.from_env({name: "0"})
