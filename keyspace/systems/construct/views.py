"""The Construct's read API (the seed's "API Endpoints"), declared: each path is a view
(keyspace.views) of documents, declared aggregations and lists; answers.py shapes them.

``/api/users/{user_id}`` and ``/api/assets/{asset_id}`` are the collections' own reads. The
seed's cache categories give the TTLs (``CACHE_TTLS``); which category each path takes:

- user (600 s): a user's stats; governance (proposals are members' documents)
- asset (300 s): the asset search
- trading (60 s): the order book, and a manufacturing order's progress (both move with
  every fill or milestone)
- price (30 s): the latest price and its history
- analytics (1800 s): the market and manufacturing analytics

A cached answer is dropped by any write to a collection it reads, in the write's own commit
(keyspace.cache), which covers every event the seed names (a completed transaction, a
reputation change, an order filled or cancelled); the TTL only bounds memory. Reads of one
document (by id, wallet or tx hash) are never cached: the document is one Redis read away,
sent with its ETag.
"""

from __future__ import annotations

from ...aggregate import Aggregate
from ...views import Groups, One, Rows, View
from . import answers

CACHE_TTLS = {"user": 600, "asset": 300, "trading": 60, "price": 30, "analytics": 1800}
DEPTH = 100  # price levels per side of an order book
OPEN = (("status", "open"), ("status", "partially_filled"))

AGGREGATES = (
    # a user's stats
    Aggregate("user_orders", "trading_orders", ("status",)),
    Aggregate(
        "user_transactions",
        "transactions",
        ("token_symbol",),
        ("count", "sum:amount"),
        (("status", "confirmed"),),
    ),
    Aggregate("user_assets", "assets"),
    Aggregate("user_placed", "manufacturing_orders", ("status",)),
    Aggregate("user_jobs", "manufacturing_orders", ("status",)),
    Aggregate("user_proposals", "proposals"),
    Aggregate("user_votes", "votes", (), ("count", "sum:weight")),
    # the order book: open quantity per price level, best levels first
    *(
        Aggregate(
            f"orderbook_{name}",
            "trading_orders",
            ("quote_currency", "price"),
            ("count", "sum:quantity", "sum:filled_quantity"),
            (("side", side), *OPEN),
            limit=DEPTH,
            descending=name == "bids",
        )
        for name, side in (("bids", "buy"), ("asks", "sell"))
    ),
    # a manufacturing order's progress
    Aggregate("order_milestones", "milestones", ("status",), ("count", "sum:payment_amount")),
    # a proposal's tallies
    Aggregate("proposal_tallies", "votes", ("choice",), ("count", "sum:weight")),
    # market analytics
    Aggregate("market_assets", "assets", ("asset_type",)),
    Aggregate("market_open_orders", "trading_orders", ("side",), filters=OPEN),
    Aggregate(
        "market_trades",
        "transactions",
        ("token_symbol",),
        ("count", "sum:amount"),
        (("status", "confirmed"), ("tx_type", "trade")),
    ),
    Aggregate("market_users", "users", ("kyc_verified",)),
    # manufacturing analytics
    Aggregate("manufacturing_status", "manufacturing_orders", ("status",)),
    Aggregate("manufacturing_components", "manufacturing_orders", ("component_type",)),
    Aggregate("manufacturing_value", "manufacturing_orders", ("currency",), ("sum:total_price",)),
    Aggregate(
        "manufacturing_milestones", "milestones", ("status",), ("count", "sum:payment_amount")
    ),
    Aggregate("manufacturing_quality", "quality_assurance", ("result",)),
    Aggregate("manufacturing_scores", "quality_assurance", (), ("avg:score", "sum:defects_found")),
)

VIEWS = (
    View(
        "user_by_wallet",
        "/api/users/wallet/{wallet_address}",
        "The user holding a wallet address (any case of its hex digits)",
        "users",
        (("user", One("users", "wallet_address", "wallet_address")),),
    ),
    View(
        "user_stats",
        "/api/users/{user_id}/stats",
        "A user's activity: orders, transactions, assets, manufacturing and governance",
        "users",
        (
            ("user", One("users", "user_id")),
            ("orders", Groups("user_orders", (("user_id", "user_id"),))),
            ("transactions", Groups("user_transactions", (("user_id", "user_id"),))),
            ("assets", Groups("user_assets", (("issuer_id", "user_id"),))),
            ("placed", Groups("user_placed", (("buyer_id", "user_id"),))),
            ("jobs", Groups("user_jobs", (("manufacturer_id", "user_id"),))),
            ("proposals", Groups("user_proposals", (("proposer_id", "user_id"),))),
            ("votes", Groups("user_votes", (("voter_id", "user_id"),))),
        ),
        answers.UserStats,
        answers.user_stats,
        "user",
    ),
    View(
        "asset_search",
        "/api/assets/search",
        "Search assets: full text in q, asset_type and every other filter of the asset list",
        "assets",
        (("assets", Rows("assets", open=True)),),
        category="asset",
    ),
    View(
        "trading_order",
        "/api/trading/orders/{order_id}",
        "One trading order (as GET /api/trading_orders/{id})",
        "trading_orders",
        (("order", One("trading_orders", "order_id")),),
    ),
    View(
        "order_book",
        "/api/trading/orderbook/{asset_id}",
        f"An asset's open orders by price level: bids descending, asks ascending "
        f"(at most {DEPTH} levels a side)",
        "trading_orders",
        (
            ("asset", One("assets", "asset_id")),
            ("bids", Groups("orderbook_bids", (("asset_id", "asset_id"),))),
            ("asks", Groups("orderbook_asks", (("asset_id", "asset_id"),))),
        ),
        answers.OrderBook,
        answers.order_book,
        "trading",
    ),
    View(
        "manufacturing_order",
        "/api/manufacturing/orders/{order_id}",
        "One manufacturing order (as GET /api/manufacturing_orders/{id})",
        "manufacturing_orders",
        (("order", One("manufacturing_orders", "order_id")),),
    ),
    View(
        "manufacturing_progress",
        "/api/manufacturing/orders/{order_id}/progress",
        "A manufacturing order's progress: milestones done vs total, payments released",
        "manufacturing_orders",
        (
            ("order", One("manufacturing_orders", "order_id")),
            ("milestones", Groups("order_milestones", (("manufacturing_order_id", "order_id"),))),
        ),
        answers.Progress,
        answers.progress,
        "trading",
    ),
    # Before the proposal route: aiohttp tries routes in order, and {proposal_id} would take it.
    View(
        "active_proposals",
        "/api/governance/proposals/active",
        "Proposals open for voting (status active), the soonest to close first",
        "proposals",
        (
            (
                "proposals",
                Rows("proposals", (("status", "active"),), sort="voting_ends_at", open=True),
            ),
        ),
        category="user",
    ),
    View(
        "proposal_details",
        "/api/governance/proposals/{proposal_id}",
        "A proposal with its vote tallies",
        "proposals",
        (
            ("proposal", One("proposals", "proposal_id")),
            ("tallies", Groups("proposal_tallies", (("proposal_id", "proposal_id"),))),
        ),
        answers.ProposalDetails,
        answers.proposal_details,
        "user",
    ),
    View(
        "transaction_by_hash",
        "/api/blockchain/transactions/{tx_hash}",
        "The transaction with a hash (any case of its hex digits)",
        "transactions",
        (("transaction", One("transactions", "tx_hash", "tx_hash")),),
    ),
    View(
        "price",
        "/api/blockchain/prices/{asset_symbol}",
        "The latest price of a symbol; with from, to (or any price list parameter), its history",
        "price_feeds",
        (
            (
                "latest",
                Rows(
                    "price_feeds",
                    bind=(("asset_symbol", "asset_symbol"),),
                    sort="-timestamp",
                    limit=1,
                ),
            ),
            (
                "history",
                Rows(
                    "price_feeds",
                    bind=(("asset_symbol", "asset_symbol"),),
                    sort="-timestamp",
                    open=True,
                    renames=(("from", "timestamp_min"), ("to", "timestamp_max")),
                    when_asked=True,
                ),
            ),
        ),
        answers.Price,
        answers.price,
        "price",
    ),
    View(
        "market_analytics",
        "/api/analytics/market",
        "Market analytics: assets by type, the open book, confirmed trade volume, users",
        "analytics",
        (
            ("assets", Groups("market_assets")),
            ("open_orders", Groups("market_open_orders")),
            ("trades", Groups("market_trades")),
            ("users", Groups("market_users")),
        ),
        answers.MarketAnalytics,
        answers.market,
        "analytics",
    ),
    View(
        "manufacturing_analytics",
        "/api/analytics/manufacturing",
        "Manufacturing analytics: orders by status and component, milestones, inspections",
        "analytics",
        (
            ("orders", Groups("manufacturing_status")),
            ("components", Groups("manufacturing_components")),
            ("value", Groups("manufacturing_value")),
            ("milestones", Groups("manufacturing_milestones")),
            ("quality", Groups("manufacturing_quality")),
            ("scores", Groups("manufacturing_scores")),
        ),
        answers.ManufacturingAnalytics,
        answers.manufacturing,
        "analytics",
    ),
)
