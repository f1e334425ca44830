"""What ``check`` finds: problems, each with what ``--repair`` needs to fix it."""

from __future__ import annotations

from dataclasses import dataclass, field

from keyspace import keys
from keyspace.schema import EntitySpec, Reference, Schema

RefSet = tuple[EntitySpec, Reference, str]  # source entity, reference, target id


@dataclass
class Problem:
    """One disagreement; ``fix`` holds what :func:`repair` needs (ids, members, actions)."""

    kind: str
    key: str
    detail: str
    repairable: bool
    fix: dict[str, str] = field(default_factory=dict)


@dataclass
class Report:
    """What :func:`inspect` found, and how many documents (and singletons) it read."""

    problems: list[Problem]
    documents: int
    building: list[str] = field(default_factory=list)  # indexes not yet checkable, and why
    # (reference set, member) left by an expired document: no problem (nothing counts it),
    # not reported; ``--repair`` removes them so a long-lived target's sets do not grow.
    expired: list[tuple[str, str]] = field(default_factory=list)
    # Records import-legacy moved to the quarantine (keyspace.quarantine): kept for a person,
    # out of the live keyspace, so information, never a problem.
    quarantined: int = 0

    @property
    def clean(self) -> bool:
        """True when nothing disagrees."""
        return not self.problems


def ref_sets(schema: Schema) -> str:
    """What every reference set key of ``schema`` starts with."""
    return schema.names.reserved + "ref:"


def parse_ref_set(schema: Schema, set_key: str) -> RefSet | None:
    """(source entity, reference, target id) of a reference set key; None when unknown.
    Prefixes may hold ':' (``user:session``), so the key is matched against each declared
    reference's shape ``<target prefix>:<id>:<source prefix>.<field>``, not split."""
    body = set_key.removeprefix(ref_sets(schema))
    for spec in schema.entities:
        for ref in spec.references:
            target, tail = schema.entity(ref.target).prefix + ":", f":{spec.prefix}.{ref.field}"
            if body.startswith(target) and body.endswith(tail):
                target_id = body[len(target) : len(body) - len(tail)]
                if keys.is_lookup_id(target_id):  # no ':' in an id: one reading only
                    return spec, ref, target_id
    return None
