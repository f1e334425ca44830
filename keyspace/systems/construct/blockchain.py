"""The seed's ``blockchain`` schema: users, assets, price feeds and transactions.

The seed says: "users: User accounts with wallet addresses and reputation scores",
"assets: Tokenized robotics components with specifications", "transactions: Blockchain
transaction records", "price_feeds: Real-time price data from oracles", and its indexes
cover "User lookups by wallet address", "Asset searches by type and issuer" and
"Transaction history". Its routes look users up by wallet, assets by text and
``asset_type``, transactions by ``tx_hash`` and prices by ``asset_symbol``. Every field
below is inferred from those lines; docs/systems.md says which line each comes from.

A user *is* a wallet here: the account's identity is its address (unique, caseless), and
no email or name is required. What the platform measures or verifies about a user
(reputation, KYC, whether the account is active) is admin-only (``System.admin_only_fields``
in ``__init__``). Transactions and price feeds are records of the chain and of the oracles:
only the platform (an admin token) writes them, and a transaction is never deleted while
anything it settled exists (its references restrict).
"""

from __future__ import annotations

from ...declare import (
    boolean,
    decimal,
    enum,
    integer,
    json,
    ref,
    string,
    table,
    text,
    timestamp,
)
from ...schema import IdStrategy
from .common import (
    CASCADE,
    RESTRICT,
    TX_HASH,
    address,
    amount,
    created,
    symbol,
    transitions,
    updated,
)

# What a tokenized robotics component can be. Also a manufacturing order's component_type,
# so market and manufacturing analytics group by the same words.
ASSET_TYPES = (
    "actuator",
    "sensor",
    "controller",
    "power_system",
    "structural",
    "end_effector",
    "robot",
    "design",  # a blueprint or CAD file, tokenized as an asset of its own
    "software",
    "other",
)

USERS = table(
    "users",
    collection="users",
    id=IdStrategy.UUID,
    fields=(
        # GET /api/users/wallet/{wallet_address}: one account per address, whatever the
        # case of its hex digits. Required: signing in is proving a wallet.
        address("wallet_address", unique=True),
        string(
            "username", null=True, max_length=50, unique=True, case_insensitive=True, index=True
        ),
        text("display_name", null=True, max_length=100, multiline=False),
        text("bio", null=True, max_length=2000),
        string("avatar_url", null=True),
        # Who the account trades as: the manufacturing analytics group by it, and a buyer
        # looks for manufacturers among these. Self-declared (verification is kyc_verified).
        enum(
            "account_type",
            ("individual", "organization", "manufacturer"),
            default="individual",
            index=True,
        ),
        # "reputation scores": 0 to 100 with two places; a new account starts at 0. Filter
        # and sort (/api/users?sort=-reputation_score), and changing it invalidates the
        # seed's user caches (issue 16).
        decimal(
            "reputation_score",
            max_digits=5,
            places=2,
            ge=0,
            le=100,
            default="0",
            index=True,
            sortable=True,
        ),
        boolean("kyc_verified", default=False, index=True),
        boolean("is_active", default=True, index=True),
        json("profile", default={}),  # links, socials, preferences: free JSON
        created(),
        updated(),
        timestamp("last_active_at", null=True, index=True),
    ),
    owner="id",
)

ASSETS = table(
    "assets",
    collection="assets",
    id=IdStrategy.UUID,
    fields=(
        text("name", max_length=200, multiline=False),
        # GET /api/blockchain/prices/{asset_symbol} names an asset by its ticker: unique,
        # upper case only, so one spelling and an exact tag.
        symbol("symbol", unique=True),
        text("description", null=True),
        # /api/assets/search?q=&asset_type=: q over name and description, asset_type a tag.
        enum("asset_type", ASSET_TYPES, index=True),
        # "Asset searches by type and issuer": the user who tokenized it, and owns the row.
        ref("issuer_id", "users", on_delete=RESTRICT, index=True, relation="assets"),
        json("specifications", default={}),  # "with specifications": free JSON
        enum("token_standard", ("erc20", "erc721", "erc1155"), default="erc1155", index=True),
        address("contract_address", null=True),
        string("token_id", null=True, max_length=78),  # a uint256 in decimal
        amount("total_supply", positive=True, index=False),
        string("metadata_uri", null=True),  # ipfs://... of the token's metadata
        # Listing: pending until the platform lists it; suspended trading can resume;
        # delisted is final (orders and history keep pointing at it).
        enum(
            "status",
            ("pending", "active", "suspended", "delisted"),
            default="pending",
            index=True,
        ),
        created(),
        updated(),
    ),
    owner="issuer_id",
    admin_fields=("status",),  # listing is the platform's (governance), not the issuer's
    transitions=transitions(
        "status",
        {
            "pending": ("active", "delisted"),
            "active": ("suspended", "delisted"),
            "suspended": ("active", "delisted"),
        },
    ),
)

PRICE_FEEDS = table(
    "price_feeds",
    collection="price_feeds",
    id=IdStrategy.UUID,
    fields=(
        # A price series belongs to its asset: deleting an asset (only possible before
        # anything traded it) takes its quotes with it.
        ref("asset_id", "assets", on_delete=CASCADE, index=True, relation="price_feeds"),
        # The asset's ticker, kept on each quote: GET /api/blockchain/prices/{asset_symbol}
        # is ?asset_symbol=S&sort=-timestamp (latest first; timestamp_min/_max for history).
        symbol("asset_symbol"),
        amount("price", positive=True, sortable=True),
        symbol("quote_currency", default="USD"),
        amount("volume_24h", null=True, index=False),
        # The oracle that reported it ("chainlink", "construct-matching"): open.
        string("source", max_length=50, index=True),
        timestamp("timestamp", index=True, sortable=True),  # when the oracle observed it
        created(),
    ),
    # An oracle's replayed report is the same quote, not a second one.
    unique_together=(("asset_symbol", "source", "timestamp"),),
    owner=None,  # the oracles' data, written with the platform's token
)

TRANSACTIONS = table(
    "transactions",
    collection="transactions",
    id=IdStrategy.UUID,
    fields=(
        # GET /api/blockchain/transactions/{tx_hash}: one record per hash, caseless.
        string(
            "tx_hash",
            max_length=66,
            pattern=TX_HASH,
            unique=True,
            case_insensitive=True,
            index=True,
        ),
        enum(
            "tx_type",
            (
                "mint",
                "transfer",
                "trade",
                "escrow_deposit",
                "escrow_release",
                "escrow_refund",
                "milestone_payment",
                "governance",
            ),
            index=True,
        ),
        # "Transactions are completed" invalidates caches: pending until mined.
        enum("status", ("pending", "confirmed", "failed"), default="pending", index=True),
        address("from_address"),
        address("to_address"),
        # Transaction history: what it concerns. Each is optional (a transfer names no
        # order) and restricts: history stays while what it settled exists.
        ref("user_id", "users", null=True, on_delete=RESTRICT, index=True, relation="transactions"),
        ref(
            "asset_id", "assets", null=True, on_delete=RESTRICT, index=True, relation="transactions"
        ),
        ref(
            "trading_order_id",
            "trading_orders",
            null=True,
            on_delete=RESTRICT,
            index=True,
            relation="transactions",
        ),
        ref(
            "escrow_id",
            "escrows",
            null=True,
            on_delete=RESTRICT,
            index=True,
            relation="transactions",
        ),
        ref(
            "milestone_id",
            "milestones",
            null=True,
            on_delete=RESTRICT,
            index=True,
            relation="transactions",
        ),
        amount("amount"),
        symbol("token_symbol"),  # what moved: a stablecoin ("USDC") or an asset's ticker
        amount("fee", default="0", index=False),  # the network fee, in the chain's coin
        integer("block_number", null=True, ge=0, index=True),
        json("metadata", default={}),
        created(),
        updated(),
        timestamp("confirmed_at", null=True, index=True),
    ),
    owner=None,  # the chain's record, written by the platform's indexer
    transitions=transitions("status", {"pending": ("confirmed", "failed")}),
)

__all__ = ["ASSETS", "ASSET_TYPES", "PRICE_FEEDS", "TRANSACTIONS", "USERS"]
