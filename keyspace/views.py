"""Views: a system's read routes beyond its collections' own, declared as data.

A :class:`View` is a GET path (``/api/trading/orderbook/{asset_id}``) answered from parts,
each one of the engine's reads with values taken from the path:

- :class:`One`: one document, by id or by a unique field (404 when there is none);
- :class:`Groups`: one of the system's declared aggregations (keyspace.aggregate) with some
  of its filters fixed by path parameters;
- :class:`Rows`: a page of a collection's list (keyspace.query) with fixed filters, and the
  client's own list parameters where the view lets them through.

A view's ``shape`` (a pure function of the system package) turns the parts' values into the
answer; ``answer`` is the answer's pydantic model, for the OpenAPI document. A view made of
one ``One`` and no shape is a document read: the document is the answer, sent with its ETag.

Every other view is a computed answer and may be cached (``category``: the system's
``cache_ttls`` give each category its TTL). A cached answer is keyed by the view's name
and its parameters, with the versions of every collection its parts read folded into the key
(keyspace.cache), so a write is never followed by an answer computed before it.

This module is pure: declarations, their checks, and the binding of a request's parameters
to validated reads (:func:`bind`). keyspace.viewing runs them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from .aggregate import Aggregate, Aggregation
from .errors import NotFound, ValidationFailed
from .query import Query, parse
from .schema import EntitySpec, Schema

MAX_PATH_VALUE = 512  # longer path values name nothing (404), like ids and uniques
_PARAM = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class One:
    """The document of ``collection`` whose id (``field`` None) or unique ``field`` equals
    the path parameter ``param``; a missing document answers the whole view with 404."""

    collection: str
    param: str
    field: str | None = None


@dataclass(frozen=True)
class Groups:
    """The system's declared aggregation ``aggregate``, each (filter, path parameter) of
    ``bind`` fixing one of its filters to the path's value."""

    aggregate: str
    bind: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Rows:
    """A page of ``collection``'s list: ``filters`` fixed, ``bind`` (filter, path parameter)
    fixed from the path, ``sort`` and ``limit`` unless the client gives its own. Where
    ``open``, the client's query parameters are this list's (``renames``: client name ->
    list name, e.g. ``("from", "timestamp_min")``); at most one part of a view is open."""

    collection: str
    filters: tuple[tuple[str, str], ...] = ()
    bind: tuple[tuple[str, str], ...] = ()
    sort: str | None = None
    limit: int | None = None
    open: bool = False
    renames: tuple[tuple[str, str], ...] = ()
    when_asked: bool = False  # an open part read only when the client gives a parameter


Part = One | Groups | Rows
Shape = Callable[["Values"], Any]


@dataclass(frozen=True)
class Values:
    """What a shape reads: each part's value by name (a document dict, an aggregate
    ``Result`` or a list ``Page``; None for a ``Rows`` left unread, ``when_asked``) and the
    path's parameters."""

    parts: Mapping[str, Any]
    path: Mapping[str, str]


@dataclass(frozen=True)
class View:
    """One declared read route. ``category`` names its cache TTL in the system's
    ``cache_ttls`` (None: never cached; a document read is never cached)."""

    name: str
    path: str
    summary: str
    tag: str
    parts: tuple[tuple[str, Part], ...]
    answer: type[BaseModel] | None = None  # None: the one document's own model
    shape: Shape | None = None
    category: str | None = None

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(_PARAM.findall(self.path))

    @property
    def document(self) -> One | None:
        """The part when the view is a plain document read (answered with its ETag)."""
        if len(self.parts) == 1 and self.shape is None and isinstance(self.parts[0][1], One):
            return self.parts[0][1]
        return None

    @property
    def open(self) -> Rows | None:
        """The part taking the client's query parameters, if any."""
        return next((p for _, p in self.parts if isinstance(p, Rows) and p.open), None)

    def collections(self, aggregates: Sequence[Aggregate]) -> tuple[str, ...]:
        """Every collection the view reads, in a fixed order."""
        by_name = {a.name: a for a in aggregates}
        found = {
            by_name[p.aggregate].collection if isinstance(p, Groups) else p.collection
            for _, p in self.parts
        }
        return tuple(sorted(found))

    def documents(self) -> tuple[str, ...]:
        """The collections whose documents the view answers (not through an aggregation,
        which reads only indexed fields), in a fixed order."""
        return tuple(sorted({p.collection for _, p in self.parts if not isinstance(p, Groups)}))

    def check(self, schema: Schema, aggregates: Sequence[Aggregate]) -> None:
        """Refuse a view naming what the system lacks (at declaration time)."""
        where = f"view {self.name}"
        assert self.path.startswith("/api/"), f"{where}: a view's path is under /api/"
        assert self.parts, f"{where}: no part"
        assert self.shape is not None or len(self.parts) == 1, f"{where}: several parts, no shape"
        assert self.document is None or self.category is None, f"{where}: a document read"
        assert sum(isinstance(p, Rows) and p.open for _, p in self.parts) <= 1, where
        by_name = {a.name: a for a in aggregates}
        used: set[str] = set()
        for _, part in self.parts:
            if isinstance(part, One):
                spec = _entity(schema, part.collection, where)
                if part.field is not None:
                    assert any(u.field == part.field for u in spec.uniques), (
                        f"{where}: {part.field} is not a unique field of {part.collection}"
                    )
                used.add(part.param)
            elif isinstance(part, Groups):
                assert part.aggregate in by_name, f"{where}: no aggregate {part.aggregate}"
                used |= {p for _, p in part.bind}
            else:
                _entity(schema, part.collection, where)
                used |= {p for _, p in part.bind}
        missing = set(self.params) ^ used
        assert not missing, f"{where}: path parameters and parts disagree on {sorted(missing)}"


def _entity(schema: Schema, collection: str, where: str) -> EntitySpec:
    spec = next((e for e in schema.entities if e.collection == collection), None)
    assert spec is not None, f"{where}: no collection {collection!r}"
    return spec


# --- binding a request -------------------------------------------------------------------


@dataclass(frozen=True)
class Bound:
    """A request's reads, validated: documents by (entity, field or None, value), then
    aggregations and lists, each under its part's name."""

    ones: tuple[tuple[str, EntitySpec, str | None, str], ...]
    groups: tuple[tuple[str, EntitySpec, Aggregation], ...]
    rows: tuple[tuple[str, EntitySpec, Query], ...]
    skipped: tuple[str, ...]  # Rows parts left unread (when_asked)


def _invalid(name: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{name}: {message}", details=[{"field": name, "message": message}])


def _client_params(view: View, params: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """The client's parameters under the open part's list names; ValidationFailed when the
    view takes none, or for a name the view fixes or spells another way."""
    part = view.open
    renames = dict(part.renames) if part is not None else {}
    fixed = {name for name, _ in (*part.filters, *part.bind)} if part is not None else set()
    out: dict[str, list[str]] = {}
    for name, values in params.items():
        if part is None or name in renames.values():
            raise _invalid(name, "unknown query parameter")
        target = renames.get(name, name)
        if target in fixed:
            raise _invalid(name, "fixed by the route")
        out[target] = list(values)
    return out


def _parse_named(
    spec: EntitySpec, params: Mapping[str, Sequence[str]], renames: Sequence[tuple[str, str]]
) -> Query:
    """The list query, its errors naming parameters as the client spells them."""
    try:
        return parse(spec, params)
    except ValidationFailed as exc:
        message, details = exc.message, exc.details
        for client, listed in renames:
            message = re.sub(rf"\b{listed}\b", client, message)
            details = [
                {**d, "field": client if d.get("field") == listed else d.get("field")}
                for d in details or []
            ]
        raise ValidationFailed(message, details=details) from None


def _path_value(spec: EntitySpec, name: str, value: str) -> list[str]:
    """A path's value for the filter ``name``; NotFound when no document could hold it (as a
    malformed id names nothing)."""
    try:
        parse(spec, {name: [value]})
    except ValidationFailed:
        raise NotFound(f"no {spec.name} has {name} {value!r}") from None
    return [value]


def bind(
    view: View,
    schema: Schema,
    aggregates: Sequence[Aggregate],
    path: Mapping[str, str],
    params: Mapping[str, Sequence[str]],
) -> Bound:
    """The view's reads for one request: ValidationFailed (a 400) for a client parameter a
    list refuses, NotFound for a path value no document could hold."""
    by_name = {a.name: a for a in aggregates}
    client = _client_params(view, params)
    ones, groups, rows, skipped = [], [], [], []
    for name, part in view.parts:
        if isinstance(part, One):
            ones.append((name, schema.collection(part.collection), part.field, path[part.param]))
        elif isinstance(part, Groups):
            declared = by_name[part.aggregate]
            target = schema.collection(declared.collection)
            extra = {f: _path_value(target, f, path[p]) for f, p in part.bind}
            spec, agg = declared.compile(schema, extra)
            groups.append((name, spec, agg))
        else:
            spec = schema.collection(part.collection)
            asked = client if part.open else {}
            if part.when_asked and not asked:
                skipped.append(name)
                continue
            wanted: dict[str, list[str]] = {}
            for f, value in part.filters:
                wanted.setdefault(f, []).append(value)
            for f, p in part.bind:
                wanted[f] = _path_value(spec, f, path[p])
            if part.sort is not None and "sort" not in asked:
                wanted["sort"] = [part.sort]
            if part.limit is not None and "limit" not in asked:
                wanted["limit"] = [str(part.limit)]
            rows.append((name, spec, _parse_named(spec, {**wanted, **asked}, part.renames)))
    return Bound(tuple(ones), tuple(groups), tuple(rows), tuple(skipped))
