"""What a write returns and what a create plans: :class:`Stored`, :class:`Upserted`,
:class:`PreparedCreate` and :class:`AuthorizedCreate`, with the errors a refused commit stands
for (keyspace.store)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import codec, keys
from .claims import source_label
from .errors import (
    AlreadyExists,
    Conflict,
    Contention,
    CounterExhausted,
    IdCollision,
    MissingReference,
    NotFound,
    OutsideImportWindow,
    UniqueConflict,
    WrongType,
)
from .plan import Plan
from .schema import EntitySpec
from .scripts import CommitResult
from .sealing import Sealer
from .tokens import Decision


@dataclass(frozen=True)
class Stored:
    """A document as stored, with the revision tag that conditional writes compare against.
    ``opened``: ``doc`` holds the plaintext of sealed values (keyspace.sealing), so ``raw``
    (the stored bytes, which writes compare against) is not what a client is served."""

    doc: dict[str, Any]
    revision: str
    raw: bytes = field(default=b"", repr=False, compare=False)
    opened: bool = field(default=False, compare=False)

    @classmethod
    def from_raw(cls, raw: bytes) -> Stored:
        return cls(codec.loads(raw), codec.revision(raw), raw)

    @property
    def body(self) -> bytes:
        """The document as served: the stored bytes, unless sealed values were opened."""
        return codec.dumps(self.doc) if self.opened or not self.raw else self.raw

    def opened_with(self, sealer: Sealer | None, spec: EntitySpec, doc_id: str) -> Stored:
        if sealer is None or not spec.sensitive:
            return self
        return Stored(sealer.open(spec, doc_id, self.doc), self.revision, self.raw, opened=True)


@dataclass(frozen=True)
class Upserted:
    """What :meth:`Documents.upsert` did: the stored document, and whether it created it."""

    stored: Stored
    created: bool


def raise_for(result: CommitResult, spec: EntitySpec) -> None:
    if result.error == "unique_conflict":
        raise UniqueConflict(f"{spec.name} {result.field} is already taken", field=result.field)
    if result.error == "missing_reference":
        raise MissingReference(
            f"{result.field} refers to {result.value!r}, which does not exist",
            field=result.field,
            details={"field": result.field, "value": result.value},
        )
    if result.error == "already_exists":
        raise AlreadyExists(f"{result.value} already exists", field=spec.id_field)
    if result.error == "not_found":
        raise NotFound(f"{result.value} does not exist")
    if result.error == "wrong_type":
        raise WrongType(
            f"{result.value} holds an unexpected type; nothing was written "
            "(run `multiframe-admin check` to find and repair it)",
            details={"key": result.value},
        )
    raise Conflict(f"write refused: {result.error}", field=result.field or None)


@dataclass(frozen=True)
class PreparedCreate:
    """A validated create, planned and not yet committed."""

    spec: EntitySpec
    plan: Plan
    doc_id: str | None = None  # None: drawn from the counter by the commit
    source: Mapping[str, str] | None = None  # a derived id: the values it is derived from
    # Sealed values (keyspace.sealing): opened again in what the create returns.
    sealer: Sealer | None = None
    data: Any = None  # what was asked, planned again after a rotation or a taken id
    # A counter id with sealed values: they are bound to the id, so it is read from the
    # counter before the commit (Documents.ready), never past ``after``.
    assign: bool = False
    after: int = 0

    def needs_holder(self, result: CommitResult) -> bool:
        """True when the commit found a derived id taken: whether the document holding it
        has the same source values decides the error (:meth:`stored`'s ``holder``)."""
        return result.error == "already_exists" and self.source is not None

    def stored(self, result: CommitResult, holder: Any = None) -> Stored:
        """The created document, or the error the commit reported. ``holder`` is the
        document read under the id when :meth:`needs_holder` (None: none there)."""
        spec = self.spec
        if result.error == "contention":
            raise Contention(f"could not find a free {spec.name} id; retry")
        if result.error == "counter_exhausted":
            raise CounterExhausted(
                f"{result.value} has reached {keys.MAX_COUNTER}: no further {spec.name} id can "
                f"be generated; create with an explicit {spec.id_field}",
                field=spec.id_field,
                details={"field": spec.id_field, "counter": result.value},
            )
        if result.error == "import_window":
            highest = keys.generated_id(spec.prefix, int(result.value))
            raise OutsideImportWindow(
                f"{self.doc_id} is too far past {result.field}; at most {highest}",
                details={"field": spec.id_field, "value": self.doc_id, "highest": highest},
            )
        if self.source is not None and (
            result.error == "already_exists"
            or (result.error == "unique_conflict" and result.field == source_label(spec))
        ):
            raise self._taken(holder, result)
        if not result.ok:
            raise_for(result, spec)
        assert result.raw is not None
        doc_id = self.doc_id or ""
        return Stored.from_raw(result.raw).opened_with(self.sealer, spec, doc_id)

    def _taken(self, holder: Any, result: CommitResult) -> Conflict:
        """AlreadyExists when the source values have their document; IdCollision when the
        derived id is held by a document derived from other values."""
        spec, mine = self.spec, dict(self.source or {})
        owner = result.value if result.error == "unique_conflict" else self.doc_id
        theirs = spec.source(holder) if isinstance(holder, Mapping) else None
        if theirs is not None and theirs != mine:
            return IdCollision(
                f"{self.doc_id} is taken by the {spec.name} of {_values(theirs)}: {_values(mine)} "
                f"derive the same id, so this {spec.name} cannot be stored; nothing was written",
                field=spec.id_field,
                details={
                    "field": spec.id_field,
                    "id": self.doc_id,
                    "requested": mine,
                    "existing": theirs,
                },
            )
        return AlreadyExists(
            f"{owner} already exists for {_values(mine)}: one {spec.name} per {source_label(spec)}",
            field=spec.id_field,
            details={"field": spec.id_field, "id": owner, "requested": mine},
        )


def _values(source: Mapping[str, str]) -> str:
    return ", ".join(f"{name} {value!r}" for name, value in source.items())


@dataclass(frozen=True)
class AuthorizedCreate:
    """What :meth:`Keyspace.authorized_create` found: the decision, then the create's outcome."""

    decision: Decision
    result: CommitResult | None  # None: not allowed, nothing ran
    prepared: PreparedCreate
    holder: Any = None  # the document under a derived id found taken (PreparedCreate.stored)

    @property
    def forbidden(self) -> bool:
        return self.result is not None and self.result.error == "forbidden"

    def stored(self) -> Stored:
        """The created document, or the error its commit reported."""
        if self.result is None or self.forbidden:
            raise RuntimeError(f"the create did not run: {self.decision.status}")
        return self.prepared.stored(self.result, self.holder)
