"""The declaration vocabulary: what an entity type is, as data.

An :class:`EntitySpec` names everything the engine needs: key prefix, id
strategy, pydantic model, unique fields, references and what a delete does to
them, indexed fields, status transitions and defaults. The write plans, the Lua
arguments, the RediSearch index definitions and the query layer are all derived
from these declarations, so adding an entity type is one declaration.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import BaseModel

from .keys import Names
from .text import fold, nfc


class FieldKind(enum.Enum):
    """How a field is indexed and queried."""

    TAG = "tag"  # exact equality; arrays match on any member
    NUMERIC = "numeric"  # equality and _min/_max ranges
    TEXT = "text"  # full-text terms through ``q``
    TIME = "time"  # ISO-8601 strings: equality, ranges and sort, compared as normalized text


class OnDelete(enum.Enum):
    """What deleting a referenced document does to the documents that refer to it."""

    RESTRICT = "restrict"  # refuse the delete while any referrer exists
    CASCADE = "cascade"  # delete the referrers too, in the same script
    PULL = "pull"  # remove the id from the referrer's array field
    SET_NULL = "set null"  # set the referrer's (nullable, scalar) field to null


@dataclass(frozen=True)
class Indexed:
    """One queryable attribute: ``name`` is the query parameter, ``path`` the dotted doc path."""

    name: str
    path: str
    kind: FieldKind
    sortable: bool = False
    case_sensitive: bool = True
    array: bool = False


@dataclass(frozen=True)
class Unique:
    """A field whose value may be held by one document at a time."""

    field: str
    case_insensitive: bool = True

    def normalize(self, value: str) -> str:
        """The claimed form of ``value``: caseless (keyspace.text.fold), or NFC."""
        return fold(value) if self.case_insensitive else nfc(value)


@dataclass(frozen=True)
class Reference:
    """``field`` holds the id (or, when ``many``, a list of ids) of a ``target`` document."""

    field: str
    target: str
    on_delete: OnDelete
    many: bool = False
    relation: str | None = None  # route segment listing the referrers under their target


@dataclass(frozen=True)
class Transitions:
    """Allowed changes of a status field; staying in the same state is always allowed."""

    field: str
    allowed: Mapping[str, frozenset[str]]

    def permits(self, old: str, new: str) -> bool:
        return old == new or new in self.allowed.get(old, frozenset())


@dataclass(frozen=True)
class Satellites:
    """The access tokens a user document owns (``Names.user_tokens_key`` lists them, each a
    hash under ``Names.token_key``). They are deleted with the document, and whenever one of
    the ``watch`` fields changes, ``derive(doc)`` (e.g. ``{"role": "admin"}``) is copied into
    every token hash in the same commit."""

    watch: tuple[str, ...]
    derive: Callable[[Mapping[str, Any]], Mapping[str, str]]


Default = Callable[[Mapping[str, Any], str], Any]
"""Computes a missing field from the document being created and its id."""

DeriveId = Callable[[Mapping[str, Any]], str]


@dataclass(frozen=True)
class EntitySpec:
    """Declaration of one document type stored under ``<prefix>:<id>``."""

    name: str
    prefix: str
    collection: str
    id_field: str
    model: type[BaseModel]
    fields: tuple[Indexed, ...]
    uniques: tuple[Unique, ...] = ()
    references: tuple[Reference, ...] = ()
    transitions: Transitions | None = None
    defaults: Mapping[str, Default] = field(default_factory=dict)
    touch_on_update: tuple[str, ...] = ()
    derive_id: DeriveId | None = None
    # The fields ``derive_id`` reads. One document per tuple of their values: the tuple is
    # claimed under its own key, and an id already held by another tuple is an id collision.
    derived_from: tuple[str, ...] = ()
    satellites: Satellites | None = None
    # The field naming the user who owns a document (members may write only their own);
    # None: only admins write the entity.
    owner: str | None = None
    # Where its keys live: set for every entity when a system's schema is bound (Schema.bind).
    names: Names = field(default_factory=Names)

    def __post_init__(self) -> None:
        assert (self.derive_id is None) == (not self.derived_from), (
            f"{self.name}: derive_id and derived_from go together"
        )

    def source(self, doc: Mapping[str, Any]) -> dict[str, str] | None:
        """The ``derived_from`` values of ``doc`` (the tuple its id is derived from); None
        when the id is not derived or a value is not a string (validation refuses it)."""
        values = {name: get_path(doc, name) for name in self.derived_from}
        if not values or not all(isinstance(v, str) for v in values.values()):
            return None
        return values

    def key(self, doc_id: str) -> str:
        """The key of one document, e.g. ``driver:driver_1`` or ``normaldance:user:<id>``."""
        return self.names.doc_key(self.prefix, doc_id)

    @property
    def counted(self) -> bool:
        """True when ids come from the entity's INCR counter rather than the document."""
        return self.derive_id is None

    def indexed(self, name: str) -> Indexed | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def text_fields(self) -> tuple[Indexed, ...]:
        return tuple(f for f in self.fields if f.kind is FieldKind.TEXT)

    @property
    def id_index(self) -> Indexed:
        found = self.indexed(self.id_field)
        assert found is not None, f"{self.name} must index its id field"
        return found


@dataclass(frozen=True)
class SingletonSpec:
    """A single document under a fixed key (``config:system``, ``analytics:metrics``)."""

    name: str
    key: str
    model: type[BaseModel]
    default: Mapping[str, Any]
    maintenance: bool = False  # holds the system.maintenance flag (authorize.lua reads it)


@dataclass(frozen=True)
class Schema:
    """All declarations the engine serves."""

    entities: tuple[EntitySpec, ...]
    singletons: tuple[SingletonSpec, ...] = ()
    # Where the system's keys live (keyspace.keys.Names); bound when a system is served.
    names: Names = field(default_factory=Names)

    def __post_init__(self) -> None:
        known = [e.name for e in self.entities]
        assert len(known) == len(set(known)), "entity names must be unique"
        for spec in self.entities:
            assert spec.names == self.names, f"{spec.name}: bind the schema, not one entity"
            for ref in spec.references:
                assert ref.target in known, f"{spec.name}.{ref.field} -> unknown {ref.target}"

    def bind(self, names: Names) -> Schema:
        """This schema with every key under ``names`` (itself when already there)."""
        if names == self.names:
            return self
        entities = tuple(replace(e, names=names) for e in self.entities)
        singles = tuple(replace(s, key=names.namespace + s.key) for s in self.singletons)
        return replace(self, entities=entities, singletons=singles, names=names)

    @property
    def users(self) -> EntitySpec:
        """The entity whose documents own access tokens (the one declaring satellites)."""
        owners = [e for e in self.entities if e.satellites is not None]
        assert len(owners) == 1, "exactly one entity owns the access tokens"
        return owners[0]

    @property
    def maintenance_key(self) -> str | None:
        """The singleton whose ``system.maintenance`` flag refuses members' writes, if any."""
        return next((s.key for s in self.singletons if s.maintenance), None)

    def entity(self, name: str) -> EntitySpec:
        for spec in self.entities:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def singleton(self, name: str) -> SingletonSpec:
        for spec in self.singletons:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def inbound(self, target: str) -> Iterator[tuple[EntitySpec, Reference]]:
        """Every (entity, reference) pair that points at documents of ``target``."""
        for spec in self.entities:
            for ref in spec.references:
                if ref.target == target:
                    yield spec, ref


def get_path(doc: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, or None when any step is missing."""
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def ref_ids(doc: Mapping[str, Any], ref: Reference) -> list[str]:
    """The ids a document refers to through one reference, in document order, deduplicated."""
    value = get_path(doc, ref.field)
    items = value if ref.many and isinstance(value, list) else [value]
    return list(dict.fromkeys(v for v in items if isinstance(v, str)))
