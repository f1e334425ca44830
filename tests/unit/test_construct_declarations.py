"""The Construct's declarations say what docs/systems.md records for seed 002, and the demo
file is a valid, consistent world.

The seed names the tables and gives no column, so the expectations below are the decisions
docs/systems.md records (written out here: CI clones have no ../shared), as
tests/unit/test_neuraforge_declarations.py does for NeuraForge: every field with its
nullability, every unique, reference and ON DELETE rule, the status transitions, the
fields the later read API filters, groups, sums and sorts by, and the owners. The last tests
load the demo world into a fakeredis keyspace and write and delete through it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import fakeredis
import orjson
import pytest

from keyspace import Keyspace
from keyspace.documents import for_create
from keyspace.errors import (
    HasDependents,
    InvalidTransition,
    NotFound,
    UniqueConflict,
    ValidationFailed,
)
from keyspace.query import parse
from keyspace.schema import EntitySpec, FieldKind, IdStrategy, OnDelete
from keyspace.systems import load, names
from keyspace.systems.construct import SYSTEM as CONSTRUCT
from keyspace.text import fold

DEMO = Path(__file__).resolve().parents[2] / "demo_data" / "construct" / "demo.json"
NOW_FORM = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?$")
R, N, D = "required", "nullable", "default"  # absent: refused / stored null / filled
TABLES = CONSTRUCT.schema.entities

# Declaration order (the loader's: targets first), every field in its order.
FIELDS: dict[str, dict[str, str]] = {
    "users": {
        "wallet_address": R, "username": N, "display_name": N, "bio": N, "avatar_url": N,
        "account_type": D, "reputation_score": D, "kyc_verified": D, "is_active": D,
        "profile": D, "created_at": D, "updated_at": D, "last_active_at": N,
    },
    "assets": {
        "name": R, "symbol": R, "description": N, "asset_type": R, "issuer_id": R,
        "specifications": D, "token_standard": D, "contract_address": N, "token_id": N,
        "total_supply": R, "metadata_uri": N, "status": D, "created_at": D, "updated_at": D,
    },
    "price_feeds": {
        "asset_id": R, "asset_symbol": R, "price": R, "quote_currency": D, "volume_24h": N,
        "source": R, "timestamp": R, "created_at": D,
    },
    "trading_orders": {
        "user_id": R, "asset_id": R, "side": R, "order_type": D, "price": R, "quantity": R,
        "filled_quantity": D, "quote_currency": D, "status": D, "expires_at": N,
        "filled_at": N, "cancelled_at": N, "created_at": D, "updated_at": D,
    },
    "manufacturing_orders": {
        "buyer_id": R, "manufacturer_id": N, "asset_id": N, "title": R, "description": N,
        "component_type": R, "specifications": D, "quantity": R, "total_price": R,
        "currency": D, "status": D, "due_date": N, "started_at": N, "completed_at": N,
        "created_at": D, "updated_at": D,
    },
    "escrows": {
        "buyer_id": R, "seller_id": R, "trading_order_id": N, "manufacturing_order_id": N,
        "amount": R, "released_amount": D, "currency": D, "status": D, "contract_address": N,
        "conditions": D, "expires_at": N, "funded_at": N, "settled_at": N, "created_at": D,
        "updated_at": D,
    },
    "milestones": {
        "manufacturing_order_id": R, "sequence": R, "title": R, "description": N,
        "payment_amount": R, "status": D, "due_date": N, "submitted_at": N, "approved_at": N,
        "paid_at": N, "created_at": D, "updated_at": D,
    },
    "quality_assurance": {
        "manufacturing_order_id": R, "milestone_id": N, "inspector_id": R,
        "inspection_type": R, "result": R, "score": N, "defects_found": D, "notes": N,
        "measurements": D, "report_uri": N, "inspected_at": D, "created_at": D,
    },
    "proposals": {
        "proposer_id": R, "title": R, "description": R, "proposal_type": R, "status": D,
        "voting_starts_at": R, "voting_ends_at": R, "quorum": D, "approval_threshold": D,
        "actions": D, "executed_at": N, "created_at": D, "updated_at": D,
    },
    "votes": {
        "proposal_id": R, "voter_id": R, "choice": R, "weight": R, "reason": N, "tx_hash": N,
        "created_at": D,
    },
    "transactions": {
        "tx_hash": R, "tx_type": R, "status": D, "from_address": R, "to_address": R,
        "user_id": N, "asset_id": N, "trading_order_id": N, "escrow_id": N, "milestone_id": N,
        "amount": R, "token_symbol": R, "fee": D, "block_number": N, "metadata": D,
        "created_at": D, "updated_at": D, "confirmed_at": N,
    },
}  # fmt: skip

# Literal defaults (every other default is the creation time).
DEFAULTS: dict[tuple[str, str], Any] = {
    ("users", "account_type"): "individual",
    ("users", "reputation_score"): "0.00",
    ("users", "kyc_verified"): False,
    ("users", "is_active"): True,
    ("users", "profile"): {},
    ("assets", "specifications"): {},
    ("assets", "token_standard"): "erc1155",
    ("assets", "status"): "pending",
    ("price_feeds", "quote_currency"): "USD",
    ("trading_orders", "order_type"): "limit",
    ("trading_orders", "filled_quantity"): "0.000000",
    ("trading_orders", "quote_currency"): "USDC",
    ("trading_orders", "status"): "open",
    ("manufacturing_orders", "specifications"): {},
    ("manufacturing_orders", "currency"): "USDC",
    ("manufacturing_orders", "status"): "pending",
    ("escrows", "released_amount"): "0.000000",
    ("escrows", "currency"): "USDC",
    ("escrows", "status"): "pending",
    ("escrows", "conditions"): {},
    ("milestones", "status"): "pending",
    ("quality_assurance", "defects_found"): 0,
    ("quality_assurance", "measurements"): {},
    ("proposals", "status"): "draft",
    ("proposals", "quorum"): "0.000000",
    ("proposals", "approval_threshold"): "0.5000",
    ("proposals", "actions"): [],
    ("transactions", "status"): "pending",
    ("transactions", "fee"): "0.000000",
    ("transactions", "metadata"): {},
}

RESTRICT, CASCADE, SET_NULL = OnDelete.RESTRICT, OnDelete.CASCADE, OnDelete.SET_NULL
# (entity, field) -> (target, ON DELETE, relation route name)
REFS = {
    ("assets", "issuer_id"): ("users", RESTRICT, "assets"),
    ("price_feeds", "asset_id"): ("assets", CASCADE, "price_feeds"),
    ("trading_orders", "user_id"): ("users", RESTRICT, "trading_orders"),
    ("trading_orders", "asset_id"): ("assets", RESTRICT, "trading_orders"),
    ("manufacturing_orders", "buyer_id"): ("users", RESTRICT, "manufacturing_orders"),
    ("manufacturing_orders", "manufacturer_id"): ("users", RESTRICT, "manufacturing_jobs"),
    ("manufacturing_orders", "asset_id"): ("assets", RESTRICT, "manufacturing_orders"),
    ("escrows", "buyer_id"): ("users", RESTRICT, "buyer_escrows"),
    ("escrows", "seller_id"): ("users", RESTRICT, "seller_escrows"),
    ("escrows", "trading_order_id"): ("trading_orders", RESTRICT, "escrows"),
    ("escrows", "manufacturing_order_id"): ("manufacturing_orders", RESTRICT, "escrows"),
    ("milestones", "manufacturing_order_id"): ("manufacturing_orders", CASCADE, "milestones"),
    ("quality_assurance", "manufacturing_order_id"): (
        "manufacturing_orders", CASCADE, "quality_assurance",
    ),
    ("quality_assurance", "milestone_id"): ("milestones", SET_NULL, "quality_assurance"),
    ("quality_assurance", "inspector_id"): ("users", RESTRICT, "inspections"),
    ("proposals", "proposer_id"): ("users", RESTRICT, "proposals"),
    ("votes", "proposal_id"): ("proposals", RESTRICT, "votes"),
    ("votes", "voter_id"): ("users", RESTRICT, "votes"),
    ("transactions", "user_id"): ("users", RESTRICT, "transactions"),
    ("transactions", "asset_id"): ("assets", RESTRICT, "transactions"),
    ("transactions", "trading_order_id"): ("trading_orders", RESTRICT, "transactions"),
    ("transactions", "escrow_id"): ("escrows", RESTRICT, "transactions"),
    ("transactions", "milestone_id"): ("milestones", RESTRICT, "transactions"),
}  # fmt: skip
# Caseless: hex addresses and hashes, usernames. Tickers are upper case by pattern.
UNIQUES = {
    ("users", "wallet_address"): True,
    ("users", "username"): True,
    ("assets", "symbol"): False,
    ("transactions", "tx_hash"): True,
}
TOGETHER = {
    "price_feeds": [("asset_symbol", "source", "timestamp")],
    "milestones": [("manufacturing_order_id", "sequence")],
    "votes": [("proposal_id", "voter_id")],
}
ENUMS = {
    ("users", "account_type"): ("individual", "organization", "manufacturer"),
    ("assets", "token_standard"): ("erc20", "erc721", "erc1155"),
    ("assets", "status"): ("pending", "active", "suspended", "delisted"),
    ("trading_orders", "side"): ("buy", "sell"),
    ("trading_orders", "order_type"): ("limit", "market"),
    ("trading_orders", "status"): ("open", "partially_filled", "filled", "cancelled", "expired"),
    ("escrows", "status"): (
        "pending", "funded", "partially_released", "released", "refunded", "disputed",
        "cancelled",
    ),
    ("manufacturing_orders", "status"): (
        "pending", "accepted", "in_production", "quality_check", "completed", "cancelled",
    ),
    ("milestones", "status"): (
        "pending", "in_progress", "submitted", "approved", "rejected", "paid",
    ),
    ("quality_assurance", "inspection_type"): (
        "visual", "dimensional", "functional", "material", "compliance",
    ),
    ("quality_assurance", "result"): ("pass", "fail", "conditional"),
    ("proposals", "proposal_type"): (
        "parameter_change", "asset_listing", "treasury", "protocol_upgrade", "other",
    ),
    ("proposals", "status"): ("draft", "active", "passed", "rejected", "executed", "cancelled"),
    ("votes", "choice"): ("for", "against", "abstain"),
    ("transactions", "tx_type"): (
        "mint", "transfer", "trade", "escrow_deposit", "escrow_release", "escrow_refund",
        "milestone_payment", "governance",
    ),
    ("transactions", "status"): ("pending", "confirmed", "failed"),
}  # fmt: skip
# Every state and the states it may move to; a state not listed is final.
TRANSITIONS = {
    "assets": {
        "pending": {"active", "delisted"},
        "active": {"suspended", "delisted"},
        "suspended": {"active", "delisted"},
    },
    "trading_orders": {
        "open": {"partially_filled", "filled", "cancelled", "expired"},
        "partially_filled": {"filled", "cancelled", "expired"},
    },
    "escrows": {
        "pending": {"funded", "cancelled"},
        "funded": {"partially_released", "released", "refunded", "disputed"},
        "partially_released": {"released", "refunded", "disputed"},
        "disputed": {"partially_released", "released", "refunded"},
    },
    "manufacturing_orders": {
        "pending": {"accepted", "cancelled"},
        "accepted": {"in_production", "cancelled"},
        "in_production": {"quality_check", "cancelled"},
        "quality_check": {"in_production", "completed"},
    },
    "milestones": {
        "pending": {"in_progress"},
        "in_progress": {"submitted"},
        "submitted": {"approved", "rejected"},
        "rejected": {"in_progress"},
        "approved": {"paid"},
    },
    "proposals": {
        "draft": {"active", "cancelled"},
        "active": {"passed", "rejected", "cancelled"},
        "passed": {"executed"},
    },
    "transactions": {"pending": {"confirmed", "failed"}},
}

# What the later read API (issue 16) filters, groups and sums by: (field, index kind).
TAG, NUM, DEC, TIME, TEXT = (
    FieldKind.TAG,
    FieldKind.NUMERIC,
    FieldKind.DECIMAL,
    FieldKind.TIME,
    FieldKind.TEXT,
)
ROUTE_FIELDS = {
    # /api/users/wallet/{wallet_address}; user stats group the user's rows by these refs.
    "users": {"wallet_address": TAG, "reputation_score": DEC, "account_type": TAG},
    # /api/assets/search?q=&asset_type=; "searches by type and issuer".
    "assets": {"name": TEXT, "description": TEXT, "asset_type": TAG, "issuer_id": TAG,
               "symbol": TAG, "status": TAG},
    # /api/blockchain/prices/{asset_symbol}: the latest, and a time range.
    "price_feeds": {"asset_symbol": TAG, "timestamp": TIME, "price": DEC, "asset_id": TAG},
    # /api/trading/orderbook/{asset_id}: open orders by side and price level, quantities
    # summed; market analytics.
    "trading_orders": {"asset_id": TAG, "side": TAG, "status": TAG, "price": DEC,
                       "quantity": DEC, "filled_quantity": DEC, "user_id": TAG},
    # /api/manufacturing/orders/{id}/progress and the manufacturing analytics.
    "milestones": {"manufacturing_order_id": TAG, "status": TAG, "payment_amount": DEC,
                   "sequence": NUM},
    "manufacturing_orders": {"status": TAG, "component_type": TAG, "manufacturer_id": TAG,
                             "buyer_id": TAG, "total_price": DEC, "quantity": NUM},
    "quality_assurance": {"manufacturing_order_id": TAG, "result": TAG, "score": NUM,
                          "inspection_type": TAG, "defects_found": NUM},
    "escrows": {"status": TAG, "amount": DEC, "released_amount": DEC},
    # /api/governance/proposals/active and the tallies.
    "proposals": {"status": TAG, "voting_starts_at": TIME, "voting_ends_at": TIME,
                  "proposal_type": TAG},
    "votes": {"proposal_id": TAG, "choice": TAG, "weight": DEC, "voter_id": TAG},
    # /api/blockchain/transactions/{tx_hash}; market volume from confirmed trades.
    "transactions": {"tx_hash": TAG, "status": TAG, "tx_type": TAG, "amount": DEC,
                     "token_symbol": TAG, "from_address": TAG, "to_address": TAG},
}  # fmt: skip
CASELESS = {
    ("users", "wallet_address"),
    ("users", "username"),
    ("assets", "contract_address"),
    ("escrows", "contract_address"),
    ("transactions", "tx_hash"),
    ("transactions", "from_address"),
    ("transactions", "to_address"),
    ("votes", "tx_hash"),
}
# Every list sorts by creation time; these sort by more.
SORTS = {
    **{entity: {"created_at"} for entity in FIELDS},
    "users": {"created_at", "reputation_score"},
    "price_feeds": {"created_at", "price", "timestamp"},
    "trading_orders": {"created_at", "price", "quantity", "filled_quantity"},
    "milestones": {"created_at", "sequence"},
    "quality_assurance": {"created_at", "inspected_at"},
    "proposals": {"created_at", "voting_starts_at", "voting_ends_at"},
}
OWNERS = {
    "users": "id",
    "assets": "issuer_id",
    "trading_orders": "user_id",
    "manufacturing_orders": "buyer_id",
    "proposals": "proposer_id",
}
OPEN_REFS = {
    "trading_orders": ("asset_id",),
    "manufacturing_orders": ("manufacturer_id", "asset_id"),
}
ADMIN_ONLY = {"wallet_address", "reputation_score", "kyc_verified", "is_active", "created_at"}


def demo() -> dict[str, list[dict[str, Any]]]:
    data: dict[str, list[dict[str, Any]]] = orjson.loads(DEMO.read_bytes())
    return data


def base(spec: EntitySpec) -> dict[str, Any]:
    return dict(demo()[spec.collection][0])


def accepts(spec: EntitySpec, doc: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return for_create(spec, doc, doc["id"])
    except ValidationFailed:
        return None


def stored(entity: str, **changes: Any) -> dict[str, Any] | None:
    spec = CONSTRUCT.schema.entity(entity)
    return accepts(spec, {**base(spec), **changes})


def value(entity: str, name: str, sent: Any) -> Any:
    doc = stored(entity, **{name: sent})
    assert doc is not None, (entity, name, sent)
    return doc[name]


# --- declarations ----------------------------------------------------------------------


def test_the_system_is_described_for_the_engine() -> None:
    assert (
        CONSTRUCT.name,
        CONSTRUCT.title,
        CONSTRUCT.namespace,
        CONSTRUCT.principal,
        CONSTRUCT.demo,
    ) == ("construct", "The Construct", "construct:", "users", "construct")
    assert "construct" in names()
    served = load("construct")
    uuid = "c0010000-0000-4000-8000-000000000001"
    assert served.users.key(uuid) == f"construct:users:{uuid}"
    assert served.schema.entity("trading_orders").key(uuid) == f"construct:trading_orders:{uuid}"
    for spec in TABLES:
        assert spec.name == spec.collection == spec.prefix


def test_exactly_the_seeds_collections_in_declared_order_with_uuid_ids() -> None:
    seed = {
        "users", "assets", "transactions", "price_feeds", "trading_orders", "escrows",
        "manufacturing_orders", "milestones", "quality_assurance", "proposals", "votes",
    }  # fmt: skip
    assert {e.collection for e in TABLES} == seed
    assert [e.name for e in TABLES] == list(FIELDS)
    for spec in TABLES:
        assert list(spec.model.model_fields) == ["id", *FIELDS[spec.name]], spec.name
        assert (spec.id_field, spec.id_strategy) == ("id", IdStrategy.UUID)
    # Targets before referrers: the loader creates in declaration order.
    order = [e.name for e in TABLES]
    for spec in TABLES:
        for r in spec.references:
            assert order.index(r.target) <= order.index(spec.name), (spec.name, r.field)


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


def test_enums_take_exactly_their_values() -> None:
    for (entity, name), values in ENUMS.items():
        for option in values:
            assert stored(entity, **{name: option}) is not None, (entity, name, option)
        for sent in ("other-value", values[0].upper(), f" {values[0]}", 1):
            assert stored(entity, **{name: sent}) is None, (entity, name, sent)


def test_statuses_move_only_along_their_transitions() -> None:
    declared = {
        spec.name: {old: set(new) for old, new in spec.transitions.allowed.items()}
        for spec in TABLES
        if spec.transitions is not None
    }
    assert declared == TRANSITIONS
    for spec in TABLES:
        if spec.transitions is None:
            continue
        assert spec.transitions.field == "status"
        states = ENUMS.get((spec.name, "status"), ())
        allowed = TRANSITIONS[spec.name]
        assert set(allowed) | {s for new in allowed.values() for s in new} <= set(states)
        for old in states:
            for new in states:
                permitted = old == new or new in allowed.get(old, set())
                assert spec.transitions.permits(old, new) == permitted, (spec.name, old, new)


def test_the_fields_the_read_api_needs_are_indexed() -> None:
    for entity, fields in ROUTE_FIELDS.items():
        spec = CONSTRUCT.schema.entity(entity)
        for name, kind in fields.items():
            indexed = spec.indexed(name)
            assert indexed is not None and indexed.kind is kind, (entity, name)
    for spec in TABLES:
        caseless = {(spec.name, f.name) for f in spec.fields if not f.case_sensitive}
        assert caseless == {c for c in CASELESS if c[0] == spec.name}, spec.name
        sortable = {f.name for f in spec.fields if f.sortable}
        assert sortable == {"id", *SORTS[spec.name]}, spec.name


def test_updated_at_is_touched_on_every_write() -> None:
    for spec in TABLES:
        has = "updated_at" in spec.model.model_fields
        assert spec.touch_on_update == (("updated_at",) if has else ()), spec.name


def test_owners_open_references_and_admin_only_fields() -> None:
    assert {s.name: s.owner for s in TABLES if s.owner is not None} == OWNERS
    assert {s.name: s.open_refs for s in TABLES if s.open_refs} == OPEN_REFS
    assert not any(s.admin_read for s in TABLES)  # a chain's records are public
    assert CONSTRUCT.role_fields == () and CONSTRUCT.admin_user is None
    assert set(CONSTRUCT.admin_only_fields) == ADMIN_ONLY
    assert set(CONSTRUCT.users.model.model_fields) >= ADMIN_ONLY


# --- kinds -----------------------------------------------------------------------------


def test_prices_and_quantities_are_exact_decimals_15_6() -> None:
    assert value("trading_orders", "price", "118.5") == "118.500000"
    assert value("trading_orders", "price", 0.1) == "0.100000"
    assert value("trading_orders", "quantity", "999999999.999999") == "999999999.999999"
    for refused in ("0", "-1", "1.0000001", "1000000000", "abc", True):
        assert stored("trading_orders", price=refused) is None, refused
    assert stored("trading_orders", quantity="0") is None  # an order is for something
    assert value("trading_orders", "filled_quantity", "0") == "0.000000"
    assert value("votes", "weight", "642.5") == "642.500000"
    assert value("users", "reputation_score", "82.5") == "82.50"
    for refused in ("100.01", "-0.01", "1.001"):
        assert stored("users", reputation_score=refused) is None, refused
    assert value("proposals", "approval_threshold", "0.6") == "0.6000"
    assert stored("proposals", approval_threshold="1.5") is None


def test_addresses_hashes_and_symbols() -> None:
    checksum = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    assert value("users", "wallet_address", checksum) == checksum  # stored as sent
    for refused in ("5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "0x123", checksum + "0", "0xZZ"):
        assert stored("users", wallet_address=refused) is None, refused
    assert stored("transactions", tx_hash="0x" + "ab" * 32) is not None
    assert stored("transactions", tx_hash="0x" + "ab" * 31) is None
    assert stored("assets", symbol="HDA20") is not None
    for refused in ("hda20", "H", "20HDA", "HDA-20", "ABCDEFGHIJKLM"):
        assert stored("assets", symbol=refused) is None, refused


# --- demo data -------------------------------------------------------------------------


def test_demo_records_are_stored_as_written() -> None:
    """Every record is valid, complete (explicit id and times) and already in stored form,
    so a second load-demo finds each one present and unchanged."""
    data = demo()
    assert set(data) == {spec.collection for spec in TABLES}
    for spec in TABLES:
        records = data[spec.collection]
        assert records, spec.collection
        for record in records:
            assert list(record) == list(spec.model.model_fields), (spec.name, record["id"])
            assert for_create(spec, record, record["id"]) == record


def test_demo_references_and_uniques_hold() -> None:
    data = demo()
    ids: dict[str, set[str]] = {}
    for spec in TABLES:  # the loader's order
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


def test_the_demo_world_is_coherent() -> None:
    data = demo()
    assets = {a["id"]: a for a in data["assets"]}
    # Every quote carries its asset's symbol, and every symbol has a price history.
    for feed in data["price_feeds"]:
        assert feed["asset_symbol"] == assets[feed["asset_id"]]["symbol"]
    per_symbol = defaultdict(list)
    for feed in data["price_feeds"]:
        per_symbol[feed["asset_symbol"]].append(feed["timestamp"])
    assert set(per_symbol) == {a["symbol"] for a in assets.values()}
    assert all(len(set(times)) >= 3 for times in per_symbol.values())
    # A book on two assets or more: several price levels on each side.
    levels: dict[tuple[str, str], set[str]] = defaultdict(set)
    for order in data["trading_orders"]:
        if order["status"] in ("open", "partially_filled"):
            levels[order["asset_id"], order["side"]].add(order["price"])
            assert Decimal(order["filled_quantity"]) < Decimal(order["quantity"])
        if order["status"] == "filled":
            assert order["filled_quantity"] == order["quantity"] and order["filled_at"]
    booked = {asset for asset, _ in levels if len(levels[asset, "buy"]) >= 2}
    booked &= {asset for asset, _ in levels if len(levels[asset, "sell"]) >= 2}
    assert len(booked) >= 2
    statuses = {o["status"] for o in data["trading_orders"]}
    assert {"open", "partially_filled", "filled", "cancelled"} <= statuses
    # Milestones add up to their order's price, in several states; escrows released what
    # was paid.
    paid: dict[str, Decimal] = defaultdict(Decimal)
    for order in data["manufacturing_orders"]:
        own = [m for m in data["milestones"] if m["manufacturing_order_id"] == order["id"]]
        assert sum(Decimal(m["payment_amount"]) for m in own) == Decimal(order["total_price"])
        assert sorted(m["sequence"] for m in own) == list(range(1, len(own) + 1))
        paid[order["id"]] = sum(
            (Decimal(m["payment_amount"]) for m in own if m["status"] == "paid"), Decimal(0)
        )
    assert len({m["status"] for m in data["milestones"]}) >= 4
    for escrow in data["escrows"]:
        if escrow["manufacturing_order_id"] is not None:
            released = Decimal(escrow["released_amount"])
            assert released == paid[escrow["manufacturing_order_id"]]
    assert {q["result"] for q in data["quality_assurance"]} == {"pass", "fail", "conditional"}
    # An active proposal and a closed one, both with votes.
    voted = {v["proposal_id"] for v in data["votes"]}
    by_status = {p["status"]: p["id"] for p in data["proposals"]}
    assert by_status["active"] in voted and by_status["passed"] in voted


# --- the demo world through the engine (fakeredis) --------------------------------------


async def _loaded() -> tuple[Keyspace, fakeredis.FakeAsyncRedis]:
    client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), protocol=2)
    ks = Keyspace(client, load("construct").schema)
    await ks.setup()
    data = demo()
    for spec in ks.schema.entities:
        for record in data[spec.collection]:
            await ks.create(spec, record)
    return ks, client


async def test_the_demo_world_loads_and_looks_up_as_declared() -> None:
    ks, client = await _loaded()
    try:
        entity = ks.schema.entity
        users = entity("users")
        aria = demo()["users"][0]
        # GET /api/users/wallet/{wallet_address}: found whatever the case of the hex digits.
        for spelling in (aria["wallet_address"].lower(), aria["wallet_address"].upper()[2:]):
            address = spelling if spelling.startswith("0x") else "0x" + spelling
            page = await ks.list(users, parse(users, {"wallet_address": [address]}))
            assert [u["id"] for u in page.items] == [aria["id"]], address
        # ...and taken whatever the case: a second account on the same address is refused.
        other = {**demo()["users"][4], "id": "c0010000-0000-4000-8000-0000000000ff"}
        with pytest.raises(UniqueConflict):
            await ks.create(users, {**other, "wallet_address": aria["wallet_address"].lower()})
        # One vote per voter and proposal.
        vote = {k: v for k, v in demo()["votes"][0].items() if k != "id"}
        with pytest.raises(UniqueConflict):
            await ks.create(entity("votes"), vote)
        # A filled order never re-enters the book; a paid milestone stays paid.
        filled = next(o for o in demo()["trading_orders"] if o["status"] == "filled")
        with pytest.raises(InvalidTransition):
            await ks.patch(entity("trading_orders"), filled["id"], {"status": "open"})
        paid = next(m for m in demo()["milestones"] if m["status"] == "paid")
        with pytest.raises(InvalidTransition):
            await ks.patch(entity("milestones"), paid["id"], {"status": "in_progress"})
        bid = next(o for o in demo()["trading_orders"] if o["status"] == "open")
        cancelled = await ks.patch(entity("trading_orders"), bid["id"], {"status": "cancelled"})
        assert cancelled.doc["status"] == "cancelled"
    finally:
        await client.aclose()


async def test_the_demo_world_deletes_as_declared() -> None:
    ks, client = await _loaded()
    try:
        entity = ks.schema.entity
        data = demo()
        # History restricts: a user who traded, an asset with orders, a proposal with votes,
        # an order an escrow secures, a milestone a payment settled.
        for collection, doc_id in [
            ("users", data["users"][0]["id"]),
            ("assets", data["assets"][0]["id"]),
            ("proposals", next(p["id"] for p in data["proposals"] if p["status"] == "active")),
            ("manufacturing_orders", data["manufacturing_orders"][0]["id"]),
            ("milestones", next(m["id"] for m in data["milestones"] if m["status"] == "paid")),
            ("trading_orders", data["escrows"][0]["trading_order_id"]),
        ]:
            with pytest.raises(HasDependents):
                await ks.delete(entity(collection), doc_id)
        # An asset with nothing but quotes takes its price series with it.
        sc8 = next(a for a in data["assets"] if a["symbol"] == "SC8")
        sc8_txs = [t for t in data["transactions"] if t["asset_id"] == sc8["id"]]
        for t in sc8_txs:  # its failed transfer first (transactions restrict)
            await ks.delete(entity("transactions"), t["id"])
        quotes = [f["id"] for f in data["price_feeds"] if f["asset_id"] == sc8["id"]]
        assert await ks.delete(entity("assets"), sc8["id"]) == 1 + len(quotes)
        for quote in quotes:
            with pytest.raises(NotFound):
                await ks.get(entity("price_feeds"), quote)
        # A manufacturing order nothing has paid for takes its milestones and inspections.
        pending = next(o for o in data["manufacturing_orders"] if o["status"] == "pending")
        parts = [
            m["id"] for m in data["milestones"] if m["manufacturing_order_id"] == pending["id"]
        ]
        assert parts
        inspection = {
            **{k: v for k, v in data["quality_assurance"][0].items() if k != "id"},
            "manufacturing_order_id": pending["id"],
            "milestone_id": parts[0],
        }
        qa = (await ks.create(entity("quality_assurance"), inspection)).doc["id"]
        assert await ks.delete(entity("manufacturing_orders"), pending["id"]) == 2 + len(parts)
        for doc_id in [*parts, qa]:
            collection = "milestones" if doc_id in parts else "quality_assurance"
            with pytest.raises(NotFound):
                await ks.get(entity(collection), doc_id)
        # Deleting an unpaid milestone keeps its inspection on the order.
        rejected = next(m for m in data["milestones"] if m["status"] == "rejected")
        inspected = [
            q["id"] for q in data["quality_assurance"] if q["milestone_id"] == rejected["id"]
        ]
        assert inspected
        await ks.delete(entity("milestones"), rejected["id"])
        for doc_id in inspected:
            kept = (await ks.get(entity("quality_assurance"), doc_id)).doc
            assert kept["milestone_id"] is None
            assert kept["manufacturing_order_id"] == rejected["manufacturing_order_id"]
        # A draft proposal without votes goes.
        draft = next(p for p in data["proposals"] if p["status"] == "draft")
        assert await ks.delete(entity("proposals"), draft["id"]) == 1
    finally:
        await client.aclose()
