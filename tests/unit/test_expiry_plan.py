"""Expiring documents (``table(ttl=...)``), pure: declarations, serve-time TTLs, and the write
plans that give a document, its claims and its projection one expiry in the same script."""

from __future__ import annotations

from typing import Any

import pytest

from app.config import Settings
from keyspace import codec
from keyspace.claims import parse as parse_claim
from keyspace.declare import enum, ref, string, table
from keyspace.deletes import DeleteClosure, plan_delete
from keyspace.features import Expiry
from keyspace.plan import (
    Arg,
    Loaded,
    Plan,
    plan_create,
    plan_create_generated,
    plan_update,
)
from keyspace.schema import EntitySpec, IdStrategy, OnDelete, Schema
from keyspace.system import System, parse_ttls
from keyspace.systems.multiframe.entities import MULTIFRAME, USER
from scripts.report import parse_ref_set
from tests.lua_ops import commit_arity

ACCOUNT = table(
    "account",
    collection="accounts",
    id=IdStrategy.CUID,
    fields=(string("name", unique=True, case_insensitive=True),),
    owner="id",
)
TEAM = table("team", prefix="org:team", collection="teams", id=IdStrategy.CUID, fields=())
SESSION = table(
    "session",
    prefix="user:session",
    collection="sessions",
    id=IdStrategy.UUID,
    fields=(
        ref("account_id", ACCOUNT, index=True),
        ref("team_id", TEAM, null=True, on_delete=OnDelete.SET_NULL, index=True),
        string("token", unique=True),
        string("device", null=True, index=True),
    ),
    unique_together=[("account_id", "device")],
    ttl=60,
)
PRESENCE = table(
    "presence",
    collection="presences",
    fields=(
        ref("account_id", ACCOUNT, on_delete=OnDelete.CASCADE, index=True),
        string("nick", unique=True, case_insensitive=True, index=True),  # so: projected
        enum("status", ("online", "away"), default="online", index=True),
    ),
    ttl=300,
    refresh_on_write=False,
)
SYSTEM = System(
    name="expiring",
    title="expiring",
    schema=Schema((ACCOUNT, TEAM, SESSION, PRESENCE)),
    namespace="exp:",
    principal="account",
)
SERVED = SYSTEM.served()
SCHEMA = SERVED.schema
S, P = SCHEMA.entity("session"), SCHEMA.entity("presence")
NAMES = SCHEMA.names
TTL_OPS = {"pexpire", "keepttl", "ttlof", "ttlat"}
A1 = "c" + "1" * 24
UUID1 = "00000000-0000-4000-8000-000000000001"


ARITY = commit_arity()
SECOND_KEY = {"ttlof", "ttlat", "gone"}  # ops whose second argument is a KEYS index too


def ops(plan: Plan) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Checks and writes as commit.lua reads them, every KEYS index resolved to its key."""
    args = plan.args()
    n_checks = args[0]
    assert isinstance(n_checks, int)
    out: list[tuple[Any, ...]] = []
    i = 6
    while i < len(args):
        name = args[i]
        assert isinstance(name, str)
        width = ARITY[name]
        params: list[Arg] = list(args[i + 1 : i + 1 + width])
        assert isinstance(params[0], int)
        params[0] = plan.keys[params[0] - 1]
        if name in SECOND_KEY:
            assert isinstance(params[1], int)
            params[1] = plan.keys[params[1] - 1]
        out.append((name, *params))
        i += 1 + width
    # The change feed's ops come last and write only the feed (tests/unit/test_changes.py).
    writes = [op for op in out[n_checks:] if op[0] not in ("event", "eventid", "trim")]
    return out[:n_checks], writes


def session(**extra: Any) -> dict[str, Any]:
    doc = {"id": UUID1, "account_id": A1, "team_id": None, "token": "t1", "device": "phone"}
    return doc | extra


def loaded(spec: EntitySpec, doc: dict[str, Any]) -> Loaded:
    return Loaded(spec, doc["id"], codec.dumps(doc), doc, spec.key(doc["id"]))


# --- declarations ---------------------------------------------------------------------------


def test_table_declares_the_ttl_and_whether_a_write_refreshes_it() -> None:
    assert S.expiry == Expiry(60, refresh_on_write=True)
    assert P.expiry == Expiry(300, refresh_on_write=False)
    assert P.expiry.ms == 300_000
    assert SCHEMA.entity("account").expiry is None


@pytest.mark.parametrize("seconds", [0, -1, True, 1.5])
def test_a_ttl_is_a_positive_whole_number_of_seconds(seconds: Any) -> None:
    with pytest.raises(AssertionError, match="TTL"):
        Expiry(seconds)


def test_refresh_on_write_needs_a_ttl() -> None:
    with pytest.raises(AssertionError, match="refresh_on_write without a ttl"):
        table("x", collection="xs", fields=(), refresh_on_write=False)


def test_nothing_may_refer_to_an_expiring_entity() -> None:
    # Nothing runs when a document expires: its referrers would dangle.
    child = table("child", collection="children", fields=(ref("session_id", SESSION),))
    with pytest.raises(AssertionError, match="session expires"):
        Schema((ACCOUNT, TEAM, SESSION, child))


def test_the_entity_owning_the_tokens_cannot_expire() -> None:
    members = table("member", collection="members", id=IdStrategy.CUID, fields=(), ttl=5)
    with pytest.raises(AssertionError, match="cannot expire"):
        System("m", "m", Schema((members,)), "m:", principal="member").served()


def test_served_changes_the_seconds_and_keeps_the_rest() -> None:
    served = SYSTEM.served(ttls={"session": 2, "presence": 1}).schema
    assert served.entity("session").expiry == Expiry(2, refresh_on_write=True)
    assert served.entity("presence").expiry == Expiry(1, refresh_on_write=False)
    assert SYSTEM.served().schema.entity("session").expiry == Expiry(60)


@pytest.mark.parametrize(
    ("ttls", "message"),
    [
        ({"account": 5}, "no expiring entity 'account'; its expiring entities are: presence, se"),
        ({"sessions": 5}, "no expiring entity 'sessions'"),
        ({"session": 0}, "whole number of seconds from 1 to 315360000"),
        # Past Redis's millisecond range: it would pass start-up, then fail every write
        # setting it (review-15b finding 2).
        ({"session": 10**16}, "whole number of seconds from 1 to 315360000"),
        ({"session": 315_360_001}, "whole number of seconds from 1 to 315360000"),
    ],
)
def test_served_refuses_a_ttl_of_no_expiring_entity(ttls: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SYSTEM.served(ttls=ttls)


def test_multiframe_declares_no_expiring_entity() -> None:
    assert all(e.expiry is None for e in MULTIFRAME.entities)
    with pytest.raises(ValueError, match="expiring entities are: none"):
        System("multiframe", "MF", MULTIFRAME, "", principal="user").served(ttls={"user": 1})


def test_parse_ttls_reads_entity_equals_seconds() -> None:
    assert parse_ttls("") == {}
    assert parse_ttls(" session=86400 , presence=300,") == {"session": 86400, "presence": 300}
    for bad in ("session", "session=", "=5", "session=1h", "session=-1", "a=1,a=2"):
        with pytest.raises(ValueError, match=r"entity=seconds|given twice"):
            parse_ttls(bad)


def test_settings_read_multiframe_ttl_seconds() -> None:
    env = {"MULTIFRAME_TTL_SECONDS": "session=60,presence=5"}
    assert Settings.from_env(env).ttls == {"session": 60, "presence": 5}
    assert Settings.from_env({}).ttls == {}
    with pytest.raises(SystemExit, match="MULTIFRAME_TTL_SECONDS: 'session=x'"):
        Settings.from_env({"MULTIFRAME_TTL_SECONDS": "session=x"})


# --- plans ----------------------------------------------------------------------------------


def test_a_create_sets_the_ttl_and_copies_it_to_claims_and_projection_after_their_writes() -> None:
    doc = session()
    _, writes = ops(plan_create(SCHEMA, S, UUID1, doc, explicit_id=False))
    key = NAMES.doc_key("user:session", UUID1)
    assert key == "exp:user:session:" + UUID1
    claims = [w[1] for w in writes if w[0] == "set"]
    assert len(claims) == 2  # the token, and the (account_id, device) pair
    shown = NAMES.projection_key("user:session", UUID1)
    ttl = [w for w in writes if w[0] in TTL_OPS]
    assert ttl == [
        ("pexpire", key, 60_000),
        ("ttlof", shown, key),
        *(("ttlof", claim, key) for claim in claims),
    ]
    # After every write of those keys: SET clears a TTL.
    assert writes[-len(ttl) :] == ttl


def test_a_generated_create_expires_the_drawn_keys() -> None:
    doc = {"id": "pending", "account_id": A1, "nick": "Neo", "status": "online"}
    plan = plan_create_generated(SCHEMA, P, doc, "pending")
    _, writes = ops(plan)
    prefix = NAMES.doc_key("presence", "")
    assert plan.keys[plan.id_key - 1] == prefix  # completed by the drawn id in the script
    claim = next(w[1] for w in writes if w[0] == "setid")
    assert [w for w in writes if w[0] in TTL_OPS] == [
        ("pexpire", prefix, 300_000),
        ("ttlat", NAMES.projection_key("presence", ""), prefix),
        ("ttlof", claim, prefix),
    ]


def test_an_update_refreshes_the_ttl_when_declared() -> None:
    old = loaded(S, session())
    _, writes = ops(plan_update(SCHEMA, old, session(token="t2")))
    key = old.key
    new_claim = next(w[1] for w in writes if w[0] == "set")
    kept = next(
        w[1] for w in writes if w[0] == "ttlof" and w[1] != new_claim and "proj" not in w[1]
    )
    assert ("pexpire", key, 60_000) in writes
    assert ("ttlof", new_claim, key) in writes
    assert ("ttlof", kept, key) in writes  # a kept claim is refreshed with its document
    assert ("delif", NAMES.unique_key("user:session", "token", "t1"), UUID1) in writes
    assert writes.index(("set", new_claim, UUID1)) < writes.index(("ttlof", new_claim, key))


def test_an_update_keeps_the_time_left_unless_refreshing() -> None:
    doc = {"id": "presence_1", "account_id": A1, "nick": "Neo", "status": "online"}
    old = loaded(P, doc)
    _, writes = ops(plan_update(SCHEMA, old, doc | {"nick": "Trinity"}))
    claim = NAMES.unique_key("presence", "nick", "trinity")
    assert [w for w in writes if w[0] in TTL_OPS] == [
        ("keepttl", old.key, 300_000),  # JSON.SET keeps it; set in full only when it has none
        ("ttlof", NAMES.projection_key("presence", "presence_1"), old.key),
        ("ttlof", claim, old.key),  # a new claim gets the time the document has left
    ]


def test_entities_without_a_ttl_plan_no_expiry() -> None:
    doc = {"user_id": "user_1", "username": "Holo", "email": "h@m.com", "role": "admin"}
    _, writes = ops(
        plan_create(MULTIFRAME, USER, "user_1", doc | {"created_at": "t"}, explicit_id=True)
    )
    assert not [w for w in writes if w[0] in TTL_OPS]


def test_a_delete_checks_that_expired_referrers_stay_gone_and_members() -> None:
    account = {"id": A1, "name": "neo"}
    root = loaded(SCHEMA.entity("account"), account)
    ref_set = NAMES.ref_key(root.key, "user:session", "account_id")
    gone = NAMES.doc_key("user:session", UUID1)
    closure = DeleteClosure(
        deleted=[root], inbound={ref_set: [UUID1]}, gone=[(ref_set, UUID1, gone)]
    )
    checks, writes = ops(plan_delete(SCHEMA, closure))
    assert ("card", ref_set, 1, ref_set) in checks
    assert ("gone", gone, ref_set, UUID1) in checks
    assert ("del", ref_set) in writes


def test_a_pulled_expiring_referrer_keeps_the_time_it_has_left() -> None:
    team = loaded(SCHEMA.entity("team"), {"id": A1})
    referrer = loaded(S, session(team_id=A1))
    ref_set = NAMES.ref_key(team.key, "user:session", "team_id")
    team_ref = next(r for r in S.references if r.field == "team_id")
    closure = DeleteClosure(
        deleted=[team], inbound={ref_set: [UUID1]}, pulls=[(referrer, team_ref, A1)]
    )
    _, writes = ops(plan_delete(SCHEMA, closure))
    assert ("keepttl", referrer.key, 60_000) in writes
    assert not any(w[0] == "pexpire" for w in writes)


# --- key parsing with ':' in prefixes -------------------------------------------------------


def test_claims_and_reference_sets_parse_with_prefixes_holding_colons() -> None:
    token = NAMES.unique_key("user:session", "token", "t1")
    parsed = parse_claim(SCHEMA, token)
    assert parsed is not None and (parsed.spec.name, parsed.field) == ("session", "token")
    pair = NAMES.source_claim_key("user:session", {"account_id": A1, "device": "phone"})
    parsed = parse_claim(SCHEMA, pair)
    assert parsed is not None and parsed.field == "account_id+device"
    team_set = NAMES.ref_key(NAMES.doc_key("org:team", A1), "user:session", "team_id")
    assert team_set == f"exp:mf:ref:org:team:{A1}:user:session.team_id"
    found = parse_ref_set(SCHEMA, team_set)
    assert found is not None
    spec, reference, target_id = found
    assert (spec.name, reference.field, target_id) == ("session", "team_id", A1)
    assert parse_ref_set(SCHEMA, "exp:mf:ref:org:team:a:b:user:session.team_id") is None
    assert parse_ref_set(SCHEMA, f"exp:mf:ref:org:team:{A1}:user:session.token") is None


def test_lock_and_operation_log_ttls_are_configurable_at_serve_time() -> None:
    """`<entity>.lock` and `<entity>.oplog` in MULTIFRAME_TTL_SECONDS (review-15 finding 3:
    the seed's 30 s and 1 h were declared but could not be changed)."""
    from keyspace import parse_ttls, systems

    served = systems.load("neuraforge", ttls=parse_ttls("documents.lock=5,documents.oplog=60"))
    documents = served.schema.entity("documents")
    assert documents.lock is not None and documents.lock.ttl_seconds == 5
    assert documents.oplog is not None and documents.oplog.ttl_seconds == 60
    default = systems.load("neuraforge").schema.entity("documents")
    assert default.lock is not None and default.lock.ttl_seconds == 30
    with pytest.raises(ValueError, match=r"no expiring entity 'projects\.lock'"):
        systems.load("neuraforge", ttls={"projects.lock": 5})
