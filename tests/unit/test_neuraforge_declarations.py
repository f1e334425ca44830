"""The NeuraForge declarations say what seed 001 says (and, for the tables its ER diagram only
names, what docs/systems.md records), and the demo file is a valid, consistent world.

The expectations are written out here from the seed (CI clones have no ../shared), as
tests/unit/test_system_declarations.py does for NORMALDANCE and Engineering Forge: every
field with its nullability, every unique, reference and ON DELETE rule, the CHECK lists and
the decimal's precision. Nullability and defaults are checked by building documents. The
last test loads the demo world into a fakeredis keyspace and deletes through it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import fakeredis
import orjson
import pytest

from keyspace import Keyspace
from keyspace.documents import for_create
from keyspace.errors import HasDependents, NotFound, UniqueConflict, ValidationFailed
from keyspace.schema import EntitySpec, IdStrategy, OnDelete
from keyspace.systems import load, names
from keyspace.systems.neuraforge import SYSTEM as NF
from keyspace.text import fold

# The relational tables (the seed's vector collections and Redis layer have their own tests).
VECTOR_COLLECTIONS = ("research_papers", "user_profiles")
REDIS_LAYER = ("session", "presence")  # tests/api/test_presence_api.py
TABLES = tuple(e for e in NF.schema.entities if e.name not in VECTOR_COLLECTIONS + REDIS_LAYER)

DEMO = Path(__file__).resolve().parents[2] / "demo_data" / "neuraforge" / "demo.json"
NOW_FORM = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?$")
R, N, D = "required", "nullable", "default"  # absent: refused / stored null / filled

# The seed's SQL tables in column order; for the ER-only tables (institutions,
# project_members) the diagram's order; for the tables it only names, docs/systems.md's.
FIELDS: dict[str, dict[str, str]] = {
    "institutions": {"name": R, "type": N, "country_code": N, "metadata": D, "created_at": D},
    "users": {
        "email": R, "name": R, "avatar_url": N, "profile_data": D, "orcid_id": N,
        "institution_id": N, "email_verified": D, "created_at": D, "updated_at": D,
        "last_login": N,
    },
    "user_sessions": {"user_id": R, "permissions": D, "ip_address": N, "user_agent": N,
                      "created_at": D, "last_activity": D, "expires_at": R, "revoked_at": N},
    "projects": {
        "name": R, "description": N, "status": D, "visibility": D, "owner_id": R, "settings": D,
        "metadata": D, "created_at": D, "updated_at": D, "archived_at": N,
    },
    "project_members": {"project_id": R, "user_id": R, "role": D, "permissions": D,
                        "joined_at": D, "last_active": N},
    "research_trees": {"project_id": R, "name": R, "structure": D, "metadata": D, "version": D,
                       "parent_version_id": N, "created_at": D, "updated_at": D},
    "tree_nodes": {
        "tree_id": R, "parent_node_id": N, "node_type": R, "title": R, "content": N,
        "position": D, "metadata": D, "version": D, "created_by": N, "created_at": D,
        "updated_at": D,
    },
    "node_versions": {"node_id": R, "version": R, "title": R, "content": N,
                      "change_summary": N, "created_by": N, "created_at": D},
    "documents": {
        "project_id": R, "title": R, "content": D, "content_type": D, "version": D,
        "metadata": D, "created_by": N, "created_at": D, "updated_at": D,
    },
    "document_versions": {"document_id": R, "version": R, "title": R, "content": R,
                          "change_summary": N, "created_by": N, "created_at": D},
    "collaborations": {"document_id": R, "user_id": R, "operation_type": R, "operation_data": R,
                       "position": N, "timestamp": D, "session_id": N},
    "ai_agents": {
        "name": R, "version": R, "category": R, "capabilities": D, "configuration": D,
        "price_per_hour": D, "performance_score": D, "is_active": D, "creator_id": N,
        "created_at": D, "updated_at": D, "embedding": N,
    },
    "agent_deployments": {
        "agent_id": R, "project_id": R, "deployed_by": N, "status": D, "configuration": D,
        "started_at": N, "stopped_at": N, "hours_used": D, "created_at": D, "updated_at": D,
    },
    "ai_interactions": {
        "user_id": R, "agent_id": R, "project_id": N, "prompt": R, "response": N, "status": D,
        "tokens_used": D, "cost": D, "duration_ms": N, "metadata": D, "created_at": D,
    },
}  # fmt: skip
# The seed's own tables (CREATE TABLE, or the ER diagram's columns): no field added to them.
SEED_TABLES = ("users", "institutions", "projects", "project_members", "research_trees",
               "ai_agents", "collaborations")  # fmt: skip

# Literal defaults (every other default is the creation time).
DEFAULTS: dict[tuple[str, str], Any] = {
    **{key: {} for key in [("institutions", "metadata"), ("users", "profile_data"),
                           ("projects", "settings"), ("projects", "metadata"),
                           ("research_trees", "metadata"), ("tree_nodes", "position"),
                           ("tree_nodes", "metadata"), ("documents", "metadata"),
                           ("ai_agents", "configuration"),
                           ("agent_deployments", "configuration"),
                           ("ai_interactions", "metadata")]},
    **{key: [] for key in [("user_sessions", "permissions"), ("project_members", "permissions"),
                           ("ai_agents", "capabilities")]},
    **dict.fromkeys([("research_trees", "version"), ("tree_nodes", "version"),
                     ("documents", "version")], 1),
    **dict.fromkeys([("ai_agents", "price_per_hour"), ("agent_deployments", "hours_used"),
                     ("ai_interactions", "cost")], "0.0000"),
    ("users", "email_verified"): False,
    ("projects", "status"): "active",
    ("projects", "visibility"): "private",
    ("project_members", "role"): "member",
    ("research_trees", "structure"): {"nodes": [], "edges": []},
    ("documents", "content"): "",
    ("documents", "content_type"): "markdown",
    ("ai_agents", "performance_score"): 0,
    ("ai_agents", "is_active"): True,
    ("agent_deployments", "status"): "pending",
    ("ai_interactions", "status"): "pending",
    ("ai_interactions", "tokens_used"): 0,
}  # fmt: skip

RESTRICT, CASCADE, SET_NULL = OnDelete.RESTRICT, OnDelete.CASCADE, OnDelete.SET_NULL
# (entity, field) -> (target, ON DELETE, relation route name)
REFS = {
    # The seed's: ON DELETE as written, a plain REFERENCES is NO ACTION (restrict).
    ("users", "institution_id"): ("institutions", RESTRICT, "users"),
    ("projects", "owner_id"): ("users", CASCADE, "projects"),
    ("research_trees", "project_id"): ("projects", CASCADE, "research_trees"),
    ("research_trees", "parent_version_id"): ("research_trees", RESTRICT, "child_versions"),
    ("ai_agents", "creator_id"): ("users", RESTRICT, "ai_agents"),
    ("collaborations", "document_id"): ("documents", CASCADE, "collaborations"),
    ("collaborations", "user_id"): ("users", CASCADE, "collaborations"),
    # Decided (docs/systems.md).
    ("project_members", "project_id"): ("projects", CASCADE, "project_members"),
    ("project_members", "user_id"): ("users", CASCADE, "project_members"),
    ("user_sessions", "user_id"): ("users", CASCADE, "user_sessions"),
    ("tree_nodes", "tree_id"): ("research_trees", CASCADE, "tree_nodes"),
    ("tree_nodes", "parent_node_id"): ("tree_nodes", CASCADE, "child_nodes"),
    ("tree_nodes", "created_by"): ("users", SET_NULL, "tree_nodes"),
    ("node_versions", "node_id"): ("tree_nodes", CASCADE, "node_versions"),
    ("node_versions", "created_by"): ("users", SET_NULL, "node_versions"),
    ("documents", "project_id"): ("projects", CASCADE, "documents"),
    ("documents", "created_by"): ("users", SET_NULL, "documents"),
    ("document_versions", "document_id"): ("documents", CASCADE, "document_versions"),
    ("document_versions", "created_by"): ("users", SET_NULL, "document_versions"),
    ("agent_deployments", "agent_id"): ("ai_agents", RESTRICT, "agent_deployments"),
    ("agent_deployments", "project_id"): ("projects", CASCADE, "agent_deployments"),
    ("agent_deployments", "deployed_by"): ("users", SET_NULL, "agent_deployments"),
    ("ai_interactions", "user_id"): ("users", CASCADE, "ai_interactions"),
    ("ai_interactions", "agent_id"): ("ai_agents", RESTRICT, "ai_interactions"),
    ("ai_interactions", "project_id"): ("projects", SET_NULL, "ai_interactions"),
}
UNIQUES = {("users", "email"): True}  # caseless, as Engineering Forge's
TOGETHER = {
    "ai_agents": [("name", "version")],  # UNIQUE(name, version)
    "project_members": [("project_id", "user_id")],
    "node_versions": [("node_id", "version")],
    "document_versions": [("document_id", "version")],
}
ENUMS = {
    ("projects", "status"): ("active", "completed", "archived"),
    ("projects", "visibility"): ("private", "internal", "public"),
    ("documents", "content_type"): ("markdown", "latex", "plain"),
    ("agent_deployments", "status"): ("pending", "running", "stopped", "failed"),
    ("ai_interactions", "status"): ("pending", "completed", "failed"),
}
OPEN = [("institutions", "type"), ("project_members", "role"), ("ai_agents", "category"),
        ("tree_nodes", "node_type"), ("collaborations", "operation_type")]  # fmt: skip

# The seed's CREATE INDEX (single, composite, partial) as list filters.
INDEXES = {
    "users": ("email", "institution_id", "created_at", "email_verified"),
    "projects": ("owner_id", "status", "created_at", "visibility"),
    "ai_agents": ("category", "is_active", "performance_score"),
    "research_trees": ("project_id", "version"),
    "collaborations": ("document_id", "timestamp", "session_id"),
    "project_members": ("project_id", "user_id"),
    "ai_interactions": ("user_id", "created_at"),
    "documents": ("project_id", "updated_at"),  # project_stats' join and last_activity
}
# Every list sorts by creation time; these sort by more.
CREATED = {entity: {"created_at"} for entity in FIELDS}
SORTS = {
    **CREATED,
    "project_members": {"joined_at"},
    "collaborations": {"timestamp"},
    "user_sessions": {"created_at", "expires_at"},
    "research_trees": {"created_at", "version"},
    "node_versions": {"created_at", "version"},
    "document_versions": {"created_at", "version"},
    "documents": {"created_at", "updated_at"},
    "ai_agents": {"created_at", "performance_score", "price_per_hour"},
}
OWNERS = {
    "users": "id",
    "projects": "owner_id",
    "tree_nodes": "created_by",
    "node_versions": "created_by",
    "documents": "created_by",
    "document_versions": "created_by",
    "collaborations": "user_id",
}
ADMIN_READ = {"user_sessions", "ai_interactions"}


def demo() -> dict[str, list[dict[str, Any]]]:
    data: dict[str, list[dict[str, Any]]] = orjson.loads(DEMO.read_bytes())
    return data


def base(spec: EntitySpec) -> dict[str, Any]:
    """A valid document of ``spec`` to vary: its first demo record."""
    return dict(demo()[spec.collection][0])


def accepts(spec: EntitySpec, doc: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return for_create(spec, doc, doc["id"])
    except ValidationFailed:
        return None


def stored(entity: str, **changes: Any) -> dict[str, Any] | None:
    """The stored form of the first demo record of ``entity`` with ``changes``; None if
    refused."""
    spec = NF.schema.entity(entity)
    return accepts(spec, {**base(spec), **changes})


# --- declarations ----------------------------------------------------------------------


def test_the_system_is_described_for_the_engine() -> None:
    assert (NF.name, NF.title, NF.namespace, NF.principal, NF.demo) == (
        "neuraforge", "NeuraForge", "neuraforge:", "users", "neuraforge",
    )  # fmt: skip
    assert "neuraforge" in names()
    served = load("neuraforge")
    uuid = "660e8400-e29b-41d4-a716-446655440000"
    assert served.users.key(uuid) == f"neuraforge:users:{uuid}"
    trees = served.schema.entity("research_trees")
    assert trees.key(uuid) == f"neuraforge:research_trees:{uuid}"
    # Table name = entity = collection = key prefix.
    for spec in TABLES:
        assert spec.name == spec.collection == spec.prefix


def test_every_table_in_declared_order_with_its_fields() -> None:
    assert [e.name for e in TABLES] == list(FIELDS)  # targets first
    for spec in TABLES:
        assert list(spec.model.model_fields) == ["id", *FIELDS[spec.name]], spec.name
        assert (spec.id_field, spec.id_strategy) == ("id", IdStrategy.UUID)
    assert set(SEED_TABLES) < set(FIELDS)


def test_nullability_and_defaults() -> None:
    for spec in TABLES:
        for name, rule in FIELDS[spec.name].items():
            where = f"{spec.name}.{name}"
            absent = accepts(spec, {k: v for k, v in base(spec).items() if k != name})
            null = accepts(spec, {**base(spec), name: None})
            assert (absent is not None) == (rule != R), where
            assert (null is not None) == (rule == N), where
            if (spec.name, name) in DEFAULTS:
                assert absent is not None and absent[name] == DEFAULTS[spec.name, name], where
            elif rule == D:
                assert absent is not None and NOW_FORM.fullmatch(absent[name]), where


def test_references_and_their_on_delete_rules() -> None:
    declared = {
        (spec.name, r.field): (r.target, r.on_delete, r.relation)
        for spec in TABLES
        for r in spec.references
    }
    assert declared == REFS
    for spec in TABLES:
        for r in spec.references:
            assert spec.indexed(r.field) is not None, f"{spec.name}.{r.field}: relation filter"
            assert r.nullable == (FIELDS[spec.name][r.field] == N)
    for target in {t for t, _, _ in REFS.values()}:  # routes tell references apart
        routes = [rel for (_, _), (t, _, rel) in REFS.items() if t == target]
        assert len(set(routes)) == len(routes), target


def test_uniques_single_and_composite() -> None:
    declared = {(spec.name, u.field): u.case_insensitive for spec in TABLES for u in spec.uniques}
    assert declared == UNIQUES
    together = {
        spec.name: [u.fields for u in spec.unique_together]
        for spec in TABLES
        if spec.unique_together
    }
    assert together == TOGETHER


def test_check_lists_are_enums_and_the_rest_is_open() -> None:
    for (entity, name), values in ENUMS.items():
        for value in values:
            assert stored(entity, **{name: value}) is not None, (entity, name, value)
        wrong: tuple[object, ...] = ("other", values[0].upper(), f" {values[0]}", 1)
        for sent in wrong:
            assert stored(entity, **{name: sent}) is None, (entity, name, sent)
    for entity, name in OPEN:
        assert stored(entity, **{name: "something-else"}) is not None, (entity, name)


def test_seed_indexes_filter_and_lists_sort() -> None:
    for entity, fields in INDEXES.items():
        spec = NF.schema.entity(entity)
        assert all(spec.indexed(name) is not None for name in fields), entity
    for spec in TABLES:
        sortable = {f.name for f in spec.fields if f.sortable}
        assert sortable == {"id", *SORTS[spec.name]}, spec.name


def test_updated_at_is_touched_on_every_write() -> None:
    for spec in TABLES:
        has = "updated_at" in spec.model.model_fields
        assert spec.touch_on_update == (("updated_at",) if has else ()), spec.name


def test_owners_admin_reads_and_roles() -> None:
    owners = {s.name: s.owner for s in TABLES if s.owner is not None}
    assert owners == OWNERS
    assert {s.name for s in TABLES if s.admin_read} == ADMIN_READ
    assert NF.users.owner == "id"
    # No global role in the seed: every user is a member, the operator's token administers.
    assert NF.role_fields == () and NF.admin_user is None
    assert NF.role_of({"email_verified": True}) == "member"
    user_fields = set(NF.users.model.model_fields)
    assert set(NF.admin_only_fields) <= user_fields
    assert {"email", "email_verified", "created_at", "last_login"} <= set(NF.admin_only_fields)
    assert not {"name", "avatar_url", "profile_data"} & set(NF.admin_only_fields)


# --- kinds -----------------------------------------------------------------------------


def value(entity: str, name: str, sent: Any) -> Any:
    doc = stored(entity, **{name: sent})
    assert doc is not None, (entity, name, sent)
    return doc[name]


def test_price_per_hour_is_decimal_10_4() -> None:
    assert value("ai_agents", "price_per_hour", "2.5") == "2.5000"
    assert value("ai_agents", "price_per_hour", 0.1) == "0.1000"
    assert value("ai_agents", "price_per_hour", "999999.9999") == "999999.9999"
    for refused in ("1.00001", "1000000", "-1", "abc", True):
        assert stored("ai_agents", price_per_hour=refused) is None, refused


def test_performance_score_is_0_to_100() -> None:
    for score in (0, 55, 100):
        assert value("ai_agents", "performance_score", score) == score
    for refused in (-1, 101, 50.5, "50", True):
        assert stored("ai_agents", performance_score=refused) is None, refused


def test_text_rules_of_the_seed_lengths() -> None:
    assert stored("projects", name="x" * 200) is not None
    assert stored("projects", name="x" * 201) is None  # VARCHAR(200)
    assert stored("users", orcid_id="0" * 51) is None  # VARCHAR(50)
    assert stored("institutions", country_code="us") is None
    assert stored("institutions", country_code="USA") is None
    assert stored("users", email="not-an-address") is None
    assert stored("projects", name="two\nlines") is None
    long_body = "line\n" * 10_000  # a document is longer than a description
    assert value("documents", "content", long_body) == long_body
    assert stored("documents", content="x" * 100_001) is None


# --- demo data -------------------------------------------------------------------------


def test_demo_records_are_stored_as_written() -> None:
    """Every record is valid, complete (explicit id and times) and already in stored form,
    so a second load-demo finds each one present and unchanged."""
    data = demo()
    assert set(data) == {spec.collection for spec in NF.schema.entities}
    for spec in NF.schema.entities:
        records = data[spec.collection]
        if spec.expiry is not None:  # live state: loaded records would vanish minutes later
            assert records == [], spec.collection
            continue
        assert 3 <= len(records) <= 6, spec.collection
        for record in records:
            assert list(record) == list(spec.model.model_fields), (spec.name, record["id"])
            assert for_create(spec, record, record["id"]) == record


def test_demo_references_and_uniques_hold() -> None:
    data = demo()
    ids: dict[str, set[str]] = {}
    for spec in TABLES:  # the loader's order: targets, then records in file order
        ids[spec.name] = set()
        for record in data[spec.collection]:
            for ref in spec.references:
                target = record[ref.field]
                assert target is None or target in ids[ref.target], (spec.name, ref.field)
            ids[spec.name].add(record["id"])
        assert len(ids[spec.name]) == len(data[spec.collection]), spec.name
        for unique in spec.uniques:
            held = [r[unique.field] for r in data[spec.collection] if r[unique.field] is not None]
            claims = [fold(v) if unique.case_insensitive else v for v in held]
            assert len(set(claims)) == len(claims), (spec.name, unique.field)
        for together in spec.unique_together:
            tuples = [tuple(r[f] for f in together.fields) for r in data[spec.collection]]
            assert len(set(tuples)) == len(tuples), (spec.name, together.fields)


def test_demo_world_uses_the_seeds_examples() -> None:
    data = demo()
    institutions = {
        i["id"]: (i["name"], i["type"], i["country_code"]) for i in data["institutions"]
    }
    assert {
        "550e8400-e29b-41d4-a716-446655440000": ("MIT", "university", "US"),
        "550e8400-e29b-41d4-a716-446655440001": ("Stanford", "university", "US"),
        "550e8400-e29b-41d4-a716-446655440002": ("Google Research", "company", "US"),
    }.items() <= institutions.items()
    sarah = next(u for u in data["users"] if u["id"] == "660e8400-e29b-41d4-a716-446655440000")
    assert (sarah["email"], sarah["name"], sarah["institution_id"]) == (
        "researcher@mit.edu", "Dr. Sarah Chen", "550e8400-e29b-41d4-a716-446655440000",
    )  # fmt: skip
    # The seed's features appear: a tree version with its parent, two versions of one agent
    # name, every project status, a nested node.
    assert any(t["parent_version_id"] for t in data["research_trees"])
    assert len({a["name"] for a in data["ai_agents"]}) < len(data["ai_agents"])
    assert {p["status"] for p in data["projects"]} == set(ENUMS["projects", "status"])
    assert any(n["parent_node_id"] for n in data["tree_nodes"])


# --- the demo world through the engine (fakeredis) --------------------------------------


async def _loaded() -> tuple[Keyspace, fakeredis.FakeAsyncRedis]:
    client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), protocol=2)
    ks = Keyspace(client, load("neuraforge").schema)
    await ks.setup()
    data = demo()
    for spec in ks.schema.entities:
        for record in data[spec.collection]:
            await ks.create(spec, record)
    return ks, client


async def test_the_demo_world_deletes_as_declared() -> None:
    ks, client = await _loaded()
    try:
        entity = ks.schema.entity
        data = demo()
        sarah, p0 = data["users"][0]["id"], data["projects"][0]["id"]
        # Sarah created FoldSim (ai_agents.creator_id, NO ACTION): her delete is refused.
        with pytest.raises(HasDependents):
            await ks.delete(entity("users"), sarah)
        # MIT has users (users.institution_id, NO ACTION).
        with pytest.raises(HasDependents):
            await ks.delete(entity("institutions"), data["institutions"][0]["id"])
        # A new version of an agent name is a conflict only for the same version.
        agent = {k: v for k, v in data["ai_agents"][0].items() if k != "id"}
        with pytest.raises(UniqueConflict):
            await ks.create(entity("ai_agents"), agent)
        await ks.create(entity("ai_agents"), {**agent, "version": "2.0.0"})
        # Deleting a project takes its trees (the child version too: a referrer the same
        # delete removes does not restrict), nodes, documents and what hangs from them;
        # its AI interactions stay with project_id null.
        gone = {
            c: [r["id"] for r in data[c] if _in_project(data, c, r, p0)]
            for c in ("project_members", "research_trees", "tree_nodes", "node_versions",
                      "documents", "document_versions", "collaborations", "agent_deployments")
        }  # fmt: skip
        assert all(gone.values()), gone
        kept = [i["id"] for i in data["ai_interactions"] if i["project_id"] == p0]
        assert kept
        deleted = await ks.delete(entity("projects"), p0)
        assert deleted == 1 + sum(len(ids) for ids in gone.values())
        for collection, doc_ids in gone.items():
            for doc_id in doc_ids:
                with pytest.raises(NotFound):
                    await ks.get(entity(collection), doc_id)
        for doc_id in kept:
            assert (await ks.get(entity("ai_interactions"), doc_id)).doc["project_id"] is None
    finally:
        await client.aclose()


# What hangs from a project through another table: (field naming the parent, its table).
PARENTS = {
    "tree_nodes": ("tree_id", "research_trees"),
    "node_versions": ("node_id", "tree_nodes"),
    "document_versions": ("document_id", "documents"),
    "collaborations": ("document_id", "documents"),
}


def _in_project(
    data: dict[str, list[dict[str, Any]]], collection: str, row: dict[str, Any], project: str
) -> bool:
    """Whether ``row`` of ``collection`` hangs, through its parents, from ``project``."""
    while collection in PARENTS:
        field, collection = PARENTS[collection]
        row = next(r for r in data[collection] if r["id"] == row[field])
    return bool(row["project_id"] == project)
