"""Batch creates: many documents of one collection, all created or none, in one script call.

Each item is validated and planned as a single create is (``Documents.prepare_create``).
Then, before anything is sent, the plans are checked against each other
(:func:`overlaps`): two items with the same id, two claiming one unique value, or an item
referring to another item of the batch are refused, naming both indexes. What is left is
sent to ``batch_commit.lua``, which dry-runs every plan (each check ``commit.lua`` makes
alone, against the stored documents) and applies them only when none was refused. Since no
two plans touch the same document or claim and explicit ids are applied before generated
ones, a plan whose dry run passed cannot be refused once earlier ones were written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .errors import (
    AlreadyExists,
    Contention,
    KeyspaceError,
    MissingReference,
    UniqueConflict,
    ValidationFailed,
)
from .plan import Plan
from .prepared import PreparedCreate, Stored
from .schema import EntitySpec
from .scripts import CommitResult
from .store import MAX_ATTEMPTS, Documents

MAX_ITEMS = 1000
"""The most documents one batch creates: its script holds the server for a few ms at most."""


@dataclass(frozen=True)
class Refusal:
    """Why the item at ``index`` of a batch was refused; ``with_index``: the other item of the
    batch it conflicts with (None: it conflicts with what is stored, or is invalid)."""

    index: int
    error: KeyspaceError
    with_index: int | None = None

    def entry(self) -> dict[str, Any]:
        """The refusal as one entry of the error's ``details``."""
        out: dict[str, Any] = {"index": self.index, "code": self.error.code}
        field = _field_of(self.error)
        if field:
            out["field"] = field
        if self.with_index is not None:
            out["with_index"] = self.with_index
        out["message"] = self.error.message
        if self.error.details is not None:
            out["details"] = self.error.details
        return out


def _field_of(error: KeyspaceError) -> str | None:
    field = getattr(error, "field", None)
    if isinstance(field, str) and field:
        return field
    details = error.details
    if isinstance(details, list) and details and isinstance(details[0], Mapping):
        found = details[0].get("field")
        return found if isinstance(found, str) else None
    if isinstance(details, Mapping) and isinstance(details.get("field"), str):
        return str(details["field"])
    return None


class BatchRefused(KeyspaceError):
    """A batch create refused whole: nothing was written. ``refusals`` names each refused
    item (its index and error); ``details`` lists them as ``{"index", "code", "field",
    "with_index", "message", "details"}`` entries, and ``code`` is the first one's."""

    def __init__(self, spec: EntitySpec, refusals: Sequence[Refusal]) -> None:
        first = refusals[0]
        indexes = ", ".join(str(r.index) for r in refusals[:10])
        more = f" and {len(refusals) - 10} more" if len(refusals) > 10 else ""
        super().__init__(
            f"no {spec.name} was created: {len(refusals)} item(s) refused (index {indexes}"
            f"{more}); the first: {first.error.message}",
            details=[r.entry() for r in refusals],
        )
        self.code = first.error.code
        self.refusals = list(refusals)


def _key_of(plan: Plan, op: Sequence[Any]) -> str:
    return plan.keys[int(op[1]) - 1]


def overlaps(spec: EntitySpec, plans: Sequence[Plan]) -> list[Refusal]:
    """The in-batch conflicts of ``plans`` (one per item, in order): the same document key
    twice (``already_exists``), the same unique claim twice (``unique_conflict``), and a
    reference to a document another item creates (``missing_reference``: a batch cannot
    refer to its own documents). Both items of a pair are named, each with the other."""
    made: dict[str, int] = {}  # document key -> first item creating it
    claimed: dict[str, tuple[int, str]] = {}  # claim key -> (first item, field)
    out: dict[int, Refusal] = {}

    def refuse(index: int, error: KeyspaceError, other: int) -> None:
        out.setdefault(index, Refusal(index, error, other))

    for index, plan in enumerate(plans):
        for op in plan.checks:
            name, key = str(op[0]), _key_of(plan, op)
            if name in ("absent", "string"):
                if key in made:
                    error = _exists(spec, key)
                    refuse(made[key], error, index)
                    refuse(index, error, made[key])
                else:
                    made[key] = index
            elif name in ("free", "unclaimed"):
                field = str(op[-1])
                if key in claimed:
                    error = _unique(spec, field)
                    refuse(claimed[key][0], error, index)
                    refuse(index, error, claimed[key][0])
                else:
                    claimed[key] = (index, field)
    for index, plan in enumerate(plans):
        for op in plan.checks:
            key = _key_of(plan, op)
            if str(op[0]) == "exists" and key in made and made[key] != index:
                field, value = str(op[2]), str(op[3])
                error = MissingReference(
                    f"{field} refers to {value!r}, which item {made[key]} of this batch "
                    "creates: a batch cannot refer to its own documents; create it first",
                    field=field,
                    details={"field": field, "value": value},
                )
                refuse(index, error, made[key])
    return [out[i] for i in sorted(out)]


def _exists(spec: EntitySpec, key: str) -> KeyspaceError:
    return AlreadyExists(f"{key} is created twice in this batch", field=spec.id_field)


def _unique(spec: EntitySpec, field: str) -> KeyspaceError:
    return UniqueConflict(f"{spec.name} {field} is claimed twice in this batch", field=field)


def _prepared(documents: Documents, spec: EntitySpec, items: Sequence[Any]) -> list[PreparedCreate]:
    """Every item validated and planned, or BatchRefused naming each invalid one."""
    out: list[PreparedCreate] = []
    refusals: list[Refusal] = []
    for index, item in enumerate(items):
        try:
            out.append(documents.prepare_create(spec, item))
        except KeyspaceError as exc:
            refusals.append(Refusal(index, exc))
    if refusals:
        raise BatchRefused(spec, refusals)
    return out


async def _ready(
    documents: Documents, asked: Sequence[PreparedCreate], start: int
) -> list[PreparedCreate]:
    """``asked`` as they can be committed: the items whose sealed values need their counter
    id first (``PreparedCreate.assign``) get consecutive ids, past ``start``."""
    out: list[PreparedCreate] = []
    after = start
    for prepared in asked:
        if prepared.assign:
            prepared = await documents.ready(replace(prepared, after=max(after, prepared.after)))
            after = prepared.after
        out.append(prepared)
    return out


async def create_many(
    documents: Documents, spec: EntitySpec, items: Sequence[Any], *, window: int | None = None
) -> list[Stored]:
    """Create every item of ``items`` as one document of ``spec``, all or none, in one
    script call; the stored documents in the order of ``items``. BatchRefused, writing
    nothing, when any item is refused (each named with its index): first the invalid ones,
    then those conflicting with each other, then those the stored documents refuse.
    ``window``: the import window of a non-admin's explicit ids (see ``Plan.window``)."""
    if not items or len(items) > MAX_ITEMS:
        raise ValidationFailed(
            f"a batch creates 1 to {MAX_ITEMS} documents, not {len(items)}",
            details=[{"field": "(body)", "message": f"1 to {MAX_ITEMS} items"}],
        )
    asked = _prepared(documents, spec, items)
    start = 0
    for _ in range(MAX_ATTEMPTS):
        ready = await _ready(documents, asked, start)
        for prepared in ready:
            prepared.plan.window = window
        if refusals := overlaps(spec, [p.plan for p in ready]):
            raise BatchRefused(spec, refusals)
        # Explicit ids first: a generated id drawn later skips them (commit.lua's draw).
        order = sorted(range(len(ready)), key=lambda n: ready[n].doc_id is None)
        results = await documents.scripts.batch_commit([ready[n].plan for n in order], order)
        by_index: dict[int, CommitResult] = dict(zip(order, results, strict=True))
        if any(r.error == "rekeyed" for r in results) and documents.keys is not None:
            await documents.keys.refresh()  # a rotation began: plan again under the new key
            asked = _prepared(documents, spec, items)
            continue
        taken = [n for n, r in by_index.items() if r.error == "already_exists" and ready[n].assign]
        if taken and len(taken) == sum(not r.ok for r in results):
            start = max(ready[n].after for n in taken)  # ids an import took since read
            continue
        return await _outcome(documents, spec, ready, by_index)
    raise Contention(f"could not find free {spec.name} ids; retry")


async def _outcome(
    documents: Documents,
    spec: EntitySpec,
    ready: Sequence[PreparedCreate],
    results: Mapping[int, CommitResult],
) -> list[Stored]:
    refusals: list[Refusal] = []
    for index, prepared in enumerate(ready):
        result = results[index]
        if result.ok:
            continue
        try:
            prepared.stored(result, await documents.holder(prepared, result))
        except KeyspaceError as exc:
            refusals.append(Refusal(index, exc))
    if refusals:
        raise BatchRefused(spec, refusals)
    return [prepared.stored(results[n]) for n, prepared in enumerate(ready)]
