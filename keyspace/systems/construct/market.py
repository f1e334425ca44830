"""The seed's ``trading`` schema: buy/sell orders for tokenized assets, and escrows.

"orders: Buy/sell orders for tokenized assets" and "escrows: Escrow contracts for secure
transactions"; the routes read one order and an asset's order book; the caches are
invalidated when "orders are filled or cancelled". The table is ``trading_orders`` (the
seed's ``trading.orders``): its manufacturing schema has an ``orders`` table too, and one
namespace cannot hold both under one name.

The order book of an asset (the seed's ``.../trading/orderbook/{asset_id}``, issue 16) is an
aggregation over this table: ``asset_id`` and ``status`` in (open, partially_filled) as
filters, grouped by ``side`` and ``price``, summing ``quantity`` and ``filled_quantity``
(what is left at a level is the first sum minus the second, exactly). No remaining-quantity
field is stored: it would be a second copy of the same fact that a write could let drift.

A member places and cancels its own orders (``owner="user_id"``, on any listed asset:
``open_refs``); fills (``filled_quantity``, ``filled_at``) are the matching engine's
(``admin_fields``), and a fill never passes its quantity (``checks``). Escrows mirror a
contract's state between two parties, so only the platform writes them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ...declare import Check, enum, json, ref, table, timestamp
from ...schema import IdStrategy
from .common import RESTRICT, address, amount, created, symbol, transitions, updated


def _within(part: str, whole: str) -> Check:
    """``part`` never exceeds ``whole`` (two amounts of one document)."""

    def holds(doc: Any) -> bool:
        return Decimal(getattr(doc, part)) <= Decimal(getattr(doc, whole))

    return Check(f"{part} must not exceed {whole}", holds)


ORDER_STATUSES = ("open", "partially_filled", "filled", "cancelled", "expired")

TRADING_ORDERS = table(
    "trading_orders",
    collection="trading_orders",
    id=IdStrategy.UUID,
    fields=(
        # Orders are trading history: neither the user nor the asset is deleted under them.
        ref("user_id", "users", on_delete=RESTRICT, index=True, relation="trading_orders"),
        ref("asset_id", "assets", on_delete=RESTRICT, index=True, relation="trading_orders"),
        enum("side", ("buy", "sell"), index=True),
        # A market order still carries a price: the worst one it accepts (its protection),
        # so every order has a level and the book never holds a priceless row.
        enum("order_type", ("limit", "market"), default="limit", index=True),
        amount("price", positive=True, sortable=True),
        # Sortable: the order book sums both from the index's own copy, reading no JSON.
        amount("quantity", positive=True, sortable=True),
        amount("filled_quantity", default="0", sortable=True),
        symbol("quote_currency", default="USDC"),
        enum("status", ORDER_STATUSES, default="open", index=True),
        timestamp("expires_at", null=True, index=True),  # good-till-time; null: until cancelled
        timestamp("filled_at", null=True, index=True),
        timestamp("cancelled_at", null=True, index=True),
        created(),
        updated(),
    ),
    owner="user_id",
    open_refs=("asset_id",),  # any listed asset is traded, not only one's own
    # An order never fills past its quantity: the book's open quantity at a level is the sum
    # of quantities less the sum of fills, so one overfilled order would hide others'.
    checks=(_within("filled_quantity", "quantity"),),
    # Fills are the matching engine's (an admin token); a member places and cancels.
    admin_fields=("filled_quantity", "filled_at"),
    # Filled, cancelled and expired are final: a closed order never re-enters the book.
    transitions=transitions(
        "status",
        {
            "open": ("partially_filled", "filled", "cancelled", "expired"),
            "partially_filled": ("filled", "cancelled", "expired"),
        },
    ),
)

ESCROW_STATUSES = (
    "pending",  # created, awaiting the buyer's deposit
    "funded",
    "partially_released",  # a manufacturing escrow pays milestone by milestone
    "released",
    "refunded",
    "disputed",
    "cancelled",  # never funded
)

ESCROWS = table(
    "escrows",
    collection="escrows",
    id=IdStrategy.UUID,
    fields=(
        ref("buyer_id", "users", on_delete=RESTRICT, index=True, relation="buyer_escrows"),
        ref("seller_id", "users", on_delete=RESTRICT, index=True, relation="seller_escrows"),
        # What the escrow secures: a trade or a manufacturing order (at most one, by
        # convention; either may be null for an escrow agreed outside both).
        ref(
            "trading_order_id",
            "trading_orders",
            null=True,
            on_delete=RESTRICT,
            index=True,
            relation="escrows",
        ),
        ref(
            "manufacturing_order_id",
            "manufacturing_orders",
            null=True,
            on_delete=RESTRICT,  # money was promised against it
            index=True,
            relation="escrows",
        ),
        amount("amount", positive=True),
        amount("released_amount", default="0"),
        symbol("currency", default="USDC"),
        enum("status", ESCROW_STATUSES, default="pending", index=True),
        address("contract_address", null=True),  # the escrow contract on chain
        json("conditions", default={}),  # release conditions, as the contract states them
        timestamp("expires_at", null=True, index=True),
        timestamp("funded_at", null=True),
        timestamp("settled_at", null=True, index=True),  # released, refunded or cancelled
        created(),
        updated(),
    ),
    owner=None,  # the contract's state, mirrored by the platform; no party may assert it
    checks=(_within("released_amount", "amount"),),
    transitions=transitions(
        "status",
        {
            "pending": ("funded", "cancelled"),
            "funded": ("partially_released", "released", "refunded", "disputed"),
            "partially_released": ("released", "refunded", "disputed"),
            "disputed": ("partially_released", "released", "refunded"),
        },
    ),
)
