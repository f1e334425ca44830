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

    @property
    def clean(self) -> bool:
        """True when nothing disagrees."""
        return not self.problems


def ref_sets(schema: Schema) -> str:
    """What every reference set key of ``schema`` starts with."""
    return schema.names.reserved + "ref:"


def parse_ref_set(schema: Schema, set_key: str) -> RefSet | None:
    """(source entity, reference, target id) of a reference set key; None when unknown."""
    target_key, _, source = set_key.removeprefix(ref_sets(schema)).rpartition(":")
    source_prefix, _, name = source.partition(".")
    target_prefix, _, target_id = target_key.rpartition(":")
    for spec in schema.entities:
        for ref in spec.references if spec.prefix == source_prefix else ():
            target = schema.entity(ref.target).prefix
            if ref.field == name and target == target_prefix and keys.is_lookup_id(target_id):
                return spec, ref, target_id
    return None
