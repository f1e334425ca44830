"""keyspace.batch.overlaps: the in-batch conflicts refused before anything is sent (pure)."""

from __future__ import annotations

from keyspace import USER
from keyspace.batch import BatchRefused, Refusal, overlaps
from keyspace.errors import UniqueConflict
from keyspace.plan import Plan


def plan(doc: str | None, claims: dict[str, str], refers: dict[str, str]) -> Plan:
    made = Plan("mf:pause")
    if doc is not None:
        made.check("absent", doc)
    for claim, field in claims.items():
        made.check("free" if doc else "unclaimed", claim, *([doc] if doc else []), field)
    for target, field in refers.items():
        made.check("exists", target, field, target.split(":")[1])
    return made


def test_disjoint_plans_have_no_overlap() -> None:
    plans = [
        plan("user:user_1", {"u:email:a": "email"}, {}),
        plan(None, {"u:email:b": "email"}, {}),
    ]
    assert overlaps(USER, plans) == []


def test_same_document_and_same_claim_name_both_items() -> None:
    plans = [
        plan("user:user_1", {"u:email:a": "email"}, {}),
        plan(None, {"u:email:a": "email"}, {}),
        plan("user:user_1", {"u:email:c": "email"}, {}),
    ]
    found = [(r.index, r.error.code, r.with_index) for r in overlaps(USER, plans)]
    assert found == [(0, "unique_conflict", 1), (1, "unique_conflict", 0), (2, "already_exists", 0)]


def test_reference_to_a_document_of_the_batch_is_refused() -> None:
    plans = [plan("node:n_1", {}, {}), plan("node:n_2", {}, {"node:n_1": "parent_id"})]
    (refused,) = overlaps(USER, plans)
    assert (refused.index, refused.error.code, refused.with_index) == (1, "missing_reference", 0)
    assert refused.entry()["field"] == "parent_id"
    assert refused.entry()["details"] == {"field": "parent_id", "value": "n_1"}


def test_refused_batch_names_every_item_and_takes_the_first_code() -> None:
    refusals = [Refusal(n, UniqueConflict("taken", field="email")) for n in range(12)]
    error = BatchRefused(USER, refusals)
    assert error.code == "unique_conflict"
    assert [e["index"] for e in error.details] == list(range(12))
    assert "and 2 more" in error.message
