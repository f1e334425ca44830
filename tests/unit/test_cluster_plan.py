"""The cluster plan is measured (docs/scaling.md, issue 17): which scripts cross Redis
Cluster hash slots today, from the KEYS of every script call the keyspace sends while each
system's plans are driven (tests/cluster_plans.py, tests/cluster_drive.py), and the keys
each script touches without being given them."""

from __future__ import annotations

import fakeredis
import pytest
from redis.crc import key_slot

from keyspace import systems
from keyspace.scripts import Scripts
from tests import cluster_plans


@pytest.fixture(scope="module")
def measured() -> cluster_plans.Recorder:
    return cluster_plans.measure()


@pytest.fixture(scope="module")
def sources() -> dict[str, str]:
    """Each registered script's source (authorized_commit.lua with the two it calls)."""
    scripts = Scripts(fakeredis.FakeAsyncRedis())
    names = cluster_plans.script_names(scripts)
    return {names[id(v)]: v.script for v in vars(scripts).values() if id(v) in names}


def test_docs_scaling_holds_the_measured_table(measured: cluster_plans.Recorder) -> None:
    table = cluster_plans.report(measured.seen)
    documented = cluster_plans.in_doc(cluster_plans.DOC.read_text())
    assert documented == table, "regenerate: python -m tests.cluster_plans --write"


def test_every_lua_script_is_registered_and_exercised(
    measured: cluster_plans.Recorder, sources: dict[str, str]
) -> None:
    files = cluster_plans.lua_files()
    assert sorted(sources) == files
    exercised = {script for _, script in measured.seen}
    assert sorted(exercised) == files, f"never run by the plan: {set(files) - exercised}"


def test_every_system_runs_the_plans_that_matter(measured: cluster_plans.Recorder) -> None:
    seen = measured.seen
    for name in systems.names():
        ran = {(op.split(": ", 1)[1], script) for op, script in seen if op.startswith(name + ":")}
        for wanted in [
            ("create (API: authorized_commit.lua)", "authorized_commit.lua"),
            ("update (every unique value and reference changed)", "commit.lua"),
            ("delete (cascades, set-null included)", "commit.lua"),
            ("bulk load (pipelined commits)", "bulk_commit.lua"),
            ("token mint (API key, session)", "commit.lua"),
            ("authorize (operator's token, read)", "authorize.lua"),
        ]:
            assert wanted in ran, (name, wanted)
        assert any(op.startswith("authorize (read, GET by id") for op, _ in ran), name
    # The update of a user's email and username releases and takes claims (issue 17's
    # review: 7 keys in 7 slots), far beyond a patch that changes nothing.
    real = seen[("multiframe: update (every unique value and reference changed)", "commit.lua")]
    noop = seen[("multiframe: update (nothing changed)", "commit.lua")]
    assert real.most_slots >= 7 > noop.most_slots
    # Every request's authorization spans its token, rate, maintenance and pause keys.
    assert (
        seen[("multiframe: authorize (read, GET by id (prefetch))", "authorize.lua")].most_slots
        == 5
    )
    # Nothing that writes is slot-local today: the pause key alone is in a slot of its own.
    # rank_walk.lua, a read of one ranking, is.
    writes = {k: t for k, t in seen.items() if k[1] != "rank_walk.lua"}
    assert all(t.single_slot == 0 and t.most_slots >= 2 for t in writes.values())
    ranked = [t for k, t in seen.items() if k[1] == "rank_walk.lua"]
    assert ranked and all(t.single_slot == t.calls and t.most_slots == 1 for t in ranked)


def test_keys_built_inside_are_measured_where_the_sources_build_them(
    measured: cluster_plans.Recorder, sources: dict[str, str]
) -> None:
    building = {name for name, text in sources.items() if cluster_plans.built_in_source(text)}
    assert building == {
        "commit.lua",
        "authorized_commit.lua",
        "bulk_commit.lua",
        "batch_commit.lua",
        "cache.lua",
    }
    measured_building = {
        s for s, t in cluster_plans.by_script(measured.seen).items() if t.built_inside
    }
    # bulk_commit.lua runs commit.lua, which can draw an id; bulk loads commit explicit ids.
    assert measured_building == building - {"bulk_commit.lua"}
    # Every cache lookup names its entry from the versions it read.
    cached = [t for (op, s), t in measured.seen.items() if s == "cache.lua"]
    assert cached and all(t.built_inside == t.calls for t in cached)
    # A generated id completes its document's key inside the script; an explicit one not.
    generated = measured.seen[("multiframe: create, generated id (API)", "authorized_commit.lua")]
    explicit = measured.seen[
        ("multiframe: create (API: authorized_commit.lua)", "authorized_commit.lua")
    ]
    assert (generated.built_inside, explicit.built_inside) == (1, 0)


def test_every_command_the_scripts_call_is_understood(
    measured: cluster_plans.Recorder, sources: dict[str, str]
) -> None:
    known = cluster_plans.KEYLESS | cluster_plans.FIRST_KEY
    for name, text in sources.items():
        assert cluster_plans.commands_in(text) <= known, name
    assert not measured.unknown_commands


def test_the_source_scan_finds_a_key_built_by_concatenation() -> None:
    built = cluster_plans.built_in_source(
        "local a = redis.call('GET', KEYS[1])\n"
        "redis.call('SET', KEYS[2] .. ARGV[1], 'x')  -- built\n"
        "redis.call('DEL', evicted[i])\n"
        "-- KEYS[3] .. 'x' in a comment\n"
    )
    assert built == ["redis.call('SET', KEYS[2] .. ARGV[1], 'x')", "redis.call('DEL', evicted[i])"]


def test_hash_tags_are_what_would_make_a_plan_slot_local() -> None:
    """The design's premise, as CLUSTER KEYSLOT computes it: keys sharing a {tag} share a
    slot, whatever else they hold."""
    tagged = [b"driver:{driver_1}", b"mf:proj:driver:{driver_1}", b"mf:lock:driver:{driver_1}"]
    assert len({key_slot(k) for k in tagged}) == 1
    assert key_slot(b"driver:driver_1") != key_slot(b"mf:proj:driver:driver_1")
