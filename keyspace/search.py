"""RediSearch index definitions (pure) and their lifecycle on a server.

Each entity gets one index over its ``<prefix>:`` JSON documents. The index name
carries a hash of its definition (``mf:idx:driver:<version>``, a reindex's rebuild
``<version>.<nanoseconds>``) and queries go through an alias (``mf:idx:driver``), so a
changed definition is built beside the old one and the alias switches only once the new
index is complete.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from .connection import call
from .errors import NotReady
from .projection import ODD, SHADOW, projected, shadowed
from .schema import EntitySpec, FieldKind, Indexed


def _attribute(field: Indexed, *, through_projection: bool) -> list[str]:
    # A projection holds each field by name, text and caseless tags already folded by the
    # service: the index must not transform them again.
    path = "$." + (field.name if through_projection else field.path)
    args = [path + ("[*]" if field.array else ""), "AS", field.name]
    if field.kind is FieldKind.VECTOR:
        # Always through a projection (its unit vector, or nothing); FLAT is an exact search,
        # so the index and the scan path (keyspace.vectors) differ only by float32 rounding.
        assert through_projection, f"{field.name}: a vector is indexed through a projection"
        params = ["TYPE", "FLOAT32", "DIM", str(field.dim), "DISTANCE_METRIC", "COSINE"]
        return [*args, "VECTOR", "FLAT", str(len(params)), *params]
    if field.kind in (FieldKind.NUMERIC, FieldKind.DECIMAL):  # a decimal's projection: a double
        args.append("NUMERIC")
    elif field.kind is FieldKind.TEXT:
        args += ["TEXT", "NOSTEM"]
    else:
        args.append("TAG")
        if field.case_sensitive or field.kind is FieldKind.TIME or through_projection:
            args.append("CASESENSITIVE")
    # A time range is a FILTER, which sees only attributes the aggregation has: a sortable
    # one's value is in the index's sort vector, no document needs loading.
    if field.sortable or field.kind is FieldKind.TIME:
        args.append("SORTABLE")
    return args


def definition(spec: EntitySpec) -> list[str]:
    """FT.CREATE arguments after the index name.

    No stemming and no stop words: terms match exactly, which is what the
    Python path can reproduce and what users of a catalogue expect. Entities
    with text or caseless fields are indexed through their projections.
    """
    through = projected(spec)
    prefix = (
        spec.names.projection_key(spec.prefix, "")
        if through
        else spec.names.doc_key(spec.prefix, "")
    )
    args = ["ON", "JSON", "PREFIX", "1", prefix, "STOPWORDS", "0", "SCHEMA"]
    for field in spec.fields:
        args += _attribute(field, through_projection=through)
    for field in spec.fields:
        if through and shadowed(field):  # keyspace.projection: a time's numeric shadow
            args += [f"$.{SHADOW}{field.name}", "AS", SHADOW + field.name, "NUMERIC"]
            args += [f"$.{ODD}{field.name}", "AS", ODD + field.name, "TAG"]
    return args


def version(spec: EntitySpec) -> str:
    """The definition's digest, and the ranked fields' (keyspace.ranks): a new ranked field
    makes a new version, so the upgrade that builds it fills the field's set first, and no
    list reads the set before."""
    ranked = [f"RANKED {f.name}" for f in spec.ranked_fields]
    return hashlib.sha1(" ".join([*definition(spec), *ranked]).encode()).hexdigest()[:10]


def current_name(spec: EntitySpec) -> str:
    return spec.names.index_name(spec.prefix, version(spec))


def rebuild_name(spec: EntitySpec) -> str:
    """A fresh name for a rebuild of the current version (``<current>.<nanoseconds>``):
    never the live index's, so a reindex right after another cannot collide with it."""
    return f"{current_name(spec)}.{time.time_ns()}"


def versions(spec: EntitySpec, names: Iterable[str]) -> list[str]:
    """Of ``names``, the indexes this service made for ``spec`` (its naming scheme only)."""
    prefix = spec.names.index_name(spec.prefix, "")
    return sorted(n for n in names if n.startswith(prefix) and _VERSION.fullmatch(n[len(prefix) :]))


_VERSION = re.compile(r"[0-9a-f]{10}(\.[0-9]+)?")


def parse_info(reply: Any) -> dict[str, Any]:
    """FT.INFO's flat RESP2 reply as a dict with text keys."""
    items = list(reply)
    out: dict[str, Any] = {}
    for name, value in zip(items[::2], items[1::2], strict=True):
        out[name.decode() if isinstance(name, bytes) else str(name)] = value
    return out


def is_building(info: Mapping[str, Any]) -> bool:
    """True while the index is still scanning existing documents."""
    indexing = info.get("indexing", 0)
    percent = info.get("percent_indexed", 1)
    return str(_text(indexing)) not in ("0", "0.0") or float(_text(percent)) < 1.0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def list_indexes(client: Redis) -> set[str]:
    return {_text(n) for n in await call(client, "FT._LIST")}


async def build(client: Redis, spec: EntitySpec) -> str:
    """Create the current index version if missing; return its name. Idempotent."""
    name = current_name(spec)
    try:
        await call(client, "FT.CREATE", name, *definition(spec))
    except ResponseError as exc:
        if "already exists" not in str(exc).lower():
            raise
    return name


async def wait_built(client: Redis, name: str, timeout: float) -> None:
    """Wait until the index has scanned every existing document."""
    deadline = asyncio.get_running_loop().time() + timeout
    while is_building(parse_info(await call(client, "FT.INFO", name))):
        if asyncio.get_running_loop().time() > deadline:
            raise NotReady(f"index {name} is still being built")
        await asyncio.sleep(0.05)


async def switch(client: Redis, spec: EntitySpec, name: str) -> list[str]:
    """Point the entity's alias at ``name`` and drop older versions (documents are kept)."""
    await call(client, "FT.ALIASUPDATE", spec.names.index_alias(spec.prefix), name)
    dropped = [n for n in versions(spec, await list_indexes(client)) if n != name]
    for old in dropped:
        await call(client, "FT.DROPINDEX", old)
    return dropped


async def alias_target(client: Redis, spec: EntitySpec) -> str | None:
    """The index the entity's alias points at, or None when there is no alias."""
    try:
        info = parse_info(await call(client, "FT.INFO", spec.names.index_alias(spec.prefix)))
    except ResponseError:
        return None
    return _text(info.get("index_name", ""))


async def rebuild(client: Redis, spec: EntitySpec, name: str) -> None:
    """Create a fresh index ``name`` with the current definition (a reindex)."""
    await call(client, "FT.CREATE", name, *definition(spec))


async def is_current(client: Redis, spec: EntitySpec) -> bool:
    """True when the entity's alias already points at the current definition."""
    target = await alias_target(client, spec)
    return target is not None and target.split(".")[0] == current_name(spec)


async def ensure(client: Redis, spec: EntitySpec, timeout: float = 60.0) -> str:
    """Build (or keep) the current version and move the alias to it once complete."""
    target = await alias_target(client, spec)
    if target is not None and target.split(".")[0] == current_name(spec):
        return target  # the current definition, possibly a rebuild of it (``name.<n>``)
    name = await build(client, spec)
    await wait_built(client, name, timeout)
    await switch(client, spec, name)
    return name


async def fail_on_timeout(client: Redis) -> bool:
    """Make the server fail a timed-out query instead of returning a partial page.

    Returns False when the server does not let us set it (managed Redis); the
    embedded server is started with the setting already.
    """
    for args in (
        ("FT.CONFIG", "SET", "ON_TIMEOUT", "FAIL"),
        ("CONFIG", "SET", "search-on-timeout", "fail"),
    ):
        try:
            await call(client, *args)
            return True
        except ResponseError:
            continue
    return False
