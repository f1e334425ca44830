"""A Construct world of N documents for section 8, written fast: prepared create plans through
``Keyspace.commit_batch``, 5,000 a pipeline, holding only the ids later documents refer to.

At 100,000 documents: 100 users, 10 assets (one of each type), 20 proposals with 2,000
votes, 200 manufacturing orders with 4 milestones and an inspection each, 5,000 price
feeds, 5,000 transactions (mostly confirmed trades) and the rest, ~87%, trading orders
spread over the assets at 400 price levels a side (open, partially filled, filled,
cancelled). Deterministic for a seed.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from keyspace import Keyspace
from keyspace.documents import for_create
from keyspace.plan import Plan
from keyspace.systems.construct.blockchain import ASSET_TYPES

BATCH = 5000
ASSETS, PROPOSALS, MILESTONES = 10, 20, 4
LEVELS = 400  # price levels a side; the book answers the best 100
STATUSES = ("open", "partially_filled", "filled", "cancelled")
STATUS_WEIGHTS = (45, 15, 25, 15)
EPOCH = datetime(2026, 1, 1)


@dataclass(frozen=True)
class Counts:
    users: int
    votes: int
    manufacturing: int
    price_feeds: int
    transactions: int
    orders: int

    @property
    def total(self) -> int:
        per_order = 2 + MILESTONES  # the order, its milestones, its inspection
        return (
            self.users
            + ASSETS
            + PROPOSALS
            + self.votes
            + self.manufacturing * per_order
            + self.price_feeds
            + self.transactions
            + self.orders
        )


def counts(total: int) -> Counts:
    """How many of each collection make ``total`` documents; trading orders fill the rest."""
    users = min(200, max(10, total // 1000))
    votes = min(users * PROPOSALS, total // 50)  # one vote per (proposal, voter)
    rest = Counts(users, votes, total // 500, total // 20, total // 20, 0)
    if rest.total > total // 2:
        raise ValueError(f"{total} documents are too few for a Construct world")
    return Counts(users, votes, total // 500, total // 20, total // 20, total - rest.total)


def _hex(rng: random.Random, digits: int) -> str:
    return "0x" + format(rng.getrandbits(digits * 4), f"0{digits}x")


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}0000"


def _when(minutes: int) -> str:
    return (EPOCH + timedelta(minutes=minutes)).isoformat(timespec="seconds")


class Loader:
    """Create plans for a world's documents, committed ``BATCH`` a pipeline; prints progress."""

    def __init__(self, ks: Keyspace, total: int, rng: random.Random) -> None:
        self.ks, self.total, self.rng = ks, total, rng
        self.pending: list[Plan] = []
        self.written = 0
        self.started = time.perf_counter()
        self._shown = 0

    async def add(self, collection: str, data: dict[str, Any]) -> str:
        spec = self.ks.schema.collection(collection)
        doc_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        doc = for_create(spec, data, doc_id)
        # The create path of bulk loads: sealed if a system declares sensitive fields.
        self.pending.append(self.ks.documents.plan_stored(spec, doc_id, doc, explicit_id=True))
        if len(self.pending) >= BATCH:
            await self.flush()
        return doc_id

    async def flush(self) -> None:
        if not self.pending:
            return
        # One pipeline, in order: a document's references are committed before it.
        refused = sum(not r.ok for r in await self.ks.commit_batch(self.pending))
        if refused:
            raise RuntimeError(f"{refused} Construct documents were refused by their checks")
        self.written += len(self.pending)
        self.pending.clear()
        if self.written * 10 // self.total > self._shown or self.written == self.total:
            self._shown = self.written * 10 // self.total
            took = time.perf_counter() - self.started
            done = f"{self.written:,} / {self.total:,} documents"
            print(f"  construct world: {done} ({took:.1f}s)", flush=True)


async def build(ks: Keyspace, total: int, seed: int = 16) -> tuple[list[str], list[str], float]:
    """Write a Construct world of ``total`` documents; its user and asset ids and the seconds
    it took."""
    n, rng = counts(total), random.Random(seed)
    load = Loader(ks, total, rng)
    users = [await load.add("users", _user(rng, u)) for u in range(n.users)]
    assets = [await load.add("assets", _asset(users, a)) for a in range(ASSETS)]
    proposals = [await load.add("proposals", _proposal(users, p)) for p in range(PROPOSALS)]
    for v in range(n.votes):
        voter = users[v // PROPOSALS]
        await load.add("votes", _vote(rng, proposals[v % PROPOSALS], voter))
    for m in range(n.manufacturing):
        order = await load.add("manufacturing_orders", _manufacturing(users, assets, m))
        steps = [await load.add("milestones", _milestone(order, s)) for s in range(MILESTONES)]
        await load.add("quality_assurance", _inspection(rng, order, steps[0], users[0]))
    for f in range(n.price_feeds):
        await load.add("price_feeds", _price(rng, assets, f))
    for t in range(n.transactions):
        await load.add("transactions", _transaction(rng, users, assets, t))
    for o in range(n.orders):
        await load.add("trading_orders", _order(rng, users, assets, o))
    await load.flush()
    return users, assets, time.perf_counter() - load.started


# --- the documents: each collection's fields the measured routes group, sum or filter by --


def _user(rng: random.Random, u: int) -> dict[str, Any]:
    kind = ("individual", "organization", "manufacturer")[u % 3]
    return {
        "wallet_address": _hex(rng, 40),
        "username": f"trader{u}",
        "account_type": kind,
        "reputation_score": f"{rng.uniform(0, 100):.2f}",
        "kyc_verified": u % 3 != 0,
    }


def _asset(users: list[str], a: int) -> dict[str, Any]:
    return {
        "name": f"Component {a}",
        "symbol": f"CX{a}",
        "asset_type": ASSET_TYPES[a % len(ASSET_TYPES)],
        "issuer_id": users[a % len(users)],
        "total_supply": "100000",
        "status": "active",
    }


def _proposal(users: list[str], p: int) -> dict[str, Any]:
    return {
        "proposer_id": users[p % len(users)],
        "title": f"Proposal {p}",
        "description": "Change a parameter of the market.",
        "proposal_type": "parameter_change",
        "status": ("active", "passed")[p % 2],
        "voting_starts_at": _when(p),
        "voting_ends_at": _when(p + 90 * 1440),
    }


def _vote(rng: random.Random, proposal: str, voter: str) -> dict[str, Any]:
    choice = rng.choice(("for", "against", "abstain"))
    weight = _money(rng.randint(100, 100_000))
    return {"proposal_id": proposal, "voter_id": voter, "choice": choice, "weight": weight}


def _manufacturing(users: list[str], assets: list[str], m: int) -> dict[str, Any]:
    return {
        "buyer_id": users[m % len(users)],
        "manufacturer_id": users[(m + 1) % len(users)],
        "asset_id": assets[m % ASSETS],
        "title": f"Build {m}",
        "component_type": ASSET_TYPES[m % len(ASSET_TYPES)],
        "quantity": 1 + m % 50,
        "total_price": _money(MILESTONES * 250_000),
        "status": "in_production",
    }


def _milestone(order: str, s: int) -> dict[str, Any]:
    status = ("paid", "approved", "pending", "pending")[s % 4]
    return {
        "manufacturing_order_id": order,
        "sequence": s + 1,
        "title": f"Step {s + 1}",
        "payment_amount": "2500",
        "status": status,
    }


def _inspection(rng: random.Random, order: str, step: str, inspector: str) -> dict[str, Any]:
    return {
        "manufacturing_order_id": order,
        "milestone_id": step,
        "inspector_id": inspector,
        "inspection_type": "dimensional",
        "result": rng.choice(("pass", "pass", "fail")),
        "score": rng.randint(50, 100),
        "defects_found": rng.randint(0, 3),
    }


def _price(rng: random.Random, assets: list[str], f: int) -> dict[str, Any]:
    a = f % ASSETS
    return {
        "asset_id": assets[a],
        "asset_symbol": f"CX{a}",
        "price": _money(10_000 * (a + 1) + rng.randint(-500, 500)),
        "source": "chainlink",
        "timestamp": _when(f // ASSETS),  # one quote a minute per asset: unique
    }


def _transaction(rng: random.Random, users: list[str], assets: list[str], t: int) -> dict[str, Any]:
    a = rng.randrange(ASSETS)
    return {
        "tx_hash": _hex(rng, 64),
        "tx_type": rng.choice(("trade",) * 7 + ("transfer", "mint")),
        "status": "confirmed" if t % 10 else "pending",
        "from_address": _hex(rng, 40),
        "to_address": _hex(rng, 40),
        "user_id": rng.choice(users),
        "asset_id": assets[a],
        "amount": _money(rng.randint(100, 1_000_000)),
        "token_symbol": f"CX{a}",
        "block_number": 21_000_000 + t,
    }


def _order(rng: random.Random, users: list[str], assets: list[str], o: int) -> dict[str, Any]:
    a, side = rng.randrange(ASSETS), rng.choice(("buy", "sell"))
    mid, level = 10_000 * (a + 1), rng.randint(1, LEVELS) * 5  # cents: 0.05 a level
    quantity = rng.randint(2, 50)
    status = rng.choices(STATUSES, STATUS_WEIGHTS)[0]
    filled = {"open": 0, "partially_filled": rng.randint(1, quantity - 1)}.get(status, quantity)
    order = {
        "user_id": rng.choice(users),
        "asset_id": assets[a],
        "side": side,
        "price": _money(mid - level if side == "buy" else mid + level),
        "quantity": str(quantity),
        "filled_quantity": str(filled),
        "status": status,
        "created_at": _when(o // 10),
    }
    if status in ("filled", "cancelled"):
        order[f"{status}_at"] = _when(o // 10 + 5)
    return order
