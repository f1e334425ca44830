"""The NORMALDANCE and Engineering Forge declarations say what their seeds say, and each
demo file is a valid, consistent world of its system.

The expectations are written out here from the seeds (CI clones have no ../shared): every
field with its nullability, every unique, reference and ON DELETE rule, the enums' values
and the decimals' precision. Nullability and defaults are checked by building documents,
not by reading the declarations back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from keyspace import systems
from keyspace.documents import for_create
from keyspace.errors import ValidationFailed
from keyspace.schema import EntitySpec, IdStrategy, OnDelete
from keyspace.system import System
from keyspace.systems.engineering_forge import SYSTEM as EF
from keyspace.systems.normaldance import SYSTEM as ND
from keyspace.text import fold

DEMO = Path(__file__).resolve().parents[2] / "demo_data"
NOW_FORM = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?$")
R, N, D = "required", "nullable", "default"  # absent: refused / stored null / filled

# Every seed field in seed order: "required" (no default, not nullable), "nullable", or
# "default" (filled when absent, never null). Fields the seed lacks are in ADDED.
ND_FIELDS: dict[str, dict[str, str]] = {
    "user": {
        **dict.fromkeys(("email", "username", "walletAddress", "telegramId", "avatar", "bio"), N),
        **dict.fromkeys(("isArtist", "isCurator", "isAdmin", "createdAt", "updatedAt"), D),
    },
    "wallet": {"address": R, "chain": R, "provider": N, "isPrimary": D, "createdAt": D,
               "updatedAt": D},
    "user_wallet": {"userId": R, "walletId": R, "createdAt": D},
    "session": {"userId": R, "token": R, "expiresAt": R, "createdAt": D, "updatedAt": D},
    "track": {
        "title": R, "description": N, "coverImage": N, "audioUrl": R, "artistId": R, "genre": N,
        "duration": R, "releaseDate": D, "price": N, "isNFT": D, "nftContract": N,
        "playCount": D, "likeCount": D, "metadata": N, "createdAt": D, "updatedAt": D,
    },
    "track_file": {"trackId": R, "ipfsHash": R, "fileType": R, "fileName": N, "fileSize": N,
                   "mimeType": N, "isPinned": D, "createdAt": D},
    "nft_collection": {
        "name": R, "description": N, "creatorId": R, "contractAddress": R, "totalSupply": D,
        "mintedCount": D, "price": N, "royaltyPercent": N, "metadata": N, "isActive": D,
        "createdAt": D, "updatedAt": D,
    },
    "nft": {
        "tokenId": R, "contractAddress": R, "name": R, "description": N, "imageUrl": N,
        "owner": R, "creatorId": R, "collectionId": N, "price": N, "isListed": D,
        "metadata": N, "blockchainTx": N, "trackId": N, "createdAt": D, "updatedAt": D,
    },
    "nft_metadata": {"nftId": R, "ipfsHash": R, "name": R, "description": N, "attributes": N,
                     "externalUrl": N, "createdAt": D},
    "transaction": {
        "nftId": N, "sellerId": N, "buyerId": N, "transactionHash": R, "price": N, "fee": N,
        "transactionType": R, "status": D, "chain": R, "blockNumber": N, "gasUsed": N,
        "metadata": N, "createdAt": D,
    },
    "music_token": {"userId": R, "balance": D, "totalEarned": D, "totalSpent": D,
                    "lastClaimed": N, "createdAt": D, "updatedAt": D},
    "staking": {
        "userId": R, "tokenId": R, "amount": R, "startDate": D, "endDate": N, "duration": R,
        "apy": D, "rewards": D, "claimedRewards": D, "isActive": D, "metadata": N,
        "createdAt": D, "updatedAt": D,
    },
}  # fmt: skip

EF_FIELDS: dict[str, dict[str, str]] = {
    "users": {
        "email": R, "username": N, "wallet_address": N, "avatar_url": N, "preferences": D,
        "academic_level": D, "total_xp": D, "created_at": D, "updated_at": D, "last_login": N,
        "is_active": D, "email_verified": D, "wallet_verified": D,
        # The seed's "Data Security" columns (pgcrypto), sealed by keyspace.sealing.
        "encrypted_ssn": N, "encrypted_private_key": N,
    },
    "courses": {
        "title": R, "description": N, "discipline": R, "difficulty_level": R,
        "estimated_duration": N, "prerequisites": N, "learning_objectives": N,
        "content_structure": N, "is_active": D, "created_at": D, "updated_at": D,
        "created_by": N, "version": D,
    },
    "lessons": {
        "course_id": N, "title": R, "description": N, "content": R, "lesson_type": R,
        "order_index": R, "estimated_duration": N, "prerequisites": N, "learning_outcomes": N,
        "is_active": D, "created_at": D, "updated_at": D,
    },
    "user_progress": {
        "user_id": N, "course_id": N, "progress_percentage": D, "completed_lessons": D,
        "current_lesson_id": N, "started_at": D, "completed_at": N, "last_accessed_at": D,
        "time_spent": D,
    },
    "projects": {
        "user_id": N, "course_id": N, "title": R, "description": N, "project_type": R,
        "components": R, "performance_metrics": N, "nft_token_id": N, "nft_metadata": N,
        "is_public": D, "is_featured": D, "view_count": D, "like_count": D, "created_at": D,
        "updated_at": D,
    },
    "achievement_definitions": {
        "title": R, "description": N, "achievement_type": R, "criteria": R, "icon_url": N,
        "xp_reward": D, "is_active": D, "created_at": D, "updated_at": D,
    },
    "achievements": {
        "user_id": N, "achievement_type": R, "title": R, "description": N, "icon_url": N,
        "nft_token_id": N, "earned_at": D, "metadata": D, "achievement_definition_id": N,
    },
    "user_sessions": {"user_id": N, "session_token": R, "ip_address": N, "user_agent": N,
                      "expires_at": R, "created_at": D, "last_accessed_at": D},
    "analytics_events": {"user_id": N, "event_type": R, "event_data": R, "session_id": N,
                         "ip_address": N, "user_agent": N, "created_at": D},
}  # fmt: skip

# Not in the seeds: decisions recorded in docs/systems.md.
ADDED = {("nft", "trackId"), ("achievements", "achievement_definition_id")}

# Literal defaults (every other default is the creation time).
ND_DEFAULTS: dict[tuple[str, str], Any] = {
    **dict.fromkeys([("user", "isArtist"), ("user", "isCurator"), ("user", "isAdmin"),
                     ("wallet", "isPrimary"), ("track", "isNFT"), ("nft", "isListed")], False),
    **dict.fromkeys([("track_file", "isPinned"), ("nft_collection", "isActive"),
                     ("staking", "isActive")], True),
    **dict.fromkeys([("track", "playCount"), ("track", "likeCount"),
                     ("nft_collection", "totalSupply"), ("nft_collection", "mintedCount")], 0),
    **dict.fromkeys([("music_token", "balance"), ("music_token", "totalEarned"),
                     ("music_token", "totalSpent"), ("staking", "rewards"),
                     ("staking", "claimedRewards"), ("transaction", "fee")], "0"),
    ("nft_collection", "royaltyPercent"): "2.5",
    ("transaction", "status"): "pending",
    ("staking", "apy"): "15",
}  # fmt: skip
EF_DEFAULTS: dict[tuple[str, str], Any] = {
    **dict.fromkeys([("users", "total_xp"), ("user_progress", "time_spent"),
                     ("projects", "view_count"), ("projects", "like_count"),
                     ("achievement_definitions", "xp_reward")], 0),
    **dict.fromkeys([("users", "is_active"), ("courses", "is_active"), ("lessons", "is_active"),
                     ("achievement_definitions", "is_active")], True),
    **dict.fromkeys([("users", "email_verified"), ("users", "wallet_verified"),
                     ("projects", "is_public"), ("projects", "is_featured")], False),
    ("users", "preferences"): {},
    ("users", "academic_level"): "beginner",
    ("courses", "version"): 1,
    ("user_progress", "progress_percentage"): "0.00",
    ("user_progress", "completed_lessons"): [],
    ("achievements", "metadata"): {},
}  # fmt: skip

RESTRICT, CASCADE, SET_NULL = OnDelete.RESTRICT, OnDelete.CASCADE, OnDelete.SET_NULL
# (entity, field) -> (target, ON DELETE, relation route name)
ND_REFS = {
    ("user_wallet", "userId"): ("user", RESTRICT, "wallets"),
    ("user_wallet", "walletId"): ("wallet", RESTRICT, "userWallets"),
    ("session", "userId"): ("user", RESTRICT, "sessions"),
    ("track", "artistId"): ("user", RESTRICT, "tracks"),
    ("track_file", "trackId"): ("track", RESTRICT, "files"),
    ("nft_collection", "creatorId"): ("user", RESTRICT, "nftCollections"),
    ("nft", "owner"): ("user", RESTRICT, "nfts"),
    ("nft", "creatorId"): ("user", RESTRICT, "createdNfts"),
    ("nft", "collectionId"): ("nft_collection", SET_NULL, "nfts"),
    ("nft", "trackId"): ("track", SET_NULL, "nft"),
    ("nft_metadata", "nftId"): ("nft", RESTRICT, "metadataDetails"),
    ("transaction", "nftId"): ("nft", SET_NULL, "transactions"),
    ("transaction", "sellerId"): ("user", SET_NULL, "soldTransactions"),
    ("transaction", "buyerId"): ("user", SET_NULL, "boughtTransactions"),
    ("music_token", "userId"): ("user", RESTRICT, "tokens"),
    ("staking", "userId"): ("user", RESTRICT, "staking"),
    ("staking", "tokenId"): ("music_token", RESTRICT, "staking"),
}
EF_REFS = {
    ("courses", "created_by"): ("users", RESTRICT, "courses"),
    ("lessons", "course_id"): ("courses", CASCADE, "lessons"),
    ("user_progress", "user_id"): ("users", CASCADE, "user_progress"),
    ("user_progress", "course_id"): ("courses", CASCADE, "user_progress"),
    ("user_progress", "current_lesson_id"): ("lessons", SET_NULL, "user_progress"),
    ("projects", "user_id"): ("users", CASCADE, "projects"),
    ("projects", "course_id"): ("courses", CASCADE, "projects"),
    ("achievements", "user_id"): ("users", CASCADE, "achievements"),
    ("achievements", "achievement_definition_id"): (
        "achievement_definitions",
        RESTRICT,
        "achievements",
    ),
    ("user_sessions", "user_id"): ("users", CASCADE, "user_sessions"),
    ("analytics_events", "user_id"): ("users", SET_NULL, "analytics_events"),
}

# (entity, field) -> caseless
ND_UNIQUES = {
    ("user", "email"): True, ("user", "username"): True, ("user", "walletAddress"): False,
    ("user", "telegramId"): False, ("wallet", "address"): False, ("session", "token"): False,
    ("nft", "tokenId"): False, ("nft", "trackId"): False, ("nft_metadata", "ipfsHash"): False,
    ("nft_collection", "contractAddress"): False, ("transaction", "transactionHash"): False,
}  # fmt: skip
EF_UNIQUES = {
    ("users", "email"): True, ("users", "username"): True,
    ("user_sessions", "session_token"): False,
}  # fmt: skip
ND_TOGETHER = {"user_wallet": [("userId", "walletId")]}
EF_TOGETHER = {"user_progress": [("user_id", "course_id")]}

ND_ENUMS = {
    ("track_file", "fileType"): ("audio", "cover", "metadata"),
    ("transaction", "transactionType"): ("mint", "transfer", "sale", "stake", "unstake"),
    ("transaction", "status"): ("pending", "completed", "failed"),
    ("transaction", "chain"): ("solana", "ton"),
}
EF_ENUMS = {("lessons", "lesson_type"): ("theory", "interactive", "project")}

# The seeds' indexes (NORMALDANCE's @@index list, Engineering Forge's CREATE INDEX), as
# list filters; the time and order fields a list sorts by are sort fields too.
ND_INDEXES = {
    "user": ("walletAddress", "telegramId", "email", "createdAt"),
    "track": ("artistId", "genre", "releaseDate", "createdAt", "isNFT"),
    "nft": ("owner", "creatorId", "contractAddress", "tokenId", "isListed", "createdAt"),
    "transaction": ("nftId", "buyerId", "sellerId", "transactionType", "status", "createdAt"),
    "music_token": ("userId", "updatedAt"),
    "staking": ("userId", "isActive", "startDate"),
}
EF_INDEXES = {
    "users": ("email", "wallet_address", "username", "created_at"),
    "courses": ("discipline", "difficulty_level", "is_active", "created_at"),
    "lessons": ("course_id", "lesson_type", "order_index", "is_active"),
    "user_progress": ("user_id", "course_id", "completed_at", "last_accessed_at"),
    "projects": ("user_id", "project_type", "nft_token_id", "is_public", "is_featured",
                 "created_at", "view_count", "like_count"),
    "achievements": ("user_id", "achievement_type", "nft_token_id", "earned_at"),
    "achievement_definitions": ("achievement_type", "is_active"),
    "user_sessions": ("user_id", "session_token", "expires_at"),
    "analytics_events": ("user_id", "event_type", "created_at", "session_id"),
}  # fmt: skip
# Every list sorts by creation time; these sort by more.
ND_SORTS = {
    **{entity: {"createdAt"} for entity in ND_FIELDS},
    "session": {"createdAt", "expiresAt"},
    "track": {"releaseDate", "createdAt"},
    "music_token": {"createdAt", "updatedAt"},
    "staking": {"startDate", "apy", "createdAt"},
}
EF_SORTS = {
    **{entity: {"created_at"} for entity in EF_FIELDS},
    "lessons": {"order_index", "created_at"},
    "user_progress": {"last_accessed_at", "started_at", "progress_percentage"},
    "projects": {"created_at", "view_count", "like_count"},
    "achievements": {"earned_at"},
    "user_sessions": {"created_at", "expires_at"},
}

ND_OWNERS = {"user": "id", "track": "artistId", "nft": "owner", "nft_collection": "creatorId"}
EF_OWNERS = {"users": "id", "user_progress": "user_id", "projects": "user_id"}


@dataclass(frozen=True)
class Seed:
    """What one seed declares, as the tables above write it."""

    fields: dict[str, dict[str, str]]
    ids: IdStrategy
    defaults: dict[tuple[str, str], Any]
    refs: dict[tuple[str, str], tuple[str, OnDelete, str]]
    uniques: dict[tuple[str, str], bool]
    together: Mapping[str, list[tuple[str, str]]]
    enums: Mapping[tuple[str, str], tuple[str, ...]]
    indexes: dict[str, tuple[str, ...]]
    sorts: dict[str, set[str]]
    owners: dict[str, str]
    touched: str


SEEDS = {
    "normaldance": Seed(ND_FIELDS, IdStrategy.CUID, ND_DEFAULTS, ND_REFS, ND_UNIQUES, ND_TOGETHER,
                        ND_ENUMS, ND_INDEXES, ND_SORTS, ND_OWNERS, "updatedAt"),
    "engineering_forge": Seed(EF_FIELDS, IdStrategy.UUID, EF_DEFAULTS, EF_REFS, EF_UNIQUES,
                              EF_TOGETHER, EF_ENUMS, EF_INDEXES, EF_SORTS, EF_OWNERS,
                              "updated_at"),
}  # fmt: skip
SYSTEMS = [pytest.param(ND, id="normaldance"), pytest.param(EF, id="engineering_forge")]


def demo(system: System) -> dict[str, list[dict[str, Any]]]:
    data: dict[str, list[dict[str, Any]]] = orjson.loads(
        (DEMO / system.demo / "demo.json").read_bytes()
    )
    return data


def base(system: System, spec: EntitySpec) -> dict[str, Any]:
    """A valid document of ``spec`` to vary: its first demo record."""
    return dict(demo(system)[spec.collection][0])


def accepts(spec: EntitySpec, doc: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return for_create(spec, doc, doc["id"])
    except ValidationFailed:
        return None


# --- declarations ----------------------------------------------------------------------


def test_collections_are_exactly_the_seeds() -> None:
    assert {e.collection for e in ND.schema.entities} == {
        "users", "wallets", "user_wallets", "sessions", "tracks", "track_files", "nfts",
        "nft_metadata", "nft_collections", "transactions", "music_tokens", "stakings",
    }  # fmt: skip
    assert {e.collection for e in EF.schema.entities} == {
        "users", "courses", "lessons", "user_progress", "projects", "achievements",
        "achievement_definitions", "user_sessions", "analytics_events",
    }  # fmt: skip
    # Key prefixes: NORMALDANCE's model names in snake_case, Engineering Forge's tables.
    assert [e.prefix for e in ND.schema.entities] == list(ND_FIELDS)
    assert [e.prefix for e in EF.schema.entities] == [e.collection for e in EF.schema.entities]


def test_systems_are_described_for_the_engine() -> None:
    assert (ND.name, ND.title, ND.namespace, ND.principal) == (
        "normaldance", "NORMALDANCE", "normaldance:", "user",
    )  # fmt: skip
    assert (EF.name, EF.title, EF.namespace, EF.principal) == (
        "engineering_forge", "Engineering Forge", "engineering_forge:", "users",
    )  # fmt: skip
    assert (ND.demo, EF.demo) == ("normaldance", "engineering_forge")
    assert {"normaldance", "engineering_forge"} <= set(systems.names())
    cuid, uuid = "cnormaldanceadmin00000000", "3b1a0c86-9f1e-4a43-8d0e-0c1d2e3f4a5b"
    assert systems.load("normaldance").users.key(cuid) == f"normaldance:user:{cuid}"
    served = systems.load("engineering_forge").schema.entity("user_progress")
    assert served.key(uuid) == f"engineering_forge:user_progress:{uuid}"


@pytest.mark.parametrize("system", SYSTEMS)
def test_every_seed_field_in_seed_order(system: System) -> None:
    seed = SEEDS[system.name]
    assert [e.name for e in system.schema.entities] == list(seed.fields)  # targets first
    for spec in system.schema.entities:
        assert list(spec.model.model_fields) == ["id", *seed.fields[spec.name]], spec.name
        assert (spec.id_field, spec.id_strategy) == ("id", seed.ids)
    for entity, name in ADDED & {(e, f) for e in seed.fields for f in seed.fields[e]}:
        assert seed.fields[entity][name] == N  # a seed-shaped document stays valid


@pytest.mark.parametrize("system", SYSTEMS)
def test_nullability_and_defaults_as_the_seed(system: System) -> None:
    seed = SEEDS[system.name]
    for spec in system.schema.entities:
        for name, rule in seed.fields[spec.name].items():
            where = f"{spec.name}.{name}"
            absent = accepts(spec, {k: v for k, v in base(system, spec).items() if k != name})
            null = accepts(spec, {**base(system, spec), name: None})
            assert (absent is not None) == (rule != R), where
            assert (null is not None) == (rule == N), where
            if (spec.name, name) in seed.defaults:
                assert absent is not None and absent[name] == seed.defaults[spec.name, name], where
            elif rule == D:
                assert absent is not None and NOW_FORM.fullmatch(absent[name]), where


@pytest.mark.parametrize("system", SYSTEMS)
def test_references_and_their_on_delete_rules(system: System) -> None:
    seed = SEEDS[system.name]
    declared = {
        (spec.name, r.field): (r.target, r.on_delete, r.relation)
        for spec in system.schema.entities
        for r in spec.references
    }
    assert declared == seed.refs
    for spec in system.schema.entities:
        for r in spec.references:
            assert spec.indexed(r.field) is not None, f"{spec.name}.{r.field}: relation filter"
            assert r.nullable == (seed.fields[spec.name][r.field] == N)  # an optional relation
    for target in {t for t, _, _ in seed.refs.values()}:  # routes tell references apart
        routes = [(src, rel) for (src, _), (t, _, rel) in seed.refs.items() if t == target]
        assert len(set(routes)) == len(routes), target


@pytest.mark.parametrize("system", SYSTEMS)
def test_uniques_single_and_composite(system: System) -> None:
    declared = {
        (spec.name, u.field): u.case_insensitive
        for spec in system.schema.entities
        for u in spec.uniques
    }
    assert declared == SEEDS[system.name].uniques
    together = {
        spec.name: [u.fields for u in spec.unique_together]
        for spec in system.schema.entities
        if spec.unique_together
    }
    assert together == SEEDS[system.name].together


@pytest.mark.parametrize("system", SYSTEMS)
def test_enums_take_exactly_the_seeds_values(system: System) -> None:
    for (entity, name), values in SEEDS[system.name].enums.items():
        spec = system.schema.entity(entity)
        record = base(system, spec)
        for value in values:
            assert accepts(spec, {**record, name: value}) is not None, (entity, name, value)
        wrong: tuple[object, ...] = ("other", values[0].upper(), f" {values[0]}", 1)
        for sent in wrong:
            assert accepts(spec, {**record, name: sent}) is None, (entity, name, sent)
    # "etc." or no value list in the seed: open text.
    for entity, name in (("wallet", "chain"), ("wallet", "provider"), ("courses", "discipline")):
        if entity in SEEDS[system.name].fields:
            spec = system.schema.entity(entity)
            assert accepts(spec, {**base(system, spec), name: "polygon"}) is not None


@pytest.mark.parametrize("system", SYSTEMS)
def test_seed_indexes_filter_and_lists_sort(system: System) -> None:
    seed = SEEDS[system.name]
    for entity, names in seed.indexes.items():
        spec = system.schema.entity(entity)
        assert all(spec.indexed(name) is not None for name in names), entity
    for spec in system.schema.entities:
        sortable = {f.name for f in spec.fields if f.sortable}
        assert sortable == {"id", *seed.sorts[spec.name]}, spec.name


@pytest.mark.parametrize("system", SYSTEMS)
def test_updated_at_is_touched_on_every_write(system: System) -> None:
    touched = SEEDS[system.name].touched
    for spec in system.schema.entities:
        has = touched in spec.model.model_fields
        assert spec.touch_on_update == ((touched,) if has else ()), spec.name


@pytest.mark.parametrize("system", SYSTEMS)
def test_owners_and_admin_written_entities(system: System) -> None:
    owners = {s.name: s.owner for s in system.schema.entities if s.owner is not None}
    assert owners == SEEDS[system.name].owners
    assert system.users.owner == "id"
    user_fields = system.users.model.model_fields
    assert set(system.admin_only_fields) <= set(user_fields)
    assert set(system.role_fields) <= set(user_fields)


def test_roles() -> None:
    assert ND.role_fields == ("isAdmin",)
    assert ND.role_of({"isAdmin": True}) == "admin"
    assert ND.role_of({"isAdmin": False}) == ND.role_of({}) == "member"
    assert ND.role_of({"isAdmin": "true"}) == "member"  # never truthiness
    assert {"isAdmin", "isCurator", "createdAt"} <= set(ND.admin_only_fields)
    assert ND.admin_user is not None
    first = accepts(ND.users, dict(ND.admin_user))  # the first start's admin
    assert first is not None and ND.role_of(first) == "admin"
    assert EF.role_fields == ()
    assert EF.admin_user is None  # no role column: the operator's token administers it
    assert EF.role_of({"email_verified": True, "total_xp": 10**6}) == "member"
    assert {"total_xp", "email_verified", "wallet_verified", "created_at"} <= set(
        EF.admin_only_fields
    )


# --- kinds -----------------------------------------------------------------------------


def stored(system: System, entity: str, **changes: Any) -> dict[str, Any] | None:
    """The stored form of a demo record of ``entity`` with ``changes``; None if refused."""
    spec = system.schema.entity(entity)
    return accepts(spec, {**base(system, spec), **changes})


def value(system: System, entity: str, name: str, sent: Any) -> Any:
    """What is stored for ``name`` when ``sent``, which must be accepted."""
    doc = stored(system, entity, **{name: sent})
    assert doc is not None, (entity, name, sent)
    return doc[name]


def test_decimal_precision() -> None:
    progress = "progress_percentage"  # DECIMAL(5,2)
    assert value(EF, "user_progress", progress, "12.5") == "12.50"
    assert value(EF, "user_progress", progress, 0.1) == "0.10"
    assert value(EF, "user_progress", progress, "999.99") == "999.99"
    for refused in ("100.001", "1000", "1e3", "abc", True):
        assert stored(EF, "user_progress", **{progress: refused}) is None, refused
    # Prisma's Decimal is DECIMAL(65,30); the shortest form comes out.
    assert value(ND, "music_token", "balance", 0.1) == "0.1"
    assert value(ND, "music_token", "balance", "1.50") == "1.5"
    wide = "9" * 35 + "." + "9" * 30
    assert value(ND, "music_token", "balance", wide) == wide
    assert stored(ND, "music_token", balance="0." + "0" * 30 + "1") is None
    assert value(ND, "staking", "amount", "1" + "0" * 40) == "1" + "0" * 40
    # Indexed decimals hold the index's 15 significant digits, exactly.
    assert value(ND, "track", "price", "1234567890.12345") == "1234567890.12345"
    assert stored(ND, "track", price="1234567890.123456") is None


def test_big_integers_past_2_53() -> None:
    past = 2**53 + 1
    assert value(ND, "transaction", "blockNumber", str(past)) == str(past)
    assert value(ND, "transaction", "gasUsed", past + 2) == str(past + 2)
    assert stored(ND, "transaction", blockNumber=str(2**63)) is None  # Prisma BigInt: int64


def test_typed_preferences() -> None:
    full = {
        "theme": "dark",
        "notifications": {"email": True, "push": False, "achievements": True, "community": False},
        "accessibility": {"fontSize": "large", "highContrast": True, "screenReader": False},
        "privacy": {
            "profileVisibility": "friends",
            "showProgress": True,
            "showAchievements": False,
        },
    }
    assert value(EF, "users", "preferences", full) == full
    partial = {"privacy": {"showProgress": False}}  # stored as sent: no nulls filled in
    assert value(EF, "users", "preferences", partial) == partial
    bad: Any
    for bad in (
        {"theme": "blue"},
        {"theme": None},
        {"notifications": {"email": "yes"}},
        {"accessibility": {"fontSize": "huge"}},
        {"privacy": {"profileVisibility": "everyone"}},
        {"language": "en"},
        [],
    ):
        assert stored(EF, "users", preferences=bad) is None, bad


def test_typed_project_json() -> None:
    engine = {
        "id": "e1",
        "type": "engine",
        "name": "V6",
        "properties": {"power": 300, "weight": 2.5},
        "position": {"x": 0, "y": 0.5, "z": -1},
    }
    summary = {"totalPower": 300, "totalWeight": 2.5, "efficiency": 0.3, "cost": 1200}
    components = {"components": [engine], "metadata": summary}
    assert value(EF, "projects", "components", components) == components  # 300 stays 300
    bad: Any
    for bad in (
        {"components": [{"type": "wing"}]},
        {"components": [{"properties": {"power": "300"}}]},
        {"components": [{"properties": {"power": True}}]},
        {"parts": []},
    ):
        assert stored(EF, "projects", components=bad) is None, bad
    run = {"testType": "dyno", "results": {"score": 9.5, "details": {"free": ["json"]}}}
    metrics = {"topSpeed": 251, "tests": [{**run, "timestamp": "2025-08-09T10:00:00Z"}]}
    assert value(EF, "projects", "performance_metrics", metrics) == metrics
    assert stored(EF, "projects", performance_metrics={"tests": [{"testType": "crash"}]}) is None
    nft = {"name": "x", "attributes": [{"trait_type": "t", "value": 3}, {"value": "s"}]}
    assert value(EF, "projects", "nft_metadata", nft) == nft
    assert stored(EF, "projects", nft_metadata={"attributes": [{"value": [1]}]}) is None


# --- demo data -------------------------------------------------------------------------


@pytest.mark.parametrize("system", SYSTEMS)
def test_demo_records_are_stored_as_written(system: System) -> None:
    """Every record is valid, complete (explicit id and times) and already in stored form,
    so a second load-demo finds each one present and unchanged."""
    data = demo(system)
    assert set(data) == {spec.collection for spec in system.schema.entities}
    for spec in system.schema.entities:
        records = data[spec.collection]
        assert 3 <= len(records) <= 6, spec.collection
        for record in records:
            assert list(record) == list(spec.model.model_fields), (spec.name, record["id"])
            assert for_create(spec, record, record["id"]) == record


@pytest.mark.parametrize("system", SYSTEMS)
def test_demo_references_and_uniques_hold(system: System) -> None:
    data = demo(system)
    ids: dict[str, set[str]] = {}
    for spec in system.schema.entities:  # the loader's order: targets are loaded first
        records = data[spec.collection]
        ids[spec.name] = {r["id"] for r in records}
        assert len(ids[spec.name]) == len(records)
        for record in records:
            for ref in spec.references:
                value = record[ref.field]
                assert value is None or value in ids[ref.target], (spec.name, ref.field, value)
        for unique in spec.uniques:
            held = [r[unique.field] for r in records if r[unique.field] is not None]
            claims = [fold(v) if unique.case_insensitive else v for v in held]
            assert len(set(claims)) == len(claims), (spec.name, unique.field)
        for together in spec.unique_together:
            tuples = [tuple(r[f] for f in together.fields) for r in records]
            complete = [t for t in tuples if None not in t]
            assert len(set(complete)) == len(complete), (spec.name, together.fields)


def test_demo_worlds_use_the_seeds_examples() -> None:
    nd, ef = demo(ND), demo(EF)
    assert {w["chain"] for w in nd["wallets"]} == {"solana", "ton"}
    assert {w["provider"] for w in nd["wallets"]} == {"phantom", "tonkeeper"}
    assert any(int(t["blockNumber"] or 0) > 2**53 for t in nd["transactions"])
    assert any(u["isAdmin"] for u in nd["users"])
    assert "Mechanical Engineering Fundamentals" in {c["title"] for c in ef["courses"]}
    first = next(d for d in ef["achievement_definitions"] if d["title"] == "First Project")
    assert first["criteria"] == {"condition": "projects_created", "value": 1}
    assert first["xp_reward"] == 100
    lessons = [lesson for lesson in ef["lessons"] if lesson["course_id"] == ef["courses"][0]["id"]]
    assert sorted(lesson["order_index"] for lesson in lessons) == [1, 2, 3]
