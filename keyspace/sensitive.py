"""What a sensitive field is (:class:`Sensitive`) and where an entity may not put one: the
declaration half of keyspace.sealing (docs/encryption.md)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .text import fold, nfc

if TYPE_CHECKING:  # schema imports this module; the names below are its
    from .schema import EntitySpec, Indexed


@dataclass(frozen=True)
class Sensitive:
    """A top-level string field stored encrypted when the keyspace has an encryption key
    (keyspace.sealing, docs/encryption.md): claims and equality filters use its blind token,
    the HMAC of its value normalized as :meth:`normalize` does (caseless when
    ``case_insensitive``, as its unique claim and filter are)."""

    field: str
    case_insensitive: bool = False

    def normalize(self, value: str) -> str:
        return fold(value) if self.case_insensitive else nfc(value)


def checked_sensitive(spec: EntitySpec) -> tuple[Indexed, ...]:
    """Where a sensitive field may not go: anywhere its plaintext would reach a key name
    (composite claims, derived ids, references), an order (sort), a text index, a cached
    answer or profile. Returns its indexed attributes, the sensitive ones marked."""
    from .schema import FieldKind  # at run time: schema imports this module first

    found = {s.field: s for s in spec.sensitive}
    assert len(found) == len(spec.sensitive), f"{spec.name}: a sensitive field twice"
    declared = spec.model.model_fields
    composite = {f for t in spec.unique_together for f in t.fields}
    blocked = {*spec.derived_from, *composite, *(r.field for r in spec.references)}
    if spec.profile is not None:
        blocked |= set(spec.profile.fields)
    if spec.satellites is not None:
        blocked |= set(spec.satellites.watch)
    for name, entry in found.items():
        assert name in declared and "." not in name, f"{spec.name}: sensitive {name}"
        assert name not in blocked and name != spec.id_field and name != spec.owner, (
            f"{spec.name}.{name}: a sensitive field cannot be part of an id, a reference, "
            "a composite unique, a profile or what tokens mirror"
        )
        for unique in spec.uniques:
            if unique.field == name:
                assert unique.case_insensitive == entry.case_insensitive, (
                    f"{spec.name}.{name}: its unique and its blind token fold case alike"
                )
    for indexed in spec.fields:
        entry_ = found.get(indexed.path)
        if entry_ is None:
            continue
        assert indexed.kind is FieldKind.TAG and not indexed.sortable and not indexed.array, (
            f"{spec.name}.{indexed.name}: a sensitive field is an unsorted scalar TAG"
        )
        assert indexed.case_sensitive != entry_.case_insensitive, (
            f"{spec.name}.{indexed.name}: its filter and its blind token fold case alike"
        )
    assert not spec.cached, f"{spec.name}: cached answers would hold sensitive plaintext"

    return tuple(replace(f, sensitive=f.path in found) for f in spec.fields)
