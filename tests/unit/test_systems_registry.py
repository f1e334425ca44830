"""The registry of systems: names, namespaces that would overlap another system's keys, and
declarations whose key prefixes would overlap each other."""

from __future__ import annotations

import pytest

from keyspace import Schema, systems
from keyspace.declare import string, table
from keyspace.schema import IdStrategy


def test_every_package_is_a_system_found_by_name() -> None:
    assert {"multiframe", "normaldance", "engineering_forge"} <= set(systems.names())
    with pytest.raises(ValueError, match="unknown system"):
        systems.load("nosuch")


@pytest.mark.parametrize(
    "namespace",
    ["user:", "driver:", "mf:", "normaldance:", "normaldance:sub:", "engineering_forge:x:"],
)
def test_a_namespace_overlapping_another_systems_keys_is_refused(namespace: str) -> None:
    other = "engineering_forge" if not namespace.startswith("engineering") else "normaldance"
    with pytest.raises(ValueError, match="overlaps"):
        systems.load(other, namespace)


@pytest.mark.parametrize("namespace", ["nd", ":", "a b:", "nd::", "n*d:"])
def test_a_malformed_namespace_is_refused(namespace: str) -> None:
    with pytest.raises(ValueError, match="namespace"):
        systems.load("normaldance", namespace)


def test_a_fresh_namespace_moves_every_key() -> None:
    served = systems.load("normaldance", "music:")
    assert served.schema.users.key("c1") == "music:user:c1"
    assert served.schema.names.pause_key() == "music:mf:pause"


def test_no_key_prefix_may_extend_another() -> None:
    one = table("user", collection="users", id=IdStrategy.UUID, fields=(string("a"),))
    two = table(
        "user_session",
        prefix="user:session",
        collection="sessions",
        id=IdStrategy.UUID,
        fields=(string("a"),),
    )
    with pytest.raises(AssertionError, match="would cover"):
        Schema(entities=(one, two))


def test_without_a_namespace_every_seed_key_pattern_is_the_systems() -> None:
    """The ACL, backup and reset patterns of NeuraForge on the seed's exact keys cover its
    Redis layer (locks, logs, caches, per-endpoint limits), which MultiFrame's do not."""
    from keyspace.inventory import patterns

    bare = patterns(systems.load("neuraforge", "").schema)
    for pattern in ("doc:lock:*", "doc:ops:*", "api:cache:*", "rate_limit:*", "user:session:*"):
        assert pattern in bare, pattern
    assert not {"api:cache:*", "rate_limit:*"} & set(patterns(systems.load("multiframe").schema))
