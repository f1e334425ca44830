"""Field declarations of the DSL (``keyspace.declare``): one constructor per field kind, each
returning a :class:`Column` that ``table`` turns into a pydantic field, index attributes,
uniques and references."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pydantic import BaseModel

from . import fieldtypes as ft
from .fieldtypes import Timestamp
from .query import LITERAL
from .schema import EntitySpec, FieldKind, IdStrategy, Indexed, OnDelete, Sensitive, Unique


class Generated(Enum):
    """Defaults computed when a document is created."""

    NOW = "now"  # the current UTC time in the engine's ISO form
    CUID = "cuid"  # a fresh cuid (keyspace.ids)
    UUID = "uuid"  # a fresh lowercase uuid4


NOW = Generated.NOW
CUID = Generated.CUID
UUID = Generated.UUID


class _Required(Enum):
    REQUIRED = "required"


REQUIRED = _Required.REQUIRED
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
ID_FIELD = "id"


@dataclass(frozen=True)
class Column:
    """One declared field, as the field constructors describe it for :func:`table`."""

    name: str
    annotation: Any  # the pydantic type of a present, non-null value
    null: bool = False
    default: Any = REQUIRED
    indexed: tuple[Indexed, ...] = ()
    unique: Unique | None = None
    updated_at: bool = False
    server_time: bool = False  # always the server's time: a client's value is overwritten
    # A reference: its target, on-delete rule, reverse relation and arity. Its id pattern is
    # the target's, known once the table is (a self-reference) or from a declared target.
    target: str | None = None
    target_ids: IdStrategy | None = None
    on_delete: OnDelete = OnDelete.RESTRICT
    many: bool = False
    relation: str | None = None
    # Stored encrypted when the keyspace has a key (keyspace.sealing).
    sensitive: Sensitive | None = None

    def __post_init__(self) -> None:
        assert _NAME.fullmatch(self.name) and self.name != ID_FIELD, f"field name {self.name!r}"


def _column(
    name: str,
    annotation: Any,
    *,
    null: bool,
    default: Any,
    kind: FieldKind | None,
    index: bool,
    sortable: bool,
    case_sensitive: bool = True,
    array: bool = False,
    places: int | None = None,
    ranked: bool = False,
    **extra: Any,
) -> Column:
    """A column, indexed as ``kind`` when ``index`` or ``sortable`` (a sort field is one)."""
    indexed: tuple[Indexed, ...] = ()
    if index or sortable:
        assert kind is not None, f"{name}: this kind cannot be indexed"
        assert not (sortable and null), f"{name}: a nullable field cannot be a sort field"
        field = Indexed(
            name,
            name,
            kind,
            sortable,
            case_sensitive,
            array,
            nullable=null,
            places=places,
            ranked=ranked,
        )
        indexed = (field,)
    return Column(name, annotation, null=null, default=default, indexed=indexed, **extra)


# --- field constructors (the names are the DSL's) -----------------------------------------


def string(
    name: str,
    *,
    null: bool = False,
    default: Any = REQUIRED,
    unique: bool = False,
    case_insensitive: bool = False,
    index: bool = False,
    min_length: int = 0,
    max_length: int = 1000,
    pattern: str | None = None,
    format: str | None = None,  # "email"
    multiline: bool = False,
    sensitive: bool = False,
) -> Column:
    """One line of text (``multiline``: tabs and line breaks too); ``case_insensitive``
    makes its unique claim and its filter caseless (keyspace.text.fold). ``sensitive``:
    stored encrypted when the keyspace has a key, its filter and claim on blind tokens
    (keyspace.sealing); its values may not start with ``enc:``."""
    assert format in (None, "email"), f"{name}: unknown format {format!r}"
    annotation = ft.string_type(
        min_length=min_length,
        max_length=max_length,
        pattern=pattern,
        email=format == "email",
        multiline=multiline,
    )
    return _column(
        name,
        annotation,
        null=null,
        default=default,
        kind=FieldKind.TAG,
        index=index,
        sortable=False,  # arbitrary text cannot be a cursor value (query.LITERAL)
        case_sensitive=not case_insensitive,
        unique=Unique(name, case_insensitive=case_insensitive) if unique else None,
        sensitive=Sensitive(name, case_insensitive) if sensitive else None,
    )


def text(
    name: str,
    *,
    null: bool = False,
    default: Any = REQUIRED,
    max_length: int = 10_000,
    multiline: bool = True,
) -> Column:
    """Prose searchable word by word through ``?q=`` (indexed as full text)."""
    annotation = ft.string_type(
        min_length=0, max_length=max_length, pattern=None, email=False, multiline=multiline
    )
    searched = Indexed(name, name, FieldKind.TEXT, nullable=null)
    return Column(name, annotation, null=null, default=default, indexed=(searched,))


def integer(
    name: str,
    *,
    null: bool = False,
    default: Any = REQUIRED,
    ge: int | None = None,
    le: int | None = None,
    index: bool = False,
    sortable: bool = False,
    ranked: bool = False,
) -> Column:
    """A JSON integer (never a boolean or a float). Within int64; within 2^53 when indexed,
    since the index holds numbers as doubles. ``ranked``: sortable, and kept in a sorted set
    by every write (keyspace.ranks), for lists sorted by it that match many documents."""
    sortable = sortable or ranked
    bound = ft.SAFE_INTEGER if index or sortable else ft.INT64_MAX
    low = -bound if ge is None else ge
    high = bound if le is None else le
    assert -bound <= low <= high <= bound, f"{name}: bounds must lie within ±{bound}"
    annotation = ft.integer_type(ge=low, le=high)
    return _column(
        name,
        annotation,
        null=null,
        default=default,
        kind=FieldKind.NUMERIC,
        index=index,
        sortable=sortable,
        ranked=ranked,
    )


def bigint(
    name: str, *, null: bool = False, default: Any = REQUIRED, index: bool = False
) -> Column:
    """A 64-bit integer, exact past 2^53: a number or a string in, a decimal string out.
    Not indexable (the index's doubles are not exact past 2^53)."""
    assert not index, f"{name}: a bigint cannot be indexed (doubles are not exact past 2^53)"
    return _column(
        name, ft.bigint_type(), null=null, default=default, kind=None, index=False, sortable=False
    )


def decimal(
    name: str,
    *,
    null: bool = False,
    default: Any = REQUIRED,
    max_digits: int = ft.INDEX_DIGITS,
    places: int | None = None,
    ge: object = None,
    le: object = None,
    index: bool = False,
    sortable: bool = False,
) -> Column:
    """An exact decimal (``DECIMAL(max_digits, places)``): a number or a string in, a
    canonical string out (keyspace.fieldtypes), never rounded and never a float."""
    if index or sortable:
        assert max_digits <= ft.INDEX_DIGITS, (
            f"{name}: an indexed decimal has at most {ft.INDEX_DIGITS} digits (exact order)"
        )
    annotation = ft.decimal_type(max_digits=max_digits, places=places, ge=ge, le=le)
    return _column(
        name,
        annotation,
        null=null,
        default=default,
        kind=FieldKind.DECIMAL,
        index=index,
        sortable=sortable,
        places=places,
    )


def boolean(
    name: str,
    *,
    null: bool = False,
    default: Any = REQUIRED,
    index: bool = False,
    sortable: bool = False,
) -> Column:
    """JSON true or false (no strings); filtered as ``?name=true|false``."""
    return _column(
        name,
        ft.boolean_type(),
        null=null,
        default=default,
        kind=FieldKind.BOOL,
        index=index,
        sortable=sortable,
    )


def enum(
    name: str,
    values: Sequence[str],
    *,
    null: bool = False,
    default: Any = REQUIRED,
    index: bool = False,
    sortable: bool = False,
) -> Column:
    """One of ``values`` (a 400 names them); filtered as an exact tag."""
    if sortable:
        assert all(re.fullmatch(LITERAL, v) for v in values), f"{name}: unsortable values"
    return _column(
        name,
        ft.enum_type(values),
        null=null,
        default=default,
        kind=FieldKind.TAG,
        index=index,
        sortable=sortable,
    )


def timestamp(
    name: str,
    *,
    null: bool = False,
    default: Any = REQUIRED,
    updated_at: bool = False,
    server_time: bool = False,
    index: bool = False,
    sortable: bool = False,
) -> Column:
    """An ISO-8601 time, stored in the engine's naive-UTC form. ``updated_at``: set on
    every update that does not set it (and defaulting to :data:`NOW`). ``server_time``: set
    to the server's time on every create and update, whatever the client sent (a heartbeat's
    last-seen time, which a client must not choose)."""
    updated_at = updated_at or server_time
    if updated_at and default is REQUIRED:
        default = NOW
    return _column(
        name,
        Timestamp,
        null=null,
        default=default,
        kind=FieldKind.TIME,
        index=index,
        sortable=sortable,
        updated_at=updated_at,
        server_time=server_time,
    )


def json(
    name: str,
    *,
    null: bool = False,
    default: Any = REQUIRED,
    model: type[BaseModel] | None = None,
    max_bytes: int = ft.JSON_MAX_BYTES,
    index: bool = False,
) -> Column:
    """Free JSON (an object or an array), or a typed nested ``model`` (extra="forbid");
    at most ``max_bytes`` serialized. Not indexable."""
    assert not index, f"{name}: JSON cannot be indexed; declare the values to filter on"
    annotation = ft.json_type(model=model, max_bytes=max_bytes)
    return _column(
        name, annotation, null=null, default=default, kind=None, index=False, sortable=False
    )


def vector(
    name: str,
    dim: int,
    *,
    metric: str = "cosine",
    null: bool = False,
    index: bool = True,
) -> Column:
    """An embedding: a JSON array of exactly ``dim`` finite numbers (at most
    :data:`~keyspace.fieldtypes.MAX_DIM`), stored as floats. ``index``: searched by cosine
    distance (``POST /api/<collection>/search``, :mod:`keyspace.vectors`); one per table."""
    assert metric == "cosine", f"{name}: cosine is the one metric served, not {metric!r}"
    annotation = ft.vector_type(dim)
    indexed = (Indexed(name, name, FieldKind.VECTOR, nullable=null, dim=dim),) if index else ()
    return Column(name, annotation, null=null, indexed=indexed)


def ref(
    name: str,
    target: str | EntitySpec,
    *,
    null: bool = False,
    default: Any = REQUIRED,
    on_delete: OnDelete = OnDelete.RESTRICT,
    many: bool = False,
    index: bool = False,
    relation: str | None = None,
) -> Column:
    """The id of a ``target`` document (``many``: an array of distinct ids). ``target`` is
    the entity name, or its declaration, which also gives the id pattern to check."""
    known = target if isinstance(target, EntitySpec) else None
    return _column(
        name,
        None,  # the id pattern is the target's: table() knows it
        null=null,
        default=default,
        kind=FieldKind.TAG,
        index=index,
        sortable=False,
        array=many,
        target=known.name if known is not None else target,
        target_ids=known.id_strategy if known is not None else None,
        on_delete=on_delete,
        many=many,
        relation=relation,
    )


# --- tables --------------------------------------------------------------------------------
