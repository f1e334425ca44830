"""Unique claims: which claim keys a document holds, and what a claim key stands for.

A claim is a string key under ``mf:uniq:`` holding the id of the one document that owns a
value: one per declared :class:`~keyspace.schema.Unique` field, and, for an entity with a
derived id, one for the tuple of values the id is derived from (``derived_from``), so the
tuple is unique on its own and not only through the id built from it, and one per composite
unique (``unique_together``) whose parts are all set: as in SQL, a tuple with a null part
claims nothing, so any number of such documents may exist. A sealed value of a sensitive field
(keyspace.sealing) claims its blind token (``enc:<hex>``), never its plaintext. Write plans and
``multiframe-admin check`` both take claims from here, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import keys
from .crypto import parse_sealed
from .keys import Names
from .schema import EntitySpec, Schema, get_path


def source_label(spec: EntitySpec) -> str:
    """How errors and reports name the tuple claim, e.g. ``user_id+chip_id``."""
    return "+".join(spec.derived_from)


def held(names: Names, spec: EntitySpec, doc: Mapping[str, Any]) -> dict[str, str]:
    """Claim key -> the field (or ``a+b`` fields) it guards, for the values ``doc`` holds."""
    out: dict[str, str] = {}
    for unique in spec.uniques:
        value = get_path(doc, unique.field)
        if isinstance(value, str):
            sealed = parse_sealed(value) if spec.sensitive else None
            claimed = unique.normalize(value) if sealed is None else sealed.token
            out[names.unique_key(spec.prefix, unique.field, claimed)] = unique.field
    if (source := spec.source(doc)) is not None:
        out[names.source_claim_key(spec.prefix, source)] = source_label(spec)
    for together in spec.unique_together:
        values = {name: get_path(doc, name) for name in together.fields}
        if all(isinstance(v, str) for v in values.values()):  # a null part: no claim (SQL)
            out[names.source_claim_key(spec.prefix, values)] = "+".join(together.fields)
    return out


@dataclass(frozen=True)
class Claim:
    """What a claim key stands for: whose claim, and the field label it guards."""

    spec: EntitySpec
    field: str


def parse(schema: Schema, claim: str) -> Claim | None:
    """The entity and field of a claim key, or None when no declaration makes such a key."""
    body = claim.removeprefix(schema.names.reserved + "uniq:")
    for spec in schema.entities:
        # A prefix may hold ':' (``user:session``); none extends another (Schema).
        if not body.startswith(spec.prefix + ":"):
            continue
        name, _, value = body[len(spec.prefix) + 1 :].partition(":")
        for unique in spec.uniques:
            if unique.field == name and unique.normalize(value) == value:
                return Claim(spec, unique.field)
        values = keys.source_values(value) if spec.derived_from else None
        if name == source_label(spec) and len(values or ()) == len(spec.derived_from):
            return Claim(spec, name)
        for together in spec.unique_together:
            parts = keys.source_values(value)
            if name == "+".join(together.fields) and len(parts or ()) == len(together.fields):
                return Claim(spec, name)
    return None
