"""The Construct, declared: the tables of seed 002's four PostgreSQL schemas.

The seed (``the_construct``: a blockchain layer for tokenized robotics components) names
eleven tables in four schemas and gives no column:

- ``blockchain``: users, assets, transactions, price_feeds (blockchain.py)
- ``trading``: orders, escrows (market.py; ``orders`` is served as ``trading_orders``)
- ``manufacturing``: orders, milestones, quality_assurance (manufacturing.py;
  ``orders`` is served as ``manufacturing_orders``)
- ``governance``: proposals, votes (governance.py)

Every field is inferred from what the seed says (its table descriptions, its read API's
paths and parameters, its indexes and its cache-invalidation events) and from what a user of
such a platform expects; docs/systems.md ("The Construct") records each field and where it
comes from. One namespace holds all four schemas, so the two ``orders`` tables get their
schema's name as a prefix. Keys read ``construct:<table>:<uuid>``.

As for the other PostgreSQL seeds: UUID ids, ``created_at`` on every table (a filter and a
sort field) and ``updated_at`` touched on every write where rows change. Statuses move only
along declared transitions (final states stay final). History restricts deletes
(transactions, orders, votes); owned parts cascade (milestones and inspections with their
manufacturing order, price quotes with their asset).

The seed's read API is views.py: views (keyspace.views) of documents, declared aggregations
and lists, shaped by answers.py and cached under the seed's per-category TTLs.
"""

from __future__ import annotations

from ...schema import Schema
from ...system import System
from .blockchain import ASSETS, PRICE_FEEDS, TRANSACTIONS, USERS
from .governance import PROPOSALS, VOTES
from .manufacturing import MANUFACTURING_ORDERS, MILESTONES, QUALITY_ASSURANCE
from .market import ESCROWS, TRADING_ORDERS
from .views import AGGREGATES, CACHE_TTLS, VIEWS

SYSTEM = System(
    name="construct",
    title="The Construct",
    # Referenced tables before their referrers: load-demo creates in this order.
    # Transactions come last: they may name an order, an escrow or a milestone.
    schema=Schema(
        entities=(
            USERS,
            ASSETS,
            PRICE_FEEDS,
            TRADING_ORDERS,
            MANUFACTURING_ORDERS,
            ESCROWS,
            MILESTONES,
            QUALITY_ASSURANCE,
            PROPOSALS,
            VOTES,
            TRANSACTIONS,
        )
    ),
    namespace="construct:",
    principal="users",
    # The seed names no role: every user is a member; admin work (the oracles, the chain
    # indexer, the matching engine, listing and payments) is the operator's token.
    role_fields=(),
    # What the platform verifies or measures about an account: the wallet (proven by a
    # signature at sign-up; changing it would move the account's identity), the reputation
    # score ("user reputation changes" is the platform's event), KYC, whether the account is
    # active, and its age.
    admin_only_fields=(
        "wallet_address",
        "reputation_score",
        "kyc_verified",
        "is_active",
        "created_at",
    ),
    demo="construct",
    aggregates=AGGREGATES,
    views=VIEWS,
    cache_ttls=CACHE_TTLS,
)
