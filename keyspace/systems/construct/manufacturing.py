"""The seed's ``manufacturing`` schema: orders, payment milestones and quality inspections.

"orders: Manufacturing orders with custom specifications", "milestones: Payment milestones
for manufacturing orders", "quality_assurance: Quality inspection records"; the routes read
an order and its progress (``.../manufacturing/orders/{order_id}/progress``: milestones
done against the total, and the payments released) and the manufacturing analytics. The
table is ``manufacturing_orders`` (the seed's ``manufacturing.orders``; see market.py).

Progress is an aggregation over ``milestones`` by ``manufacturing_order_id``: the count by
``status`` (done = approved or paid) and the sum of ``payment_amount`` where ``status`` is
``paid`` (released). Analytics group orders by ``status``, ``component_type`` and
``manufacturer_id`` and sum ``total_price``; inspections by ``result`` and
``inspection_type``, averaging ``score``.

A buyer places and cancels its own order (``owner="buyer_id"``), naming any manufacturer
and asset (``open_refs``). Milestones and inspections are the platform's: a milestone's
approval releases money from an escrow, and an inspection's verdict decides it, so neither
is a member's to assert (an inspection records its ``inspector_id``, which grants nothing).
Milestones and inspections are parts of their order and go with it (cascade), unless a paid
milestone's transaction holds the order (transactions restrict).
"""

from __future__ import annotations

from ...declare import NOW, enum, integer, json, ref, string, table, text, timestamp
from ...schema import IdStrategy
from .blockchain import ASSET_TYPES
from .common import CASCADE, RESTRICT, SET_NULL, amount, created, symbol, transitions, updated

MANUFACTURING_STATUSES = (
    "pending",  # placed, awaiting a manufacturer
    "accepted",
    "in_production",
    "quality_check",
    "completed",
    "cancelled",
)

MANUFACTURING_ORDERS = table(
    "manufacturing_orders",
    collection="manufacturing_orders",
    id=IdStrategy.UUID,
    fields=(
        ref("buyer_id", "users", on_delete=RESTRICT, index=True, relation="manufacturing_orders"),
        # Null until a manufacturer accepts; who built what stays on record (restrict).
        ref(
            "manufacturer_id",
            "users",
            null=True,
            on_delete=RESTRICT,
            index=True,
            relation="manufacturing_jobs",
        ),
        # The tokenized component ordered, when it is a listed one.
        ref(
            "asset_id",
            "assets",
            null=True,
            on_delete=RESTRICT,
            index=True,
            relation="manufacturing_orders",
        ),
        text("title", max_length=200, multiline=False),
        text("description", null=True),
        enum("component_type", ASSET_TYPES, index=True),  # analytics group by it
        json("specifications", default={}),  # "with custom specifications": free JSON
        integer("quantity", ge=1, le=1_000_000, index=True),
        amount("total_price"),  # the sum of its milestones' payments, as agreed
        symbol("currency", default="USDC"),
        enum("status", MANUFACTURING_STATUSES, default="pending", index=True),
        timestamp("due_date", null=True, index=True),
        timestamp("started_at", null=True),
        timestamp("completed_at", null=True, index=True),
        created(),
        updated(),
    ),
    owner="buyer_id",
    # Acceptance, production and completion are the manufacturer's and the platform's.
    admin_fields=("manufacturer_id", "status", "started_at", "completed_at"),
    open_refs=("manufacturer_id", "asset_id"),
    # A failed quality check sends the order back to production; completed and cancelled
    # are final.
    transitions=transitions(
        "status",
        {
            "pending": ("accepted", "cancelled"),
            "accepted": ("in_production", "cancelled"),
            "in_production": ("quality_check", "cancelled"),
            "quality_check": ("in_production", "completed"),
        },
    ),
)

MILESTONE_STATUSES = (
    "pending",
    "in_progress",
    "submitted",  # the manufacturer says it is done
    "approved",  # accepted (after inspection): done
    "rejected",  # back to work
    "paid",  # its payment released from the escrow: done and paid
)

MILESTONES = table(
    "milestones",
    collection="milestones",
    id=IdStrategy.UUID,
    fields=(
        ref(
            "manufacturing_order_id",
            "manufacturing_orders",
            on_delete=CASCADE,  # a part of its order
            index=True,
            relation="milestones",
        ),
        integer("sequence", ge=1, le=1000, index=True, sortable=True),  # 1, 2, ... in order
        text("title", max_length=200, multiline=False),
        text("description", null=True),
        amount("payment_amount"),
        enum("status", MILESTONE_STATUSES, default="pending", index=True),
        timestamp("due_date", null=True, index=True),
        timestamp("submitted_at", null=True),
        timestamp("approved_at", null=True),
        timestamp("paid_at", null=True, index=True),
        created(),
        updated(),
    ),
    unique_together=(("manufacturing_order_id", "sequence"),),
    owner=None,
    transitions=transitions(
        "status",
        {
            "pending": ("in_progress",),
            "in_progress": ("submitted",),
            "submitted": ("approved", "rejected"),
            "rejected": ("in_progress",),
            "approved": ("paid",),
        },
    ),
)

QUALITY_ASSURANCE = table(
    "quality_assurance",
    collection="quality_assurance",
    id=IdStrategy.UUID,
    fields=(
        ref(
            "manufacturing_order_id",
            "manufacturing_orders",
            on_delete=CASCADE,
            index=True,
            relation="quality_assurance",
        ),
        # The milestone inspected, if any: a final inspection names none. Deleting a
        # milestone keeps the inspection on its order.
        ref(
            "milestone_id",
            "milestones",
            null=True,
            on_delete=SET_NULL,
            index=True,
            relation="quality_assurance",
        ),
        ref("inspector_id", "users", on_delete=RESTRICT, index=True, relation="inspections"),
        enum(
            "inspection_type",
            ("visual", "dimensional", "functional", "material", "compliance"),
            index=True,
        ),
        enum("result", ("pass", "fail", "conditional"), index=True),
        integer("score", null=True, ge=0, le=100, index=True),  # averaged by analytics
        integer("defects_found", default=0, ge=0, le=1_000_000, index=True),
        text("notes", null=True),
        json("measurements", default={}),
        string("report_uri", null=True),  # ipfs://... of the signed report
        timestamp("inspected_at", default=NOW, index=True, sortable=True),
        created(),
    ),
    owner=None,
)
