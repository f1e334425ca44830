"""The field shapes every Construct module shares: hex addresses and hashes, token symbols,
exact money and quantities, timestamps and status transitions.

The seed (002) names tables but gives no column, so these shapes are decisions, each
recorded in docs/systems.md ("The Construct"):

- Addresses and hashes are EVM hex (``0x`` + 40 / 64 hex digits): the seed's "wallet
  addresses", "tx hashes" and "smart contracts" are an Ethereum-style chain's. They are
  compared caselessly (``string(case_insensitive=True)``): ``0xAbC...`` (an EIP-55 checksum
  spelling) and ``0xabc...`` are one address, and a client may look one up either way. The
  spelling sent is stored as sent.
- Money, prices, quantities and voting weights are exact decimals of at most 15 digits with 6
  places (``DECIMAL(15,6)``): 15 is what an indexed decimal may hold (the index orders
  doubles, keyspace.declare.decimal), and every one of them is summed or grouped by the later
  aggregations (orderbook levels, payments released, tallies, market volume). Six places is
  a micro-unit: below a cent of any price, and fine enough for fractional tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ...declare import NOW, decimal, string, timestamp
from ...schema import OnDelete, Transitions

CASCADE = OnDelete.CASCADE
RESTRICT = OnDelete.RESTRICT
SET_NULL = OnDelete.SET_NULL

# An EVM account or contract address; a transaction hash.
ADDRESS = r"^0x[0-9a-fA-F]{40}$"
TX_HASH = r"^0x[0-9a-fA-F]{64}$"
# A ticker as exchanges write it: capitals and digits, a letter first ("SRVX1", "USDC").
# Upper case only, so a symbol has one spelling and its exact tag is its lookup.
SYMBOL = r"^[A-Z][A-Z0-9]{1,11}$"

# DECIMAL(15,6): see the module docstring.
DIGITS = 15
PLACES = 6
# The smallest positive amount at six places: a price or an order's quantity is never 0.
POSITIVE = "0.000001"


def amount(
    name: str,
    *,
    default: Any = None,
    positive: bool = False,
    null: bool = False,
    index: bool = True,
    sortable: bool = False,
) -> Any:
    """An exact ``DECIMAL(15,6)`` that is never negative (``positive``: never 0 either);
    indexed by default, since the later aggregations sum and group these."""
    kwargs: dict[str, Any] = {} if default is None else {"default": default}
    return decimal(
        name,
        null=null,
        max_digits=DIGITS,
        places=PLACES,
        ge=POSITIVE if positive else 0,
        index=index or sortable,
        sortable=sortable,
        **kwargs,
    )


def address(name: str, *, null: bool = False, unique: bool = False) -> Any:
    """A hex address, caseless for uniqueness and filters (``?to_address=0xabc...``)."""
    return string(
        name,
        null=null,
        max_length=42,
        pattern=ADDRESS,
        unique=unique,
        case_insensitive=True,
        index=True,
    )


def symbol(name: str, *, default: Any = None, unique: bool = False) -> Any:
    kwargs: dict[str, Any] = {} if default is None else {"default": default}
    return string(name, max_length=12, pattern=SYMBOL, unique=unique, index=True, **kwargs)


def created() -> Any:
    return timestamp("created_at", default=NOW, index=True, sortable=True)


def updated() -> Any:
    return timestamp("updated_at", default=NOW, updated_at=True)


def transitions(field: str, allowed: Mapping[str, Iterable[str]]) -> Transitions:
    """``allowed``: each state to the states it may move to; a state not listed is final."""
    return Transitions(field, {old: frozenset(new) for old, new in allowed.items()})
