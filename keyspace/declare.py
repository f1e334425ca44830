"""The declaration DSL: systems declare their tables with it, and it builds the engine's
:class:`~keyspace.schema.EntitySpec` (pydantic model, indexed fields, uniques, references,
defaults and touch fields) from one line per field::

    USER = table(
        "user",
        collection="users",
        id=IdStrategy.CUID,
        fields=(
            string("email", null=True, unique=True, case_insensitive=True, index=True),
            boolean("isAdmin", default=False, index=True),
            timestamp("updatedAt", default=NOW, updated_at=True, index=True, sortable=True),
        ),
        owner="id",
    )

Every constructor takes ``null`` (the value may be JSON null, stored as null when absent),
``default`` (a literal, :data:`NOW`, :data:`CUID` or :data:`UUID`; filled on create), and
where the kind can be queried ``index`` (a list filter) and ``sortable`` (``?sort=``; never
on a nullable field). A field with neither ``null`` nor a default is required. The document's
field order is the declaration order, with ``id`` first. ``table(..., ttl=SECONDS)`` makes its
documents expire (docs/keyspace.md §9); ``table(..., upsert=True)`` lets a PUT create. The
field constructors live in ``keyspace.columns``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    TypeAdapter,
    ValidationError,
    create_model,
    model_validator,
)

from . import fieldtypes as ft
from .codec import now_iso
from .columns import (
    CUID,
    ID_FIELD,
    NOW,
    REQUIRED,
    UUID,
    Column,
    Generated,
    bigint,
    boolean,
    decimal,
    enum,
    integer,
    json,
    ref,
    string,
    text,
    timestamp,
    vector,
)
from .features import Expiry, Lockable, OpLog, Profile
from .fieldtypes import Timestamp
from .ids import id_pattern, new_id
from .keys import ID_PATTERN
from .migrations import DATA, Migration
from .schema import (
    Default,
    DeriveId,
    EntitySpec,
    FieldKind,
    IdStrategy,
    Indexed,
    Reference,
    Satellites,
    Transitions,
    UniqueTogether,
)


def _default(value: Any) -> Default:
    if value is NOW:
        return lambda doc, doc_id: now_iso()
    if value in (CUID, UUID):
        strategy = IdStrategy.CUID if value is CUID else IdStrategy.UUID
        return lambda doc, doc_id: new_id(strategy)
    return lambda doc, doc_id: copy.deepcopy(value)  # a fresh copy of a {} or [] per document


def _annotation(column: Column, table: str, ids: IdStrategy) -> Any:
    if column.target is None:
        return column.annotation
    strategy = column.target_ids or (ids if column.target == table else None)
    pattern = id_pattern(strategy) if strategy is not None else ID_PATTERN
    return ft.ref_type(pattern, many=column.many)


def _check_default(column: Column, annotation: Any) -> None:
    """A literal default must be a valid value (caught at declaration, not at a create)."""
    if column.default is REQUIRED or (column.default is None and column.null):
        return
    if column.default is NOW:
        assert annotation is Timestamp, f"{column.name}: NOW is a timestamp's default"
        return
    if isinstance(column.default, Generated):
        probe = new_id(IdStrategy.CUID if column.default is CUID else IdStrategy.UUID)
        TypeAdapter(annotation).validate_python(probe)  # a string field that takes such ids
        return
    try:
        TypeAdapter(annotation).validate_python(column.default)
    except ValidationError as exc:
        raise AssertionError(f"{column.name}: invalid default {column.default!r}: {exc}") from None


def _model_name(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def table(
    name: str,
    *,
    collection: str,
    fields: Sequence[Column],
    id: IdStrategy = IdStrategy.COUNTER,
    unique_together: Sequence[Sequence[str]] = (),
    owner: str | None = None,
    prefix: str | None = None,
    model_name: str | None = None,
    transitions: Transitions | None = None,
    derive_id: DeriveId | None = None,
    derived_from: tuple[str, ...] = (),
    satellites: Satellites | None = None,
    admin_read: bool = False,
    lock: Lockable | None = None,
    oplog: OpLog | None = None,
    profile: Profile | None = None,
    ttl: int | None = None,
    refresh_on_write: bool = True,
    upsert: bool = False,
    open_refs: Sequence[str] = (),
    upgrades: Sequence[Migration] = (),
    checks: Sequence[Check] = (),
    admin_fields: Sequence[str] = (),
    private_fields: Sequence[str] = (),
) -> EntitySpec:
    """The declaration of one entity (``name`` is also its key prefix unless ``prefix``);
    ``admin_read``: only admins read it (sessions: their tokens are credentials); ``lock``
    and ``oplog``: its documents can be locked (keyspace.locks) and have an operation log
    (keyspace.oplog), e.g. ``lock=Lockable(ttl_seconds=30), oplog=OpLog(cap=10_000)``;
    ``profile``: a cached summary of each document (keyspace.profiles).
    ``ttl``: its documents expire that many seconds after their create and, when
    ``refresh_on_write``, after every write (else a write keeps the time left);
    ``System.served(ttls=...)`` may change the seconds. ``upsert``: a replace of a missing
    document creates it under the id asked for (``PUT /api/<collection>/{id}`` answers 201;
    CUID or UUID ids only). ``open_refs``: reference fields a member may set to any
    document, not only its own (``owner`` still decides who writes the referrer).
    ``upgrades``: the data migrations of this collection (keyspace.migrations) whose older
    shape the model still accepts, converting it before validation, so a document not yet
    migrated is read and written in the new shape (docs/migrations.md). ``checks``: rules
    over several fields of one document (SQL's CHECK constraints), each a :class:`Check`
    refusing a create or an update (422) whose result breaks it. ``admin_fields``: fields
    only admins set or change (a member's create leaves them at their default; the API
    refuses anything else with 403). ``private_fields``: fields only admins and the
    document's owner read, withheld from everyone else's answers (never indexed or unique:
    keyspace.sensitive.check_private)."""
    assert ttl is not None or refresh_on_write, f"{name}: refresh_on_write without a ttl"
    names = [c.name for c in fields]
    assert set(admin_fields) <= set(names), f"{name}: admin_fields names no field"
    assert owner not in admin_fields, f"{name}: its owner field cannot be admin-only"
    assert len(names) == len(set(names)), f"{name}: a field is declared twice"
    config = ConfigDict(extra="forbid", strict=True, protected_namespaces=())
    model_fields: dict[str, Any] = {ID_FIELD: (ft.ref_type(id_pattern(id), many=False), ...)}
    defaults: dict[str, Default] = {}
    for column in fields:
        annotation = _annotation(column, name, id)
        _check_default(column, annotation)
        if column.null:
            model_fields[column.name] = (annotation | None, None)
        else:
            model_fields[column.name] = (annotation, ...)
        if column.default is not REQUIRED and column.default is not None:
            defaults[column.name] = _default(column.default)
    title = model_name or _model_name(name)
    base = _upgrading(config, upgrades) if upgrades else None
    if checks:
        base = _checking(base or _plain(config), checks)
    model = (
        create_model(title, __config__=config, **model_fields)
        if base is None
        else create_model(title, __base__=base, **model_fields)
    )
    indexed = [Indexed(ID_FIELD, ID_FIELD, FieldKind.TAG, sortable=True)]
    for column in fields:
        indexed += column.indexed
    return EntitySpec(
        name=name,
        prefix=prefix or name,
        collection=collection,
        id_field=ID_FIELD,
        model=model,
        fields=tuple(indexed),
        uniques=tuple(c.unique for c in fields if c.unique is not None),
        sensitive=tuple(c.sensitive for c in fields if c.sensitive is not None),
        references=tuple(_reference(c) for c in fields if c.target is not None),
        transitions=transitions,
        defaults=defaults,
        touch_on_update=tuple(c.name for c in fields if c.updated_at),
        server_time=tuple(c.name for c in fields if c.server_time),
        derive_id=derive_id,
        derived_from=derived_from,
        satellites=satellites,
        id_strategy=id,
        unique_together=tuple(UniqueTogether(tuple(u)) for u in unique_together),
        owner=owner,
        admin_read=admin_read,
        lock=lock,
        oplog=oplog,
        profile=profile,
        expiry=Expiry(ttl, refresh_on_write) if ttl is not None else None,
        upsert=upsert,
        open_refs=tuple(open_refs),
        admin_fields=tuple(admin_fields),
        private_fields=tuple(private_fields),
    )


@dataclass(frozen=True)
class Check:
    """A rule over one document's fields: ``holds(document)`` must be true, else the write
    is refused with ``message`` (e.g. ``filled_quantity must not exceed quantity``).
    ``holds`` receives the validated model; fields a rule compares may be null."""

    message: str
    holds: Callable[[Any], bool]


def _plain(config: ConfigDict) -> type[BaseModel]:
    class Plain(BaseModel):
        model_config = config

    return Plain


def _checking(base: type[BaseModel], checks: Sequence[Check]) -> type[BaseModel]:
    rules = tuple(checks)

    class Checking(base):  # type: ignore[valid-type,misc]
        @model_validator(mode="after")
        def _checks(self) -> Any:
            for rule in rules:
                if not rule.holds(self):
                    raise ValueError(rule.message)
            return self

    return Checking


def _upgrading(config: ConfigDict, upgrades: Sequence[Migration]) -> type[BaseModel]:
    """A model base converting an older shape first (``table(..., upgrades=...)``)."""
    ordered = sorted(upgrades, key=lambda m: m.version)
    assert all(m.kind == DATA for m in ordered), "upgrades are data migrations"

    class Upgrading(BaseModel):
        model_config = config

        @model_validator(mode="before")
        @classmethod
        def _older_shapes(cls, data: Any) -> Any:
            for migration in ordered:
                data = migration.upgrade(data)
            return data

    return Upgrading


def _reference(column: Column) -> Reference:
    assert column.target is not None
    return Reference(
        column.name,
        column.target,
        column.on_delete,
        many=column.many,
        relation=column.relation,
        nullable=column.null,
    )


__all__ = [
    "CUID",
    "NOW",
    "UUID",
    "Check",
    "Column",
    "Generated",
    "Lockable",
    "OpLog",
    "bigint",
    "boolean",
    "decimal",
    "enum",
    "integer",
    "json",
    "ref",
    "string",
    "table",
    "text",
    "timestamp",
    "vector",
]
