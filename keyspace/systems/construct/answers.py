"""The answers of The Construct's computed read routes (views.py): their models, for the
OpenAPI document, and the pure shapes building them from the views' parts.

Amounts stay strings with six places, as documents carry them; a remaining quantity is the
exact difference of two exact sums (keyspace.aggregate), never a float.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from ...aggregate import Result
from ...errors import NotFound
from ...views import Values
from .blockchain import PRICE_FEEDS
from .common import PLACES
from .governance import PROPOSALS

_QUANTUM = Decimal(1).scaleb(-PLACES)


def _amount(value: Decimal) -> str:
    return str(value.quantize(_QUANTUM))


def _label(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def _by(result: Result, field: str, metric: str = "count") -> dict[str, Any]:
    """One metric per value of the one group field, under its JSON text (``"null"``)."""
    return {_label(g.key[field]): g.values[metric] for g in result.groups}


def _total(result: Result, metric: str = "count") -> Any:
    """A metric over every group: counts add up; sums of decimals add exactly."""
    values = [g.values[metric] for g in result.groups if g.values[metric] is not None]
    if metric == "count":
        return sum(values)
    return _amount(sum((Decimal(v) for v in values), Decimal(0)))


def _one(result: Result, metric: str) -> Any:
    (group,) = result.groups  # no group_by: exactly one group
    return group.values[metric]


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- /api/users/{user_id}/stats -------------------------------------------------------------


class TradingStats(_Answer):
    orders: int
    open_orders: int = Field(description="open or partially filled")
    by_status: dict[str, int]


class TransactionStats(_Answer):
    confirmed: int = Field(description="confirmed transactions the user initiated")
    volume: dict[str, str] = Field(description="confirmed amounts by token symbol")


class ManufacturingStats(_Answer):
    orders_placed: int
    orders_by_status: dict[str, int]
    jobs: int = Field(description="orders the user manufactures")
    jobs_by_status: dict[str, int]


class GovernanceStats(_Answer):
    proposals: int
    votes: int
    voting_weight: str


class UserStats(_Answer):
    """A user's activity, counted from what the platform records."""

    user_id: str
    wallet_address: str
    reputation_score: str | None
    member_since: str
    assets_issued: int
    trading: TradingStats
    transactions: TransactionStats
    manufacturing: ManufacturingStats
    governance: GovernanceStats


OPEN = ("open", "partially_filled")


def user_stats(values: Values) -> dict[str, Any]:
    p = values.parts
    user, orders = p["user"], _by(p["orders"], "status")
    return {
        "user_id": user["id"],
        "wallet_address": user["wallet_address"],
        "reputation_score": user.get("reputation_score"),
        "member_since": user["created_at"],
        "assets_issued": _one(p["assets"], "count"),
        "trading": {
            "orders": sum(orders.values()),
            "open_orders": sum(orders.get(s, 0) for s in OPEN),
            "by_status": orders,
        },
        "transactions": {
            "confirmed": _total(p["transactions"]),
            "volume": _by(p["transactions"], "token_symbol", "sum:amount"),
        },
        "manufacturing": {
            "orders_placed": _total(p["placed"]),
            "orders_by_status": _by(p["placed"], "status"),
            "jobs": _total(p["jobs"]),
            "jobs_by_status": _by(p["jobs"], "status"),
        },
        "governance": {
            "proposals": _one(p["proposals"], "count"),
            "votes": _one(p["votes"], "count"),
            "voting_weight": _one(p["votes"], "sum:weight") or _amount(Decimal(0)),
        },
    }


# --- /api/trading/orderbook/{asset_id} --------------------------------------------------------


class OrderBookLevel(_Answer):
    price: str
    quantity: str = Field(description="open quantity at this price: quantity - filled_quantity")
    orders: int
    quote_currency: str


class OrderBook(_Answer):
    """Open orders of an asset by price level: bids best (highest) first, asks best (lowest)
    first, each side at most ``DEPTH`` levels (``*_truncated``: more exist)."""

    asset_id: str
    symbol: str
    bids: list[OrderBookLevel]
    asks: list[OrderBookLevel]
    bids_truncated: bool
    asks_truncated: bool


def _levels(result: Result) -> list[dict[str, Any]]:
    out = []
    for g in result.groups:
        placed = Decimal(g.values["sum:quantity"])
        filled = Decimal(g.values["sum:filled_quantity"] or 0)
        if placed > filled:  # a level whose orders are all filled is not on the book
            out.append(
                {
                    "price": g.key["price"],
                    "quantity": _amount(placed - filled),
                    "orders": g.values["count"],
                    "quote_currency": g.key["quote_currency"],
                }
            )
    return out


def order_book(values: Values) -> dict[str, Any]:
    p = values.parts
    return {
        "asset_id": p["asset"]["id"],
        "symbol": p["asset"]["symbol"],
        "bids": _levels(p["bids"]),
        "asks": _levels(p["asks"]),
        "bids_truncated": p["bids"].truncated,
        "asks_truncated": p["asks"].truncated,
    }


# --- /api/manufacturing/orders/{order_id}/progress ----------------------------------------------

DONE = ("approved", "paid")  # a milestone accepted, paid or not


class MilestoneProgress(_Answer):
    total: int
    completed: int = Field(description="approved or paid")
    by_status: dict[str, int]


class PaymentProgress(_Answer):
    total: str = Field(description="the milestones' payments, as agreed")
    released: str = Field(description="the payments of paid milestones")
    currency: str


class Progress(_Answer):
    """How far a manufacturing order is: milestones done vs total, payments released."""

    order_id: str
    status: str
    percent_complete: int = Field(description="completed milestones / total, rounded down")
    milestones: MilestoneProgress
    payments: PaymentProgress


def progress(values: Values) -> dict[str, Any]:
    p = values.parts
    order, milestones = p["order"], p["milestones"]
    by_status = _by(milestones, "status")
    total = sum(by_status.values())
    done = sum(by_status.get(s, 0) for s in DONE)
    paid = next((g for g in milestones.groups if g.key["status"] == "paid"), None)
    return {
        "order_id": order["id"],
        "status": order["status"],
        "percent_complete": done * 100 // total if total else 0,
        "milestones": {"total": total, "completed": done, "by_status": by_status},
        "payments": {
            "total": _total(milestones, "sum:payment_amount"),
            "released": paid.values["sum:payment_amount"] if paid else _amount(Decimal(0)),
            "currency": order["currency"],
        },
    }


# --- /api/governance/proposals/{proposal_id} ----------------------------------------------------

CHOICES = ("for", "against", "abstain")


class VoteTally(_Answer):
    votes: int
    weight: str


class ProposalDetails(PROPOSALS.model):  # type: ignore[name-defined,misc]
    """A proposal with its vote tallies: every choice present, zero when nobody chose it."""

    tallies: dict[str, VoteTally]
    total_votes: int
    total_weight: str
    quorum_reached: bool = Field(description="total weight >= quorum")
    approval: str | None = Field(
        description="for / (for + against) weight, six places; null before any such vote"
    )


def proposal_details(values: Values) -> dict[str, Any]:
    p = values.parts
    proposal, tallies = p["proposal"], p["tallies"]
    votes, weights = _by(tallies, "choice"), _by(tallies, "choice", "sum:weight")
    shown = {
        c: {"votes": votes.get(c, 0), "weight": weights.get(c) or _amount(Decimal(0))}
        for c in CHOICES
    }
    weight = {c: Decimal(shown[c]["weight"]) for c in CHOICES}
    total = sum(weight.values(), Decimal(0))
    decided = weight["for"] + weight["against"]
    return {
        **proposal,
        "tallies": shown,
        "total_votes": sum(votes.values()),
        "total_weight": _amount(total),
        "quorum_reached": total >= Decimal(proposal["quorum"]),
        "approval": _amount(weight["for"] / decided) if decided else None,
    }


# --- /api/blockchain/prices/{asset_symbol} -------------------------------------------------------


if TYPE_CHECKING:
    PriceFeed = BaseModel
else:
    PriceFeed = PRICE_FEEDS.model  # the entity's own schema, not a copy


class PriceHistory(_Answer):
    items: list[PriceFeed]
    total: int
    next_cursor: str | None


class Price(_Answer):
    """The latest price of a symbol (any source), and its history in a time range when
    ``from`` or ``to`` is given."""

    asset_symbol: str
    price: str
    quote_currency: str
    timestamp: str
    source: str
    latest: PriceFeed
    history: PriceHistory | None


def price(values: Values) -> dict[str, Any]:
    p, symbol = values.parts, values.path["asset_symbol"]
    if not p["latest"].items:
        raise NotFound(f"no price for {symbol!r}")
    latest = p["latest"].items[0]
    history = p["history"]
    return {
        "asset_symbol": latest["asset_symbol"],
        "price": latest["price"],
        "quote_currency": latest["quote_currency"],
        "timestamp": latest["timestamp"],
        "source": latest["source"],
        "latest": latest,
        "history": None if history is None else history.body(),
    }


# --- /api/analytics/market and /api/analytics/manufacturing ------------------------------------


class MarketAssets(_Answer):
    total: int
    by_type: dict[str, int]


class MarketOrders(_Answer):
    open: int = Field(description="open or partially filled orders")
    buy: int
    sell: int


class MarketVolume(_Answer):
    transactions: int = Field(description="confirmed trades")
    by_token: dict[str, str] = Field(description="confirmed trade amounts by token symbol")


class MarketUsers(_Answer):
    total: int
    kyc_verified: int


class MarketAnalytics(_Answer):
    """The market at a glance: listed assets, the open book, traded volume, users."""

    assets: MarketAssets
    orders: MarketOrders
    volume: MarketVolume
    users: MarketUsers


def market(values: Values) -> dict[str, Any]:
    p = values.parts
    sides, verified = _by(p["open_orders"], "side"), _by(p["users"], "kyc_verified")
    return {
        "assets": {"total": _total(p["assets"]), "by_type": _by(p["assets"], "asset_type")},
        "orders": {
            "open": sum(sides.values()),
            "buy": sides.get("buy", 0),
            "sell": sides.get("sell", 0),
        },
        "volume": {
            "transactions": _total(p["trades"]),
            "by_token": _by(p["trades"], "token_symbol", "sum:amount"),
        },
        "users": {"total": sum(verified.values()), "kyc_verified": verified.get("true", 0)},
    }


class ManufacturingOrderStats(_Answer):
    total: int
    by_status: dict[str, int]
    by_component_type: dict[str, int]
    value: dict[str, str] = Field(description="total_price of every order by currency")


class ManufacturingMilestoneStats(_Answer):
    total: int
    by_status: dict[str, int]
    paid: str = Field(description="the payments of paid milestones (in their orders' currencies)")


class QualityStats(_Answer):
    inspections: int
    by_result: dict[str, int]
    pass_rate: str | None = Field(description="passed / inspections, six places")
    average_score: float | None
    defects_found: int


class ManufacturingAnalytics(_Answer):
    """Manufacturing at a glance: orders, milestones and inspections."""

    orders: ManufacturingOrderStats
    milestones: ManufacturingMilestoneStats
    quality: QualityStats


def manufacturing(values: Values) -> dict[str, Any]:
    p = values.parts
    results = _by(p["quality"], "result")
    inspections = sum(results.values())
    passed = results.get("pass", 0)
    return {
        "orders": {
            "total": _total(p["orders"]),
            "by_status": _by(p["orders"], "status"),
            "by_component_type": _by(p["components"], "component_type"),
            "value": _by(p["value"], "currency", "sum:total_price"),
        },
        "milestones": {
            "total": _total(p["milestones"]),
            "by_status": _by(p["milestones"], "status"),
            "paid": _by(p["milestones"], "status", "sum:payment_amount").get("paid")
            or _amount(Decimal(0)),
        },
        "quality": {
            "inspections": inspections,
            "by_result": results,
            "pass_rate": _amount(Decimal(passed) / inspections) if inspections else None,
            "average_score": _one(p["scores"], "avg:score"),
            "defects_found": _one(p["scores"], "sum:defects_found") or 0,
        },
    }
