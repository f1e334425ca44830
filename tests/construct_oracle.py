"""Brute-force answers of The Construct's computed routes, from every document as plain
loops (no aggregation, no index, no shape function): what the views must equal."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

Docs = dict[str, list[dict[str, Any]]]  # collection -> every document

Q = Decimal("0.000001")
ZERO = "0.000000"
OPEN = ("open", "partially_filled")


def _amount(value: Decimal) -> str:
    return str(value.quantize(Q))


def _count_by(rows: list[dict[str, Any]], field: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in rows:
        value = row.get(field)
        label = (
            "null"
            if value is None
            else ("true" if value is True else "false" if value is False else str(value))
        )
        out[label] = out.get(label, 0) + 1
    return out


def _sum_by(rows: list[dict[str, Any]], field: str, measured: str) -> dict[str, str]:
    totals: dict[str, Decimal] = {}
    for row in rows:
        if row.get(measured) is None:
            continue
        key = str(row[field])
        totals[key] = totals.get(key, Decimal(0)) + Decimal(row[measured])
    return {k: _amount(v) for k, v in totals.items()}


def order_book(docs: Docs, asset_id: str, depth: int = 100) -> dict[str, Any]:
    asset = next(a for a in docs["assets"] if a["id"] == asset_id)
    sides: dict[str, list[dict[str, Any]]] = {}
    for side, name, newest_first in (("buy", "bids", True), ("sell", "asks", False)):
        levels: dict[tuple[str, Decimal], list[Decimal]] = {}
        for o in docs["trading_orders"]:
            if o["asset_id"] == asset_id and o["side"] == side and o["status"] in OPEN:
                level = levels.setdefault(
                    (o["quote_currency"], Decimal(o["price"])), [Decimal(0), Decimal(0), Decimal(0)]
                )
                level[0] += Decimal(o["quantity"])
                level[1] += Decimal(o["filled_quantity"])
                level[2] += 1
        ordered = sorted(levels, reverse=newest_first)
        sides[f"{name}_truncated"] = len(ordered) > depth  # type: ignore[assignment]
        sides[name] = [
            {
                "price": _amount(price),
                "quantity": _amount(levels[(cur, price)][0] - levels[(cur, price)][1]),
                "orders": int(levels[(cur, price)][2]),
                "quote_currency": cur,
            }
            for cur, price in ordered[:depth]
            if levels[(cur, price)][0] > levels[(cur, price)][1]
        ]
    return {"asset_id": asset_id, "symbol": asset["symbol"], **sides}


def progress(docs: Docs, order_id: str) -> dict[str, Any]:
    order = next(o for o in docs["manufacturing_orders"] if o["id"] == order_id)
    mine = [m for m in docs["milestones"] if m["manufacturing_order_id"] == order_id]
    done = sum(1 for m in mine if m["status"] in ("approved", "paid"))
    total = sum((Decimal(m["payment_amount"]) for m in mine), Decimal(0))
    paid = sum((Decimal(m["payment_amount"]) for m in mine if m["status"] == "paid"), Decimal(0))
    return {
        "order_id": order_id,
        "status": order["status"],
        "percent_complete": done * 100 // len(mine) if mine else 0,
        "milestones": {
            "total": len(mine),
            "completed": done,
            "by_status": _count_by(mine, "status"),
        },
        "payments": {
            "total": _amount(total),
            "released": _amount(paid),
            "currency": order["currency"],
        },
    }


def proposal(docs: Docs, proposal_id: str) -> dict[str, Any]:
    doc = next(p for p in docs["proposals"] if p["id"] == proposal_id)
    votes = [v for v in docs["votes"] if v["proposal_id"] == proposal_id]
    tallies: dict[str, dict[str, Any]] = {}
    for choice in ("for", "against", "abstain"):
        chosen = [v for v in votes if v["choice"] == choice]
        weight = sum((Decimal(v["weight"]) for v in chosen), Decimal(0))
        tallies[choice] = {"votes": len(chosen), "weight": _amount(weight)}
    w = {c: Decimal(t["weight"]) for c, t in tallies.items()}
    total = w["for"] + w["against"] + w["abstain"]
    decided = w["for"] + w["against"]
    return {
        **doc,
        "tallies": tallies,
        "total_votes": len(votes),
        "total_weight": _amount(total),
        "quorum_reached": total >= Decimal(doc["quorum"]),
        "approval": _amount(w["for"] / decided) if decided else None,
    }


def user_stats(docs: Docs, user_id: str) -> dict[str, Any]:
    user = next(u for u in docs["users"] if u["id"] == user_id)
    orders = [o for o in docs["trading_orders"] if o["user_id"] == user_id]
    txs = [
        t for t in docs["transactions"] if t["user_id"] == user_id and t["status"] == "confirmed"
    ]
    placed = [m for m in docs["manufacturing_orders"] if m["buyer_id"] == user_id]
    jobs = [m for m in docs["manufacturing_orders"] if m["manufacturer_id"] == user_id]
    votes = [v for v in docs["votes"] if v["voter_id"] == user_id]
    return {
        "user_id": user_id,
        "wallet_address": user["wallet_address"],
        "reputation_score": user.get("reputation_score"),
        "member_since": user["created_at"],
        "assets_issued": sum(1 for a in docs["assets"] if a["issuer_id"] == user_id),
        "trading": {
            "orders": len(orders),
            "open_orders": sum(1 for o in orders if o["status"] in OPEN),
            "by_status": _count_by(orders, "status"),
        },
        "transactions": {"confirmed": len(txs), "volume": _sum_by(txs, "token_symbol", "amount")},
        "manufacturing": {
            "orders_placed": len(placed),
            "orders_by_status": _count_by(placed, "status"),
            "jobs": len(jobs),
            "jobs_by_status": _count_by(jobs, "status"),
        },
        "governance": {
            "proposals": sum(1 for p in docs["proposals"] if p["proposer_id"] == user_id),
            "votes": len(votes),
            "voting_weight": _amount(sum((Decimal(v["weight"]) for v in votes), Decimal(0))),
        },
    }


def market(docs: Docs) -> dict[str, Any]:
    open_orders = [o for o in docs["trading_orders"] if o["status"] in OPEN]
    trades = [
        t for t in docs["transactions"] if t["status"] == "confirmed" and t["tx_type"] == "trade"
    ]
    return {
        "assets": {
            "total": len(docs["assets"]),
            "by_type": _count_by(docs["assets"], "asset_type"),
        },
        "orders": {
            "open": len(open_orders),
            "buy": sum(1 for o in open_orders if o["side"] == "buy"),
            "sell": sum(1 for o in open_orders if o["side"] == "sell"),
        },
        "volume": {
            "transactions": len(trades),
            "by_token": _sum_by(trades, "token_symbol", "amount"),
        },
        "users": {
            "total": len(docs["users"]),
            "kyc_verified": sum(1 for u in docs["users"] if u["kyc_verified"]),
        },
    }


def manufacturing(docs: Docs) -> dict[str, Any]:
    orders, milestones, qa = (
        docs["manufacturing_orders"],
        docs["milestones"],
        docs["quality_assurance"],
    )
    scores = [q["score"] for q in qa if q.get("score") is not None]
    passed = sum(1 for q in qa if q["result"] == "pass")
    paid = [m for m in milestones if m["status"] == "paid"]
    return {
        "orders": {
            "total": len(orders),
            "by_status": _count_by(orders, "status"),
            "by_component_type": _count_by(orders, "component_type"),
            "value": _sum_by(orders, "currency", "total_price"),
        },
        "milestones": {
            "total": len(milestones),
            "by_status": _count_by(milestones, "status"),
            "paid": _amount(sum((Decimal(m["payment_amount"]) for m in paid), Decimal(0))),
        },
        "quality": {
            "inspections": len(qa),
            "by_result": _count_by(qa, "result"),
            "pass_rate": _amount(Decimal(passed) / len(qa)) if qa else None,
            "average_score": sum(scores) / len(scores) if scores else None,
            "defects_found": sum(q["defects_found"] for q in qa),
        },
    }
