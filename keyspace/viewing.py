"""Answering views (keyspace.views): their documents, aggregations and lists read through
the keyspace, shaped, and cached where the view's category has a TTL."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from . import keys, views
from .aggregate import Aggregate
from .cache import AnswerCache, params_hash
from .errors import NotFound
from .schema import EntitySpec, get_path
from .store import Stored

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from .engine import Keyspace

UNIQUE_TRIES = 3  # a claim moved between its read and the document's: ask again, this often


@functools.cache
def _field_type(model: type[BaseModel], field: str) -> TypeAdapter[Any]:
    info = model.model_fields[field]
    shape: Any = Annotated[info.annotation, *info.metadata]  # the field as declared
    return TypeAdapter(shape, config={"strict": True})


def _holdable(spec: EntitySpec, field: str, value: str) -> bool:
    """Whether a document could hold ``value`` in ``field`` (its type and pattern): a claim
    is folded, so a look-alike (fullwidth digits, an invisible character) would find it."""
    if len(value) > views.MAX_PATH_VALUE:
        return False
    try:
        _field_type(spec.model, field).validate_python(value)
    except ValidationError:
        return False
    return True


async def by_unique(
    ks: Keyspace, spec: EntitySpec, field: str, value: str, *, fresh: bool = False
) -> Stored:
    """The document holding ``value`` in its unique ``field`` (normalized as the claim is:
    caseless where declared), from the keyspace's reader unless ``fresh``; NotFound when
    none does, or no document could hold it."""
    return await ks.replica.run(
        lambda client: _by_unique(ks, client, spec, field, value), fresh=fresh
    )


async def _by_unique(
    ks: Keyspace, client: Redis, spec: EntitySpec, field: str, value: str
) -> Stored:
    unique = next(u for u in spec.uniques if u.field == field)
    wanted = unique.normalize(value) if _holdable(spec, field, value) else None
    claimed = wanted
    sealer, entry = ks.documents.sealing(spec), spec.sensitive_field(field)
    if wanted is not None and sealer is not None and entry is not None:
        claimed = sealer.token(spec, entry, value)  # a sealed value claims its blind token
    for _ in range(UNIQUE_TRIES if wanted is not None else 0):
        assert wanted is not None and claimed is not None
        doc_id = await client.get(ks.schema.names.unique_key(spec.prefix, field, claimed))
        if doc_id is None:
            break
        try:
            found = doc_id.decode() if isinstance(doc_id, bytes) else doc_id
            stored = await ks.get_on(client, spec, found)
        except NotFound:
            continue  # deleted after its claim was read: the claim is gone now or soon
        held = get_path(stored.doc, field)
        # The claim and the document are two reads: the value may have moved in between.
        if isinstance(held, str) and unique.normalize(held) == wanted:
            return stored
    raise NotFound(f"no {spec.name} has {field} {value!r}")


async def document(
    ks: Keyspace, spec: EntitySpec, field: str | None, value: str, *, fresh: bool = False
) -> Stored:
    """A view's ``One`` part: by id (``field`` None) or by a unique field, from the reader
    unless ``fresh``; NotFound."""
    if field is None:
        if not keys.is_lookup_id(value):
            raise NotFound(f"{spec.name} {value!r} does not exist")
        return await (ks.get if fresh else ks.read)(spec, value)
    return await by_unique(ks, spec, field, value, fresh=fresh)


async def compute(
    ks: Keyspace,
    view: views.View,
    bound: views.Bound,
    path: Mapping[str, str],
    *,
    fresh: bool = False,
) -> Any:
    """The view's answer as data: documents first (a missing one is the 404 of the whole
    view, before anything else is read), then its aggregations and lists together; read
    from the reader unless ``fresh`` (an answer to be cached: from the primary)."""
    found: dict[str, Any] = {}
    for name, spec, field, value in bound.ones:
        found[name] = (await document(ks, spec, field, value, fresh=fresh)).doc
    groups = [ks.aggregate(spec, agg, fresh=fresh) for _, spec, agg in bound.groups]
    rows = [ks.list(spec, query, fresh=fresh) for _, spec, query in bound.rows]
    results = await asyncio.gather(*groups, *rows)
    names = [name for name, _, _ in bound.groups] + [name for name, _, _ in bound.rows]
    found |= dict(zip(names, results, strict=True))
    found |= dict.fromkeys(bound.skipped)
    if view.shape is None:
        (only,) = found.values()
        return only.body() if hasattr(only, "body") else only
    return view.shape(views.Values(found, path))


def _params(path: Mapping[str, str], params: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    # Path and query names never meet: a path's are prefixed.
    return {**{f"/{k}": [v] for k, v in path.items()}, **{k: list(v) for k, v in params.items()}}


async def answer(
    ks: Keyspace,
    view: views.View,
    aggregates: Sequence[Aggregate],
    ttl_seconds: int | None,
    path: Mapping[str, str],
    params: Mapping[str, Sequence[str]],
) -> tuple[bytes, bool]:
    """The view's JSON answer for one request, and whether it came from the cache
    (``ttl_seconds`` None: never cached). ValidationFailed for bad parameters, NotFound for
    a missing document; neither is cached."""
    bound = views.bind(view, ks.schema, aggregates, path, params)

    # A cached answer is computed on the primary: the cache's versions are read there, and
    # an answer from a replica that has not yet applied a write could be stored under the
    # version that write set, and served until its TTL (keyspace.cache).
    async def body() -> bytes:
        return orjson.dumps(await compute(ks, view, bound, path, fresh=ttl_seconds is not None))

    if ttl_seconds is None:
        return await body(), False
    specs = tuple(ks.schema.collection(c) for c in view.collections(aggregates))
    cache = AnswerCache(ks.scripts, ks.schema.names, view.name, specs, ttl_seconds)
    return await cache.answer(params_hash(_params(path, params)), body)
