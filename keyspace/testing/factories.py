"""Valid documents built from a system's declarations (the testing kit's factories).

``Factory(system).build("drivers")`` is the smallest input document the declaration
accepts: every required field without a declared default, nothing optional, each unique value
new (a sequence number is written into every generated value). Fields given as keywords are
used as they are. ``await Factory(system, ks).create("drivers")`` also creates what the
document refers to (a user for ``user_id``) unless those ids are given, and stores it through
the keyspace as the API would. A user built for a system with roles is a member, unless its
role fields are given.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import keys
from ..documents import for_create
from ..errors import ValidationFailed
from ..ids import new_id
from ..schema import EntitySpec, IdStrategy
from ..system import ADMIN, System
from . import values

if TYPE_CHECKING:
    from ..engine import Keyspace
    from ..store import Stored

Entity = EntitySpec | str
"""An entity: its declaration, or its entity or collection name (``"user"``, ``"users"``)."""


class CannotBuild(Exception):
    """The declaration asks for something the factory cannot make up: pass that field."""


class Factory:
    """Builds (and with a keyspace, creates) documents of ``system``'s entities."""

    def __init__(self, system: System, ks: Keyspace | None = None, *, start: int = 1) -> None:
        self.system, self.ks = system, ks
        self._numbers = itertools.count(start)

    def spec(self, entity: Entity) -> EntitySpec:
        """The declaration of ``entity``; KeyError naming the known ones."""
        if isinstance(entity, EntitySpec):
            return entity
        for spec in self.system.schema.entities:
            if entity in (spec.name, spec.collection):
                return spec
        known = ", ".join(s.collection for s in self.system.schema.entities)
        raise KeyError(f"{self.system.name} has no entity {entity!r}; its collections: {known}")

    def build(self, entity: Entity, **fields: Any) -> dict[str, Any]:
        """A valid input document of ``entity`` (no id: the service assigns it), ``fields``
        as given. Required references hold made-up ids: :meth:`create` makes real ones.
        CannotBuild names a field to give when the declaration defeats the guesswork."""
        spec = self.spec(entity)
        n = next(self._numbers)
        schema = spec.model.model_json_schema(mode="validation")
        defs, properties = schema.get("$defs", {}), schema.get("properties", {})
        doc: dict[str, Any] = dict(fields)
        for order, (name, info) in enumerate(spec.model.model_fields.items()):
            if name in fields or not _wanted(spec, name, info.is_required()):
                continue
            options = values.candidates(properties.get(name, {}), defs, name, n, order)
            try:
                doc[name] = values.first_valid(info, options)
            except LookupError:
                raise CannotBuild(
                    f"{spec.name}.{name}: no generated value passes its validation; "
                    f"give it: build({spec.collection!r}, {name}=...)"
                ) from None
        if spec is self.system.users:
            self._as_member(spec, doc, fields, n)
        try:
            for_create(spec, doc, self._stand_in_id(spec, doc, n))
        except ValidationFailed as exc:
            found = exc.details if isinstance(exc.details, list) else [exc.details]
            blamed = {str(d.get("field")).split(".")[0] for d in found if isinstance(d, dict)}
            if blamed and blamed <= set(fields):
                raise  # a value the caller gave: the keyspace's own error, as a create's
            raise CannotBuild(
                f"{spec.name}: {exc.message}; give the field(s) it names as keywords"
            ) from None
        return doc

    async def create(self, entity: Entity, **fields: Any) -> Stored:
        """Build a document of ``entity`` and create it (creating each required reference
        not given first); the stored document (``.doc``)."""
        if self.ks is None:
            raise RuntimeError("Factory(system) builds only; Factory(system, ks) creates")
        spec = self.spec(entity)
        required = {
            n for n, i in spec.model.model_fields.items() if _wanted(spec, n, i.is_required())
        }
        for ref in spec.references:
            if ref.field in required and ref.field not in fields and not ref.many:
                target = self.spec(ref.target)
                fields[ref.field] = (await self.create(target)).doc[target.id_field]
        return await self.ks.create(spec, self.build(spec, **fields))

    def _as_member(
        self, spec: EntitySpec, doc: dict[str, Any], given: Mapping[str, Any], n: int
    ) -> None:
        """A user whose role fields were not given is a member: the first value of each that
        makes one (MultiFrame's ``role`` enum starts with ``admin``)."""
        if self.system.role_of(doc) != ADMIN:
            return
        schema = spec.model.model_json_schema(mode="validation")
        for name in self.system.role_fields:
            if name in given:
                continue
            prop = schema.get("properties", {}).get(name, {})
            for option in values.candidates(prop, schema.get("$defs", {}), name, n):
                if self.system.role_of({**doc, name: option}) != ADMIN:
                    doc[name] = option
                    return

    def _stand_in_id(self, spec: EntitySpec, doc: Mapping[str, Any], n: int) -> str:
        """An id of the entity's kind, to validate a built document as a create would (the
        one given, if any: the keyspace decides whether it may be chosen)."""
        if isinstance(given := doc.get(spec.id_field), str):
            return given
        if spec.id_strategy is IdStrategy.DERIVED and spec.derive_id is not None:
            try:
                return spec.derive_id(doc)
            except (KeyError, TypeError, ValueError):
                return keys.generated_id(spec.prefix, n)
        if spec.id_strategy in (IdStrategy.CUID, IdStrategy.UUID):
            return new_id(spec.id_strategy)
        return keys.generated_id(spec.prefix, n)


def _wanted(spec: EntitySpec, name: str, required: bool) -> bool:
    """Whether a factory fills the field: required by the model, not the id (the service's),
    not declared with a default or set by the server."""
    return (
        required
        and name != spec.id_field
        and name not in spec.defaults
        and name not in spec.server_time
    )
