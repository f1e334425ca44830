"""How many commit plans travel in one script call: the layout ``plans.lua`` reads for
``bulk_commit.lua`` and ``batch_commit.lua``, and a batch packed ahead of its send
(``Scripts.pack_batch``), so a bulk loader prepares its next batch while one is applied."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .changes import DEFAULT_CAP, ChangeCap
from .plan import Arg, Plan

BULK = 100
"""Plans per ``bulk_commit.lua`` call: enough that the call's own cost (~10 µs) is small per
plan, few enough that the server is held only a few ms per call."""


@dataclass(frozen=True)
class PackedBatch:
    """A batch of plans as ``Scripts.send_packed`` writes it: its bulk calls (and WAIT)."""

    commands: list[tuple[Arg, ...]]
    packed: list[bytes]
    n_plans: int
    waited: bool


def layout(plans: Sequence[Plan], cap: ChangeCap | None) -> tuple[list[str], list[Arg]]:
    """KEYS and ARGV of ``plans`` as plans.lua reads them (each plan trimming the feed to
    ``cap`` after its events, or none when ``cap`` is None)."""
    keys: list[str] = []
    sizes: list[Arg] = [len(plans)]
    argv: list[Arg] = []
    for plan in plans:
        args = plan.args(cap)
        sizes += (len(plan.keys), len(args))
        keys += plan.keys
        argv += args
    return keys, [*sizes, *argv]


def bulk_args(plans: Sequence[Plan], cap: ChangeCap = DEFAULT_CAP) -> list[Arg]:
    """numkeys, KEYS and ARGV of one ``bulk_commit.lua`` call applying ``plans``."""
    keys, argv = layout(plans, None)
    feeds = [plan.feed() for plan in plans]
    at = {stream: n for n, stream in enumerate(dict.fromkeys(f for f in feeds if f), 1)}
    if at:
        # The script trims each feed an applied plan appended to, once, after every plan,
        # whichever were refused (review 28: a trim carried by the call's last plan was lost
        # when that plan was refused; review 29: a feed no applied plan appended to must be
        # left alone).
        keys += [plans[0].pause, *at]
        argv += [*cap.args(), *(at[f] if f else 0 for f in feeds)]
    return [len(keys), *keys, *argv]
