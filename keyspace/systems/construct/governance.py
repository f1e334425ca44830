"""The seed's ``governance`` schema: community proposals and the votes on them.

"proposals: Community governance proposals", "votes: Voting records for proposals"; the
routes list the active proposals (``.../governance/proposals/active``: ``status`` active,
the soonest to close first; the voting window is a filter and sort field) and
read one with its tallies (an aggregation over ``votes`` by ``proposal_id``, grouped by
``choice``, counting and summing ``weight``). "Governance proposal queries" are indexed.

A member drafts its own proposals (``owner="proposer_id"``); opening the vote, its quorum
and threshold and the outcome are the platform's (``admin_fields``). Votes are
admin-written: a vote's ``weight`` is the voter's power at the proposal's snapshot (tokens,
reputation), which the platform computes; a member choosing its own weight would decide
every vote, so the whole vote is the platform's record. ``voter_id``
records who voted. A vote is a record of the outcome: neither its proposal nor its voter is
deleted while it exists (restrict), and one voter votes once per proposal.
"""

from __future__ import annotations

from ...declare import decimal, enum, json, ref, string, table, text, timestamp
from ...schema import IdStrategy
from .common import RESTRICT, TX_HASH, amount, created, transitions, updated

PROPOSAL_STATUSES = ("draft", "active", "passed", "rejected", "executed", "cancelled")

PROPOSALS = table(
    "proposals",
    collection="proposals",
    id=IdStrategy.UUID,
    fields=(
        ref("proposer_id", "users", on_delete=RESTRICT, index=True, relation="proposals"),
        text("title", max_length=200, multiline=False),
        text("description"),
        enum(
            "proposal_type",
            ("parameter_change", "asset_listing", "treasury", "protocol_upgrade", "other"),
            index=True,
        ),
        enum("status", PROPOSAL_STATUSES, default="draft", index=True),
        # The voting window: active proposals are those inside it.
        timestamp("voting_starts_at", index=True, sortable=True),
        timestamp("voting_ends_at", index=True, sortable=True),
        # The total weight that must vote for the result to count, and the share of the
        # for-and-against weight that passes it (0.5: a simple majority).
        amount("quorum", default="0", index=False),
        decimal("approval_threshold", max_digits=5, places=4, ge=0, le=1, default="0.5"),
        json("actions", default=[]),  # what executing it does, as the platform reads it
        timestamp("executed_at", null=True),
        created(),
        updated(),
    ),
    owner="proposer_id",
    # A member drafts; opening the vote, its thresholds and the outcome are the platform's.
    admin_fields=("status", "quorum", "approval_threshold", "executed_at"),
    transitions=transitions(
        "status",
        {
            "draft": ("active", "cancelled"),
            "active": ("passed", "rejected", "cancelled"),
            "passed": ("executed",),
        },
    ),
)

VOTES = table(
    "votes",
    collection="votes",
    id=IdStrategy.UUID,
    fields=(
        ref("proposal_id", "proposals", on_delete=RESTRICT, index=True, relation="votes"),
        ref("voter_id", "users", on_delete=RESTRICT, index=True, relation="votes"),
        enum("choice", ("for", "against", "abstain"), index=True),
        amount("weight"),
        text("reason", null=True, max_length=2000),
        # An on-chain vote's transaction, when it was cast on chain (caseless).
        string(
            "tx_hash", null=True, max_length=66, pattern=TX_HASH, case_insensitive=True, index=True
        ),
        created(),
    ),
    unique_together=(("proposal_id", "voter_id"),),
    owner=None,
)
