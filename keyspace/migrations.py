"""Migrations a system declares in its package (``System.migrations``), and the pure half of
running them: which are pending, what the registry holds, and one batch's commit plan.

A migration has a version (ordered, unique per system), a description and one collection:

- an *index change* (:func:`index_change`): nothing to convert; applying it builds the
  entity's current index version beside the live one and moves the alias once it is complete;
- a *data migration*: a pure function ``doc -> new doc`` (``None``: unchanged) applied to
  every document of the collection in resumable batches (keyspace.migrating). The
  constructors :func:`add_field`, :func:`rename_field` and :func:`split_value` cover the
  common ones and are idempotent by construction, as every such function must be: a batch
  is applied to the documents as they are now, so running one again changes nothing.

The release that declares a data migration changes the declaration in the same release and
passes the migration to ``table(..., upgrades=(...))``, so the model accepts both shapes
while the migration runs and stores every document it validates in the new one
(docs/migrations.md).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from .keys import Names
from .plan import Loaded, Plan, mirrored_change, plan_update
from .schema import Schema
from .sealing import validate_stored

Change = Callable[[Mapping[str, Any]], "dict[str, Any] | None"]

INDEX, DATA = "index", "data"


@dataclass(frozen=True)
class Migration:
    """One declared migration; ``change`` None: an index change."""

    version: int
    description: str
    collection: str
    change: Change | None = None

    def __post_init__(self) -> None:
        assert type(self.version) is int and self.version >= 1, f"version {self.version!r}"
        assert self.description.strip(), f"migration {self.version}: a description"

    @property
    def kind(self) -> str:
        return INDEX if self.change is None else DATA

    def convert(self, doc: Mapping[str, Any]) -> dict[str, Any] | None:
        """The migrated document, or None when ``doc`` needs nothing (already converted)."""
        if self.change is None:
            return None
        new = self.change(doc)
        return None if new is None or new == doc else new

    def upgrade(self, data: Any) -> Any:
        """``data`` in the new shape (as is when it already is, or is not an object): the
        model's before-validator of ``table(..., upgrades=...)``."""
        if not isinstance(data, Mapping):
            return data
        new = self.convert(data)
        return data if new is None else new

    def shown(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "description": self.description,
            "collection": self.collection,
            "kind": self.kind,
        }


def index_change(version: int, description: str, collection: str) -> Migration:
    """The collection's index definition changed: build its current version and switch."""
    return Migration(version, description, collection)


def add_field(
    version: int, collection: str, field: str, default: Any, description: str = ""
) -> Migration:
    """Give every document without ``field`` the value ``default`` (a copy of it)."""

    def change(doc: Mapping[str, Any]) -> dict[str, Any] | None:
        return None if field in doc else {**doc, field: copy.deepcopy(default)}

    return Migration(
        version, description or f"add {field} (default {default!r})", collection, change
    )


def rename_field(
    version: int, collection: str, old: str, new: str, description: str = ""
) -> Migration:
    """Move ``old`` to ``new`` in every document that still has ``old``. A document holding
    both (a write of the new release merged into an unconverted one) keeps ``new``: the new
    release's clients write the new name."""

    def change(doc: Mapping[str, Any]) -> dict[str, Any] | None:
        if old not in doc:
            return None
        out = {k: v for k, v in doc.items() if k != old}
        out.setdefault(new, doc[old])
        return out

    return Migration(version, description or f"rename {old} to {new}", collection, change)


def split_value(
    version: int,
    collection: str,
    field: str,
    split: Callable[[Any], Mapping[str, Any]],
    description: str = "",
    *,
    keep: bool = False,
) -> Migration:
    """Replace ``field`` by the fields ``split(value)`` answers (``keep``: keep ``field``
    too), in every document that still has it. ``split`` is pure; a document whose fields
    already hold what it answers is left as it is."""

    def change(doc: Mapping[str, Any]) -> dict[str, Any] | None:
        if field not in doc:
            return None
        parts = dict(split(doc[field]))
        out = {**doc, **parts}
        if not keep and field not in parts:
            del out[field]
        return None if out == doc else out

    return Migration(version, description or f"split {field}", collection, change)


def check(migrations: Sequence[Migration], schema: Schema) -> None:
    """ValueError unless versions rise strictly and every collection is declared."""
    collections = {spec.collection for spec in schema.entities}
    last = 0
    for migration in migrations:
        if migration.version <= last:
            raise ValueError(
                f"migration {migration.version} follows {last}: versions rise strictly"
            )
        if migration.collection not in collections:
            raise ValueError(
                f"migration {migration.version}: no collection {migration.collection!r}"
            )
        last = migration.version


@dataclass(frozen=True)
class Applied:
    """One registry entry: a migration recorded as applied."""

    version: int
    description: str
    collection: str
    kind: str
    applied_at: str
    documents: int = 0  # documents the data migration changed

    def encode(self) -> str:
        body = {k: v for k, v in self.shown().items() if k != "version"}
        return orjson.dumps(body).decode()

    def shown(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "description": self.description,
            "collection": self.collection,
            "kind": self.kind,
            "applied_at": self.applied_at,
            "documents": self.documents,
        }


_FIELDS = {"description": str, "collection": str, "kind": str, "applied_at": str, "documents": int}


def parse_applied(field: str, value: str) -> Applied:
    """A registry entry from its hash field and JSON value; ValueError when malformed."""
    if not (field.isascii() and field.isdigit() and not field.startswith("0")):
        raise ValueError(f"registry field {field[:40]!r} is not a migration version")
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise ValueError(f"migration {field}: not JSON") from None
    if not isinstance(body, dict) or set(body) != set(_FIELDS):
        raise ValueError(f"migration {field}: must hold exactly {', '.join(sorted(_FIELDS))}")
    for name, kind in _FIELDS.items():
        if type(body[name]) is not kind:
            raise ValueError(f"migration {field}: {name} must be a {kind.__name__}")
    if body["kind"] not in (INDEX, DATA):
        raise ValueError(f"migration {field}: kind must be {INDEX} or {DATA}")
    return Applied(int(field), **body)


@dataclass(frozen=True)
class Status:
    """What the registry says against the declarations."""

    applied: list[Applied]
    pending: list[Migration]
    unknown: list[Applied]  # recorded, not declared: data of a newer release
    malformed: list[str]  # registry fields that do not parse, with why

    def shown(self) -> dict[str, Any]:
        return {
            "applied": [a.shown() for a in self.applied],
            "pending": [m.shown() for m in self.pending],
            "unknown": [a.shown() for a in self.unknown],
            "malformed": self.malformed,
        }


def status(migrations: Sequence[Migration], registry: Mapping[str, str]) -> Status:
    """Applied, pending (in version order), unknown and malformed entries."""
    recorded: dict[int, Applied] = {}
    malformed: list[str] = []
    for field, value in registry.items():
        try:
            entry = parse_applied(field, value)
        except ValueError as exc:
            malformed.append(str(exc))
            continue
        recorded[entry.version] = entry
    declared = {m.version for m in migrations}
    return Status(
        applied=[recorded[v] for v in sorted(recorded) if v in declared],
        pending=sorted((m for m in migrations if m.version not in recorded), key=_version),
        unknown=[recorded[v] for v in sorted(recorded) if v not in declared],
        malformed=malformed,
    )


def _version(migration: Migration) -> int:
    return migration.version


def to_run(pending: Iterable[Migration], to: int | None) -> list[Migration]:
    """The pending migrations up to version ``to`` (None: all), in version order."""
    return [m for m in sorted(pending, key=_version) if to is None or m.version <= to]


class MigrationFailed(Exception):
    """A document the migration cannot convert; the message names its key and why."""


@dataclass(frozen=True)
class Progress:
    """A running data migration's resume point (its progress hash)."""

    cursor: int = 0
    examined: int = 0
    converted: int = 0
    scanned: bool = False  # the whole collection was passed; what remains is index and record

    def fields(self) -> dict[str, str]:
        return {
            "cursor": str(self.cursor),
            "examined": str(self.examined),
            "converted": str(self.converted),
            "scanned": "1" if self.scanned else "0",
        }


def parse_progress(raw: Mapping[str, str]) -> Progress | None:
    """The resume point stored in the progress hash; None when there is none (or it is
    unreadable: the pass then starts again, which only costs time)."""
    try:
        return Progress(
            cursor=int(raw["cursor"]),
            examined=int(raw["examined"]),
            converted=int(raw["converted"]),
            scanned=raw["scanned"] == "1",
        )
    except (KeyError, ValueError):
        return None


def converted(migration: Migration, loaded: Loaded) -> dict[str, Any] | None:
    """``loaded``'s migrated document in stored form (validated under the declaration), or
    None when it needs nothing; MigrationFailed when the result is not a valid document."""
    try:
        new = migration.convert(loaded.doc)
        if new is None:
            return None
        # Sealed values pass as stored (keyspace.sealing): a migration sees their ciphertext.
        stored = validate_stored(loaded.spec, new)
    except Exception as exc:  # ValidationFailed, or whatever the migration's function raised
        raise MigrationFailed(f"{loaded.key}: {type(exc).__name__}: {exc}") from None
    if stored.get(loaded.spec.id_field) != loaded.doc_id:
        raise MigrationFailed(f"{loaded.key}: a migration cannot change the id")
    if mirrored_change(loaded.spec, loaded.doc, stored):
        raise MigrationFailed(
            f"{loaded.key}: a migration cannot change the fields roles derive from"
        )
    return None if stored == loaded.doc else stored


def plan_batch(
    schema: Schema,
    changes: Sequence[tuple[Loaded, dict[str, Any]]],
    progress_key: str,
    after: Progress,
) -> Plan:
    """One commit for one batch: every document still exactly as read (``equals``), each
    replaced by its migrated form with its claims, references, projection and cache versions
    as any update does, and the resume point ``after`` written in the same commit, so a kill
    between a batch and its record cannot happen: both are applied or neither."""
    plan = Plan(schema.names.pause_key())
    for old, new in changes:
        plan_update(schema, old, new, plan=plan)
    for name, value in after.fields().items():
        plan.write("hset", progress_key, name, value)
    return plan


def plan_record(names: Names, entry: Applied, progress_key: str) -> Plan:
    """Record ``entry`` as applied and drop its resume point, in one commit."""
    plan = Plan(names.pause_key())
    plan.write("hset", names.migrations_key(), str(entry.version), entry.encode())
    plan.write("del", progress_key)
    return plan
