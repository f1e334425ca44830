"""The cluster plan is measured (docs/scaling.md, issue 17): which write plans cross Redis
Cluster hash slots today, from the KEYS of every commit the keyspace sends while each
system's demo world is created, patched and deleted (tests/cluster_plans.py)."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from tests import cluster_plans


@pytest.fixture(scope="module")
def seen() -> dict[str, cluster_plans.Tally]:
    return cluster_plans.measure()


def test_docs_scaling_holds_the_measured_table(seen: dict[str, cluster_plans.Tally]) -> None:
    table = cluster_plans.report(seen)
    documented = cluster_plans.in_doc(cluster_plans.DOC.read_text())
    assert documented == table, "regenerate: python -m tests.cluster_plans --write"


def test_every_system_and_operation_was_measured(seen: dict[str, cluster_plans.Tally]) -> None:
    from keyspace import systems

    for name in systems.names():
        for operation in ("create", "update", "delete (cascades included)"):
            assert seen[f"{name}: {operation}"].calls > 0, (name, operation)
    # The generated-id create completes its document key inside the script: not in KEYS.
    assert seen["multiframe: create, generated id"].completes_keys == 1
    # Today's commits all name the system's pause key beside the document's keys.
    assert all(t.most_slots >= 2 for t in seen.values())


def test_hash_tags_are_what_would_make_a_plan_slot_local() -> None:
    """The design's premise, as CLUSTER KEYSLOT computes it: keys sharing a {tag} share a
    slot, whatever else they hold."""
    tagged = [b"driver:{driver_1}", b"mf:proj:driver:{driver_1}", b"mf:lock:driver:{driver_1}"]
    assert len({key_slot(k) for k in tagged}) == 1
    assert key_slot(b"driver:driver_1") != key_slot(b"mf:proj:driver:driver_1")
