"""The realistic plans tests/cluster_plans.py measures: every system's demo world driven
through the keyspace as the API and the operations commands drive it.

Each step names the operation its script calls are recorded under (``mark``). Creates go
through ``authorized_create`` as the API's do; updates change every unique value and every
reference a document has; deletes run targets first, so cascades and set-null fire; every
route of the system is authorized as a member would be (its route class, its per-endpoint
limit, its prefetched document); cached lists, views and profiles are looked up and stored;
locks, operation logs, chip metrics, singletons, tokens, the admin commands' lock,
migrations, reprojection and bulk loading run once each where the system has them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

import fakeredis
import orjson

from app import policy
from app.routes import route_table
from keyspace import Keyspace, demo, systems
from keyspace.cache import AnswerCache, params_hash
from keyspace.errors import KeyspaceError
from keyspace.exclusive import AdminLock
from keyspace.migrating import migrate
from keyspace.migrations import Migration
from keyspace.schema import EntitySpec
from keyspace.system import System
from keyspace.tokens import Limits, TokenKind, token_hash

OPERATOR_TOKEN = "cluster-plan-operator-token-0123456789abcdef"
Mark = Callable[[str], None]
World = dict[str, list[dict[str, Any]]]


def _generated(record: Mapping[str, Any], spec: EntitySpec) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != spec.id_field}


def _other(value: Any) -> list[Any]:
    """Values of the same shape as ``value`` that differ from it: what a client changes a
    unique field to (the first one its model accepts is used)."""
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, int | float):
        return [value + 1_000_003]
    if not isinstance(value, str):
        return []
    out = []
    if "@" in value:
        out.append("z" + value)
    if value[:2] == "0x":
        out.append(value[:-1] + ("1" if value[-1] != "1" else "2"))
    return [*out, value + "z", value[:-1] + ("z" if value[-1:] != "z" else "y")]


def _changes(
    spec: EntitySpec, doc: Mapping[str, Any], ids: Mapping[str, list[str]]
) -> list[dict[str, Any]]:
    """Candidate patches changing every unique value and every reference of ``doc``, the
    widest first: a model refusing a candidate value falls back to the next."""
    fields = [u.field for u in spec.uniques]
    fields += [t.fields[0] for t in spec.unique_together]
    refs: dict[str, Any] = {}
    for ref in spec.references:
        targets = ids.get(ref.target, [])
        current = doc.get(ref.field)
        if ref.many and isinstance(current, list):
            others = [t for t in targets if t not in current]
            refs[ref.field] = current[1:] + others[:2] if others else current[:-1]
        elif isinstance(current, str):
            others = [t for t in targets if t != current]
            if others:
                refs[ref.field] = others[0]
    tries: list[dict[str, Any]] = []
    for n in range(4):  # the n-th alternative of every unique value at once
        uniques = {f: _other(doc[f])[n] for f in fields if len(_other(doc.get(f))) > n}
        tries.append({**uniques, **refs})
        tries.append(uniques)
    return [*tries, refs]


async def _update_all(ks: Keyspace, world: World, mark: Mark, name: str) -> None:
    ids = {
        s.name: [str(r[s.id_field]) for r in world.get(s.collection, [])]
        for s in ks.schema.entities
    }
    mark(f"{name}: update (every unique value and reference changed)")
    for spec in ks.schema.entities:
        for record in world.get(spec.collection, []):
            for changes in _changes(spec, record, ids):
                with contextlib.suppress(KeyspaceError):
                    if changes:
                        await ks.patch(spec, record[spec.id_field], changes)
                        break
    mark(f"{name}: update (nothing changed)")
    for spec in ks.schema.entities:
        for record in world.get(spec.collection, [])[:3]:
            with contextlib.suppress(KeyspaceError):
                await ks.patch(spec, record[spec.id_field], {})


async def _create_all(ks: Keyspace, world: World, mark: Mark, name: str) -> None:
    mark(f"{name}: create (API: authorized_commit.lua)")
    limits = Limits()
    for spec in ks.schema.entities:
        for record in world.get(spec.collection, []):
            prepared = ks.prepare_create(spec, record)
            await ks.authorized_create(prepared, OPERATOR_TOKEN, limits, "", policy.IMPORT_WINDOW)
    counted = [s for s in ks.schema.entities if s.counted and world.get(s.collection)]
    if not counted:  # only some systems draw ids from counters
        return
    spec = counted[0]
    record = _generated(world[spec.collection][0], spec)

    async def api(doc: dict[str, Any]) -> None:
        prepared = ks.prepare_create(spec, doc)
        await ks.authorized_create(prepared, OPERATOR_TOKEN, limits, "", policy.IMPORT_WINDOW)

    async def tooling(doc: dict[str, Any]) -> None:
        await ks.create(spec, doc)

    mark(f"{name}: create, generated id (API)")
    record = await _fresh(spec, record, api)
    mark(f"{name}: create, generated id (operations tooling, demo load)")
    await _fresh(spec, record, tooling)


async def _fresh(
    spec: EntitySpec, record: dict[str, Any], create: Callable[[dict[str, Any]], Awaitable[None]]
) -> dict[str, Any]:
    """``create`` a copy of ``record`` with new unique values (the first alternative the
    model accepts); the copy created."""
    for n in range(4):
        fresh = {u.field: _other(record.get(u.field))[n:][:1] for u in spec.uniques}
        doc = {**record, **{f: v[0] for f, v in fresh.items() if v}}
        with contextlib.suppress(KeyspaceError):
            await create(doc)
            return doc
    raise AssertionError(f"no new unique values for {spec.name} were accepted")


async def _member(ks: Keyspace, world: World) -> tuple[str, str]:
    """A non-admin user's id and a fresh API key of theirs (any user when all are admins)."""
    users = ks.schema.users
    records = world.get(users.collection, [])
    roles = [r for r in records if r.get("role") != "admin"] or records
    user_id = str(roles[0][users.id_field])
    stored = await ks.get(users, user_id)
    minted = await ks.tokens.mint(user_id, stored.raw, TokenKind.API_KEY)
    return user_id, minted.token


def _route_path(path: str, spec: EntitySpec | None, world: World) -> str | None:
    """The key a GET by id of ``spec`` prefetches, for the first demo document."""
    if spec is None or not world.get(spec.collection):
        return None
    return spec.key(str(world[spec.collection][0][spec.id_field]))


async def _authorize_routes(ks: Keyspace, served: System, world: World, mark: Mark) -> None:
    """Every route as a member's request authorizes it (app/auth.py): its class, its
    per-endpoint limit, its prefetched document; then the operator's token once per class."""
    name = served.name
    mark(f"{name}: token mint (API key, session)")
    user_id, token = await _member(ks, world)
    stored = await ks.get(ks.schema.users, user_id)
    minted = await ks.tokens.mint(user_id, stored.raw, TokenKind.SESSION)
    for route in route_table(served):
        if not route.path.startswith("/api/"):
            continue
        route_class = route.rate_class or ("read" if route.method == "GET" else "write")
        limits = Limits()
        rules = served.rate_limits
        endpoint = rules.of(route.method, route.path) if rules is not None else None
        if endpoint is not None:
            limits = replace(limits, endpoint=endpoint)
        prefetch = _route_path(route.path, route.prefetch, world) if route.method == "GET" else None
        what = f"{route_class}{', GET by id (prefetch)' if prefetch else ''}"
        what += ", endpoint limit" if endpoint is not None else ""
        mark(f"{name}: authorize ({what})")
        await ks.tokens.authorize(token, route_class, limits, prefetch)
    for route_class in ("read", "write", "mint"):
        mark(f"{name}: authorize (operator's token, {route_class})")
        await ks.tokens.authorize(OPERATOR_TOKEN, route_class, Limits())
    mark(f"{name}: token revoke")
    await ks.tokens.revoke(token_hash(minted.token), user_id)


async def _cached_reads(ks: Keyspace, served: System, world: World, mark: Mark) -> None:
    async def body() -> bytes:
        return b"[]"

    rules = served.cache
    if rules is not None:
        mark(f"{served.name}: cached list (lookup, store, hit)")
        for spec in ks.schema.entities:
            if spec.cached:
                cache = AnswerCache(
                    ks.scripts, ks.schema.names, spec.collection, (spec,), rules.ttl_seconds
                )
                for _ in range(2):
                    await cache.answer(params_hash({}), body)
    cached_views = [v for v in served.views if v.category in served.cache_ttls]
    if cached_views:
        mark(f"{served.name}: cached view (lookup, store, hit)")
        for view in cached_views:
            specs = tuple(ks.schema.collection(c) for c in view.collections(served.aggregates))
            ttl = served.cache_ttls[view.category or ""]
            cache = AnswerCache(ks.scripts, ks.schema.names, view.name, specs, ttl)
            for _ in range(2):
                await cache.answer(params_hash({}), body)
    for spec in ks.schema.entities:
        if spec.profile is not None and world.get(spec.collection):
            mark(f"{served.name}: profile (lookup, store, hit)")
            for record in world[spec.collection][:3]:
                for _ in range(2):
                    await ks.profiles.read(spec, str(record[spec.id_field]))


async def _documents_extras(ks: Keyspace, world: World, mark: Mark, name: str) -> None:
    """Locks and operation logs of the entities declaring them."""
    user_id = str(world[ks.schema.users.collection][0][ks.schema.users.id_field])
    for spec in ks.schema.entities:
        doc_id = str(world[spec.collection][0][spec.id_field]) if world.get(spec.collection) else ""
        if spec.lock is not None and doc_id:
            mark(f"{name}: lock (acquire, read, refresh, release)")
            lock = await ks.locks.acquire(spec, doc_id, user_id)
            await ks.locks.get(spec, doc_id)
            await ks.locks.refresh(spec, doc_id, user_id, fencing_token=lock.fencing_token)
            await ks.locks.release(spec, doc_id, user_id, fencing_token=lock.fencing_token)
        if spec.oplog is not None and doc_id:
            mark(f"{name}: operation log (append, read)")
            await ks.oplogs.append(
                spec, doc_id, user_id, {"operation": "insert", "position": 0, "content": "x"}
            )
            await ks.oplogs.read(spec, doc_id)


async def _ranked_pages(ks: Keyspace, mark: Mark, name: str) -> None:
    """A page read from each ranking (keyspace.ranking): its script reads one key."""
    for spec in ks.schema.entities:
        for field in spec.ranked_fields:
            mark(f"{name}: ranked page ({spec.name}.{field.name})")
            key = ks.schema.names.rank_key(spec.prefix, field.name)
            await ks.scripts.rank_walk(ks.client, key, ["desc", "+inf", "-inf", "", "", 50])


async def _singletons(ks: Keyspace, mark: Mark, name: str) -> None:
    names = {s.name for s in ks.schema.singletons}
    mark(f"{name}: singleton update")
    if "config" in names:
        with contextlib.suppress(KeyspaceError):
            await ks.patch_config({})
    else:
        with contextlib.suppress(KeyspaceError):
            await ks.patch_settings({})
    if "analytics" in names:
        mark(f"{name}: chip metrics")
        await ks.set_chip_metrics(
            "chip_1", {"performance": 90, "efficiency": 80, "temperature": 40.5}
        )


async def _operations(ks: Keyspace, world: World, mark: Mark, name: str) -> None:
    """What the admin commands run: their lock, a migration, a reprojection."""
    mark(f"{name}: admin command lock (take, renew, release)")
    lock = AdminLock(ks, "cluster-plan")
    await lock.take()
    lock.renewed = float("-inf")  # due for renewal now
    await lock.renew()
    await lock.release()
    spec = next(s for s in ks.schema.entities if world.get(s.collection))
    mark(f"{name}: migration (a batch, then its record)")
    touch = Migration(1, "copy every document", spec.collection, lambda doc: {**doc})
    await migrate(ks, [touch])
    mark(f"{name}: reproject (one projection lost)")
    doc_id = str(world[spec.collection][0][spec.id_field])
    await ks.client.delete(ks.schema.names.projection_key(spec.prefix, doc_id))
    await ks.reproject(spec)


async def _delete_all(ks: Keyspace, world: World, mark: Mark, name: str) -> None:
    mark(f"{name}: delete (cascades, set-null included)")
    # Targets first, so their cascades and set-nulls run; what a restrict refused is
    # deleted in the second pass, referrers first.
    entities = ks.schema.entities
    for order in (entities, tuple(reversed(entities))):
        for spec in order:
            for record in world.get(spec.collection, []):
                with contextlib.suppress(KeyspaceError):
                    await ks.delete(spec, record[spec.id_field])


async def _bulk_load(ks: Keyspace, world: World, mark: Mark, name: str) -> None:
    mark(f"{name}: bulk load (pipelined commits)")
    for spec in ks.schema.entities:
        plans = [ks.prepare_create(spec, r).plan for r in world.get(spec.collection, [])]
        if plans:
            await ks.commit_batch(plans)


async def _batch_create(ks: Keyspace, world: World, mark: Mark, name: str) -> None:
    """Batch creates after the bulk load: refused whole where the world's uniques are taken
    (every plan dry-run), applied where its entity has none."""
    mark(f"{name}: batch create (all or none)")
    for spec in ks.schema.entities:
        items = [_generated(r, spec) for r in world.get(spec.collection, [])[:3]]
        if items:
            with contextlib.suppress(KeyspaceError):
                await ks.create_many(spec, items)


async def drive(name: str, mark: Mark) -> None:
    """Every plan of system ``name`` on a fresh fakeredis, each step ``mark``ed first."""
    served = systems.load(name)
    client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), protocol=2)
    ks = Keyspace(client, served.schema)
    ks.tokens.configure_operator(OPERATOR_TOKEN)
    mark(f"{name}: setup")
    await ks.setup()
    world: World = orjson.loads(demo.demo_file(served).read_bytes())
    await _create_all(ks, world, mark, name)
    await _authorize_routes(ks, served, world, mark)
    await _cached_reads(ks, served, world, mark)
    await _documents_extras(ks, world, mark, name)
    await _ranked_pages(ks, mark, name)
    await _singletons(ks, mark, name)
    await _operations(ks, world, mark, name)
    await _update_all(ks, world, mark, name)
    await _delete_all(ks, world, mark, name)
    await _bulk_load(ks, world, mark, name)
    await _batch_create(ks, world, mark, name)
    await client.aclose()
