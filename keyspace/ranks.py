"""Ranked fields: a sorted set per field declared ``ranked`` (keys.rank_key), score the
field's value as the index holds it (a double), member the document id.

RediSearch answers a sorted list by visiting every match: a list that matches 2% of a
million documents reads 20,000 sort vectors for its top 50, and when those are tied on the
sort value (many documents with 512 cores) no numeric window can skip any of them. A sorted
set holds the whole order, ties by id as the index breaks them (bytewise, both ascending),
so a page can be read from the top instead (keyspace.ranking): the index is asked only
which of the next few hundred ids match.

Every commit that writes a document writes its members in the same script (ops ``zadd``,
``zaddid``, ``zrem`` of commit.lua), so the sets change exactly when the index does.
Reprojection (keyspace.reproject), restore and ``check --repair`` bring them back in line
with the documents; the sets are derived data and never backed up. A document without a
finite number in the field has no member, as the index has no value to sort it by.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .keys import Names
from .schema import EntitySpec, Indexed, get_path

if TYPE_CHECKING:  # keyspace.plan writes through these functions
    from .plan import Plan


def score(field: Indexed, doc: Mapping[str, Any]) -> str | None:
    """The score ``doc`` ranks at in ``field``'s set: its value as the index's double, as
    commit.lua accepts it; None when it has no finite number there."""
    value = get_path(doc, field.path)
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond a double: the index cannot hold it either
        return None
    return repr(number) if math.isfinite(number) else None


def members(spec: EntitySpec, doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(set key, score) of each ranked field ``doc`` has a score in."""
    names = spec.names
    out = []
    for field in spec.ranked_fields:
        found = score(field, doc)
        if found is not None:
            out.append((names.rank_key(spec.prefix, field.name), found))
    return out


def rank(names: Names, plan: Plan, spec: EntitySpec, doc_id: str, doc: Mapping[str, Any]) -> None:
    """Write ``doc``'s members (removing the ones it has no score for)."""
    for field in spec.ranked_fields:
        key, found = names.rank_key(spec.prefix, field.name), score(field, doc)
        if found is None:
            plan.write("zrem", key, doc_id)
        else:
            plan.write("zadd", key, found, doc_id)


def rank_drawn(names: Names, plan: Plan, spec: EntitySpec, doc: Mapping[str, Any]) -> None:
    """:func:`rank` for a create whose id the script draws (its members are new)."""
    for field in spec.ranked_fields:
        found = score(field, doc)
        if found is not None:
            plan.write("zaddid", names.rank_key(spec.prefix, field.name), found)


def unrank(names: Names, plan: Plan, spec: EntitySpec, doc_id: str) -> None:
    """Remove a deleted document's members."""
    for field in spec.ranked_fields:
        plan.write("zrem", names.rank_key(spec.prefix, field.name), doc_id)
