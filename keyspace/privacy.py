"""Private fields (``EntitySpec.private_fields``): where a declaration may put one. The
API withholds them from every caller but admins and the document's owner (app.privacy)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # schema imports this module
    from .schema import EntitySpec


def check_private(spec: EntitySpec) -> None:
    """Where a private field (``EntitySpec.private_fields``) may not go: anywhere a caller
    it is withheld from could learn its value without reading it (a filter, a sort, a text
    or vector search, a unique or composite claim's conflict, a key name, a reference's
    expansion, a refused status change, a profile, a cached answer or what tokens mirror)."""
    declared = spec.model.model_fields
    private = set(spec.private_fields)
    assert len(private) == len(spec.private_fields), f"{spec.name}: a private field twice"
    paths = {
        spec.id_field,
        *([spec.owner] if spec.owner is not None else []),
        *spec.derived_from,
        *(f for t in spec.unique_together for f in t.fields),
        *(u.field for u in spec.uniques),
        *(r.field for r in spec.references),
        *([spec.transitions.field] if spec.transitions is not None else []),
        *(i.path for i in spec.fields),
        *(spec.profile.fields if spec.profile is not None else ()),
        *(spec.satellites.watch if spec.satellites is not None else ()),
    }
    # By top-level field: a claim or a reference on ``card.number`` tells about ``card``.
    blocked = {path.split(".")[0] for path in paths}
    # A cached answer serves every caller alike: it could not withhold per caller.
    assert not spec.cached, f"{spec.name}: its private fields rule out cached answers"
    for name in spec.private_fields:
        assert name in declared and "." not in name, f"{spec.name}: private {name}"
        # An answer without it still fits the model (OpenAPI's schema of every document).
        assert not declared[name].is_required(), (
            f"{spec.name}: private {name} must be optional (null=True): answers leave it out"
        )
        assert name not in blocked, (
            f"{spec.name}.{name}: a private field cannot be indexed, unique, part of an id, "
            "the owner, a reference, a status with transitions, a profile or what tokens mirror"
        )
