"""Write plans: the keys and ops commit.lua applies, derived from the declarations."""

from __future__ import annotations

from typing import Any

import pytest

from keyspace import codec, keys
from keyspace.deletes import DeleteClosure, plan_delete
from keyspace.errors import HasDependents
from keyspace.plan import (
    Arg,
    Loaded,
    Plan,
    plan_create,
    plan_create_generated,
    plan_update,
)
from keyspace.projection import project
from keyspace.schema import EntitySpec
from keyspace.systems.multiframe.entities import COLLAB, DRIVER, MULTIFRAME, NFT, USER
from tests.lua_ops import commit_arity

CHIP = {"type": "quantum_processor", "cores": 128, "frequency": "4.5GHz", "architecture": "Q"}
EMAIL_CLAIM = "mf:uniq:user:email:holo@misha.com"
NAME_CLAIM = "mf:uniq:user:username:holomisha"
CHECK_OPS = {"absent", "equals", "exists", "unfenced", "free", "unclaimed", "card"}


ARITY = commit_arity()


def user(user_id: str = "user_1", email: str = "Holo@Misha.com") -> dict[str, Any]:
    name = "HoloMisha" if user_id == "user_1" else user_id
    return {
        "user_id": user_id,
        "username": name,
        "email": email,
        "role": "admin",
        "created_at": "t",
    }


def collab(collab_id: str, owner: str, members: list[str]) -> dict[str, Any]:
    return {
        "collab_id": collab_id,
        "user_id": owner,
        "chip_id": "chip_quantum_1",
        "chip_data": CHIP,
        "collaborators": members,
        "status": "active",
        "timestamp": "2025-09-29T10:30:00",
    }


def driver(driver_id: str, owner: str) -> dict[str, Any]:
    return {"driver_id": driver_id, "user_id": owner, "chip_id": "c", "chip_data": CHIP}


def loaded(spec: EntitySpec, doc: dict[str, Any]) -> Loaded:
    doc_id = doc[spec.id_field]
    return Loaded(spec, doc_id, codec.dumps(doc), doc, keys.doc_key(spec.prefix, doc_id))


def decode(plan: Plan) -> tuple[list[tuple[Arg, ...]], list[tuple[Arg, ...]]]:
    """Checks and writes from ``plan.args()`` as commit.lua reads them, key indexes resolved.

    Also asserts the layout holds: the op arities match commit.lua, every key index is
    1-based and declared in KEYS, and checks come first.
    """
    args = plan.args()
    n_checks, returning, counter, _, id_key, window = args[:6]
    assert window == "" or isinstance(window, int)
    assert isinstance(n_checks, int)
    for index in (returning, counter, id_key):
        assert isinstance(index, int)
        assert 0 <= index <= len(plan.keys)
    assert (counter == 0) == (id_key == 0)
    assert len(set(plan.keys)) == len(plan.keys)
    ops: list[tuple[Arg, ...]] = []
    i = 6
    while i < len(args):
        name = args[i]
        assert isinstance(name, str)
        width = ARITY[name]
        index = args[i + 1]
        assert isinstance(index, int)
        assert 1 <= index <= len(plan.keys)
        ops.append((name, plan.keys[index - 1], *args[i + 2 : i + 1 + width]))
        i += 1 + width
    assert i == len(args)
    checks, writes = ops[:n_checks], ops[n_checks:]
    assert all(op[0] in CHECK_OPS for op in checks)
    assert not any(op[0] in CHECK_OPS for op in writes)
    # The change feed's ops come last (tests/unit/test_changes.py asserts them).
    mine = [op for op in writes if op[0] not in FEED_OPS]
    assert writes[: len(mine)] == mine
    return checks, mine


FEED_OPS = {"event", "eventid", "trim"}


def test_plan_args_layout_uses_one_based_key_indexes() -> None:
    plan = Plan(keys.pause_key())
    plan.check("absent", "a:1")
    plan.check("free", "mf:uniq:a", "1", "f")
    plan.write("jset", "a:1", b"{}")
    plan.write("incr", "a_counter")
    plan.returns("a:1")
    assert plan.keys == ["mf:pause", "a:1", "mf:uniq:a", "a_counter"]  # the pause key first
    assert plan.args() == [
        *(2, 2, 0, "", 0, ""),
        *("absent", 2, "free", 3, "1", "f", "jset", 2, b"{}", "incr", 4),
    ]
    assert Plan(keys.pause_key()).args() == [0, 0, 0, "", 0, ""]
    assert Plan(keys.pause_key(), window=1000).args() == [0, 0, 0, "", 0, 1000]


def test_create_user_checks_absence_and_claims_normalized_uniques() -> None:
    doc = user()
    plan = plan_create(MULTIFRAME, USER, "user_1", doc, explicit_id=False)
    checks, writes = decode(plan)
    assert checks == [
        ("absent", "user:user_1"),
        ("free", EMAIL_CLAIM, "user_1", "email"),
        ("free", NAME_CLAIM, "user_1", "username"),
    ]
    assert writes == [
        ("jset", "user:user_1", codec.dumps(doc)),
        ("jset", "mf:proj:user:user_1", codec.dumps(project(USER, doc))),
        ("set", EMAIL_CLAIM, "user_1"),
        ("set", NAME_CLAIM, "user_1"),
    ]
    assert plan.keys[plan.returning - 1] == "user:user_1"


@pytest.mark.parametrize(
    ("doc_id", "explicit", "counter_ops"),
    [
        ("driver_7", True, [("floor", "driver_counter", 7)]),
        ("driver_7", False, []),
        ("driver_07", True, []),
        ("legacy-7", True, []),
        ("user_7", True, []),
    ],
)
def test_create_floors_the_counter_only_for_explicit_seed_style_ids(
    doc_id: str, explicit: bool, counter_ops: list[tuple[Arg, ...]]
) -> None:
    plan = plan_create(MULTIFRAME, DRIVER, doc_id, driver(doc_id, "user_1"), explicit_id=explicit)
    checks, writes = decode(plan)
    assert checks == [
        ("absent", f"driver:{doc_id}"),
        ("exists", "user:user_1", "user_id", "user_1"),
        ("unfenced", "mf:deleting:user:user_1", "user_id", "user_1"),
    ]
    assert [w for w in writes if w[1] == "driver_counter"] == counter_ops
    assert ("sadd", "mf:ref:user:user_1:driver.user_id", doc_id) in writes


def test_create_nft_increments_its_counter() -> None:
    doc = {"nft_id": "nft_user_1_c", "user_id": "user_1", "chip_id": "c"}
    for explicit in (True, False):
        _, writes = decode(plan_create(MULTIFRAME, NFT, "nft_user_1_c", doc, explicit_id=explicit))
        assert writes[-1] == ("incr", "nft_counter")
        assert [w for w in writes if w[0] in ("floor", "incr")] == [("incr", "nft_counter")]


def test_create_collab_checks_and_links_every_reference() -> None:
    doc = collab("collab_1", "user_1", ["user_2", "user_3", "user_2", "user_1"])
    checks, writes = decode(plan_create(MULTIFRAME, COLLAB, "collab_1", doc, explicit_id=False))
    assert checks == [
        ("absent", "collab:collab_1"),
        ("exists", "user:user_1", "user_id", "user_1"),
        ("unfenced", "mf:deleting:user:user_1", "user_id", "user_1"),
        ("exists", "user:user_2", "collaborators", "user_2"),
        ("unfenced", "mf:deleting:user:user_2", "collaborators", "user_2"),
        ("exists", "user:user_3", "collaborators", "user_3"),
        ("unfenced", "mf:deleting:user:user_3", "collaborators", "user_3"),
        ("exists", "user:user_1", "collaborators", "user_1"),
        ("unfenced", "mf:deleting:user:user_1", "collaborators", "user_1"),
    ]
    assert [w for w in writes if w[0] == "sadd"] == [
        ("sadd", "mf:ref:user:user_1:collab.user_id", "collab_1"),
        ("sadd", "mf:ref:user:user_2:collab.collaborators", "collab_1"),
        ("sadd", "mf:ref:user:user_3:collab.collaborators", "collab_1"),
        ("sadd", "mf:ref:user:user_1:collab.collaborators", "collab_1"),
    ]


def test_update_claims_only_changed_uniques_and_releases_old_ones() -> None:
    old = loaded(USER, user())
    new = {**user(), "email": "new@misha.com"}
    plan = plan_update(MULTIFRAME, old, new)
    checks, writes = decode(plan)
    claim = "mf:uniq:user:email:new@misha.com"
    assert checks == [("equals", "user:user_1", old.raw), ("free", claim, "user_1", "email")]
    assert writes == [
        ("jset", "user:user_1", codec.dumps(new)),
        ("jset", "mf:proj:user:user_1", codec.dumps(project(USER, new))),
        ("set", claim, "user_1"),
        ("delif", EMAIL_CLAIM, "user_1"),
    ]
    assert plan.keys[plan.returning - 1] == "user:user_1"


def test_update_changing_only_the_case_of_a_unique_touches_no_claim() -> None:
    old = loaded(USER, user())
    new = {**user(), "email": "HOLO@misha.COM"}
    checks, writes = decode(plan_update(MULTIFRAME, old, new))
    assert checks == [("equals", "user:user_1", old.raw)]
    assert writes == [
        ("jset", "user:user_1", codec.dumps(new)),
        ("jset", "mf:proj:user:user_1", codec.dumps(project(USER, new))),
    ]


def test_role_change_is_mirrored_into_every_token_of_the_user() -> None:
    old = loaded(USER, user())
    new = {**user(), "role": "engineer"}
    checks, writes = decode(plan_update(MULTIFRAME, old, new, ["h1", "h2"]))
    assert checks == [
        ("equals", "user:user_1", old.raw),
        ("card", "mf:tokens:user_1", 2, "mf:tokens:user_1"),
    ]
    assert ("hsetx", "mf:token:h1", "role", "engineer") in writes
    assert ("hsetx", "mf:token:h2", "role", "engineer") in writes


def test_update_adds_and_removes_changed_references() -> None:
    old = loaded(COLLAB, collab("collab_1", "user_1", ["user_2", "user_3"]))
    new = collab("collab_1", "user_1", ["user_3", "user_4"])
    checks, writes = decode(plan_update(MULTIFRAME, old, new))
    assert checks == [
        ("equals", "collab:collab_1", old.raw),
        ("exists", "user:user_4", "collaborators", "user_4"),
        ("unfenced", "mf:deleting:user:user_4", "collaborators", "user_4"),
    ]
    assert writes == [
        ("jset", "collab:collab_1", codec.dumps(new)),
        ("jset", "mf:proj:collab:collab_1", codec.dumps(project(COLLAB, new))),  # its time
        ("sadd", "mf:ref:user:user_4:collab.collaborators", "collab_1"),
        ("srem", "mf:ref:user:user_2:collab.collaborators", "collab_1"),
    ]


def _user_delete_closure() -> tuple[DeleteClosure, dict[str, Loaded]]:
    """user_1 deleted; driver_1 and collab_1 (owned by user_1) cascade; collab_2 pulls."""
    docs = {
        "user_1": loaded(USER, user()),
        "driver_1": loaded(DRIVER, driver("driver_1", "user_1")),
        "collab_1": loaded(COLLAB, collab("collab_1", "user_1", ["user_2", "user_1"])),
        "collab_2": loaded(COLLAB, collab("collab_2", "user_2", ["user_1", "user_3"])),
    }
    ref = COLLAB.references[1]
    assert ref.field == "collaborators"
    closure = DeleteClosure(
        deleted=[docs["user_1"], docs["driver_1"], docs["collab_1"]],
        inbound={
            "mf:ref:user:user_1:driver.user_id": ["driver_1"],
            "mf:ref:user:user_1:collab.user_id": ["collab_1"],
            "mf:ref:user:user_1:collab.collaborators": ["collab_1", "collab_2"],
            "mf:ref:user:user_1:quest.user_id": [],
        },
        pulls=[(docs["collab_1"], ref, "user_1"), (docs["collab_2"], ref, "user_1")],
    )
    return closure, docs


def test_delete_checks_every_deleted_doc_inbound_set_and_edited_referrer() -> None:
    closure, docs = _user_delete_closure()
    plan = plan_delete(MULTIFRAME, closure)
    checks, _ = decode(plan)
    assert checks == [
        ("equals", "user:user_1", docs["user_1"].raw),
        ("equals", "driver:driver_1", docs["driver_1"].raw),
        ("equals", "collab:collab_1", docs["collab_1"].raw),
        ("card", "mf:ref:user:user_1:driver.user_id", 1, "mf:ref:user:user_1:driver.user_id"),
        ("card", "mf:ref:user:user_1:collab.user_id", 1, "mf:ref:user:user_1:collab.user_id"),
        (
            "card",
            "mf:ref:user:user_1:collab.collaborators",
            2,
            "mf:ref:user:user_1:collab.collaborators",
        ),
        ("card", "mf:ref:user:user_1:quest.user_id", 0, "mf:ref:user:user_1:quest.user_id"),
        ("equals", "collab:collab_2", docs["collab_2"].raw),
        ("card", "mf:tokens:user_1", 0, "mf:tokens:user_1"),
    ]
    assert plan.returning == 0


def test_delete_unlinks_everything_and_pulls_from_surviving_referrers() -> None:
    closure, _ = _user_delete_closure()
    _, writes = decode(plan_delete(MULTIFRAME, closure))
    pulled = collab("collab_2", "user_2", ["user_3"])
    assert writes == [
        ("del", "user:user_1"),
        ("del", "mf:proj:user:user_1"),
        ("delif", EMAIL_CLAIM, "user_1"),
        ("delif", NAME_CLAIM, "user_1"),
        ("del", "driver:driver_1"),
        ("del", "mf:proj:driver:driver_1"),
        ("zrem", "mf:rank:driver:cores", "driver_1"),  # a ranked field (keyspace.ranks)
        ("srem", "mf:ref:user:user_1:driver.user_id", "driver_1"),
        ("del", "collab:collab_1"),
        ("del", "mf:proj:collab:collab_1"),
        ("srem", "mf:ref:user:user_1:collab.user_id", "collab_1"),
        ("srem", "mf:ref:user:user_2:collab.collaborators", "collab_1"),
        ("srem", "mf:ref:user:user_1:collab.collaborators", "collab_1"),
        ("del", "mf:ref:user:user_1:driver.user_id"),
        ("del", "mf:ref:user:user_1:collab.user_id"),
        ("del", "mf:ref:user:user_1:collab.collaborators"),
        ("del", "mf:ref:user:user_1:quest.user_id"),
        ("del", "mf:tokens:user_1"),
        ("jset", "collab:collab_2", codec.dumps(pulled)),
        ("jset", "mf:proj:collab:collab_2", codec.dumps(project(COLLAB, pulled))),
        ("srem", "mf:ref:user:user_1:collab.collaborators", "collab_2"),
    ]


def test_delete_pulls_several_ids_from_one_referrer_in_one_edit() -> None:
    survivor = loaded(COLLAB, collab("collab_2", "user_2", ["user_1", "user_3", "user_4"]))
    ref = COLLAB.references[1]
    closure = DeleteClosure(
        deleted=[loaded(USER, user("user_9"))],
        pulls=[(survivor, ref, "user_1"), (survivor, ref, "user_3")],
    )
    checks, writes = decode(plan_delete(MULTIFRAME, closure))
    assert [c for c in checks if c[1] == "collab:collab_2"] == [
        ("equals", "collab:collab_2", survivor.raw)
    ]
    edits = [w for w in writes if w[1] == "collab:collab_2"]
    assert edits == [
        ("jset", "collab:collab_2", codec.dumps({**survivor.doc, "collaborators": ["user_4"]}))
    ]
    srems = {w[1] for w in writes if w[0] == "srem" and w[2] == "collab_2"}
    assert srems == {
        "mf:ref:user:user_1:collab.collaborators",
        "mf:ref:user:user_3:collab.collaborators",
    }


def test_restricted_delete_raises_has_dependents_before_planning() -> None:
    closure = DeleteClosure(
        deleted=[loaded(USER, user())], restricted=[("driver.user_id", 3), ("nft.user_id", 1)]
    )
    with pytest.raises(HasDependents) as info:
        plan_delete(MULTIFRAME, closure)
    assert info.value.details == {"field": "driver.user_id", "count": 3}
    assert info.value.code == "has_dependents"


def test_generated_create_draws_the_id_in_the_script_after_every_check() -> None:
    doc = {**user("pending"), "username": "HoloMisha"}
    plan = plan_create_generated(MULTIFRAME, USER, doc, "pending")
    checks, writes = decode(plan)
    assert sorted(checks) == [
        ("unclaimed", EMAIL_CLAIM, "email"),
        ("unclaimed", NAME_CLAIM, "username"),
    ]
    head, tail = b'{"user_id":"', codec.dumps(doc)[len(b'{"user_id":"pending') :]
    assert writes[0] == ("jsetid", "user:", head, tail)
    shown = codec.dumps(project(USER, doc))
    projection = (b'{"user_id":"', shown[len(b'{"user_id":"pending') :])
    assert writes[1] == ("jsetat", "mf:proj:user:", *projection)
    assert sorted(writes[2:]) == [("setid", EMAIL_CLAIM), ("setid", NAME_CLAIM)]
    args = plan.args()
    assert plan.keys[args[2] - 1] == "user_counter"  # type: ignore[operator]
    assert args[3] == "user_"
    assert plan.keys[args[4] - 1] == "user:"  # type: ignore[operator]
    assert plan.keys[plan.returning - 1] == "user:"


def test_generated_create_records_references_with_the_drawn_id() -> None:
    _, writes = decode(plan_create_generated(MULTIFRAME, DRIVER, driver("x", "user_1"), "x"))
    assert ("saddid", "mf:ref:user:user_1:driver.user_id") in writes


def test_generated_create_needs_the_id_serialized_first() -> None:
    doc = {"username": "a", "user_id": "pending"}
    with pytest.raises(ValueError, match="user_id first"):
        plan_create_generated(MULTIFRAME, USER, doc, "pending")
