"""Reading a delete's closure: every document a delete of one document touches.

From the document, the store follows its inbound reference sets (keyspace.deletes,
``inbound_sets``): a CASCADE referrer is read and followed in turn, a PULL or SET_NULL
referrer is read to be edited, a RESTRICT referrer is only counted, and a member whose
document no longer exists (an expired referrer) is noted so the commit can check it is still
gone. What was read is a :class:`~keyspace.deletes.DeleteClosure` for ``plan_delete``,
which the commit re-checks; this is the delete's I/O, apart from its pure plan.
"""

from __future__ import annotations

from redis.asyncio import Redis

from . import codec, keys
from .deletes import DeleteClosure, inbound_sets
from .errors import Conflict, NotFound
from .keys import Names
from .plan import Loaded
from .schema import EntitySpec, OnDelete, Schema

MAX_CASCADE = 10_000


async def _load_many(client: Redis, names: Names, spec: EntitySpec, ids: list[str]) -> list[Loaded]:
    async with client.pipeline(transaction=False) as pipe:
        for doc_id in ids:
            pipe.execute_command("JSON.GET", names.doc_key(spec.prefix, doc_id), ".")
        raws = await pipe.execute()
    return [
        Loaded(spec, i, r, codec.loads(r), names.doc_key(spec.prefix, i))
        for i, r in zip(ids, raws, strict=True)
        if r
    ]


async def read_root(client: Redis, schema: Schema, spec: EntitySpec, doc_id: str) -> Loaded:
    """The document a delete of ``doc_id`` starts from; NotFound when there is none."""
    names = schema.names
    found = await _load_many(client, names, spec, [doc_id]) if keys.is_lookup_id(doc_id) else []
    if not found:
        raise NotFound(f"{spec.name} {doc_id!r} does not exist")
    return found[0]


async def read_closure(
    client: Redis, schema: Schema, spec: EntitySpec, doc_id: str
) -> DeleteClosure:
    """Read everything a delete of ``doc_id`` touches, following cascades."""
    names = schema.names
    root = await read_root(client, schema, spec, doc_id)
    closure = DeleteClosure(deleted=[root])
    seen, queue = {root.key}, [root]
    restricting: list[tuple[str, str, EntitySpec, list[str]]] = []
    while queue:
        loaded = queue.pop()
        sets = inbound_sets(schema, loaded)
        async with client.pipeline(transaction=False) as pipe:
            for ref_set, _, _ in sets:
                pipe.smembers(ref_set)
            members = await pipe.execute()
        for (ref_set, src, ref), raw_ids in zip(sets, members, strict=True):
            ids = sorted(m.decode() for m in raw_ids)
            closure.inbound[ref_set] = ids
            if not ids:
                continue
            if ref.on_delete is OnDelete.RESTRICT:
                restricting.append((f"{src.name}.{ref.field}", ref_set, src, ids))
                continue
            found = await _load_many(client, names, src, ids)
            _gone(names, closure, ref_set, src, ids, {dep.doc_id for dep in found})
            for dep in found:
                if ref.on_delete in (OnDelete.PULL, OnDelete.SET_NULL):
                    closure.pulls.append((dep, ref, loaded.doc_id))
                elif dep.key not in seen:
                    seen.add(dep.key)
                    closure.deleted.append(dep)
                    queue.append(dep)
        # Edits (set null, pull) are written by the same script as deletes: both count, so
        # no delete blocks a shared Redis for long (an event log's set-null included).
        if len(closure.deleted) + len(closure.pulls) > MAX_CASCADE:
            raise Conflict(
                f"deleting {spec.name} {doc_id} would delete or change more than "
                f"{MAX_CASCADE} documents in one commit; delete or detach its referrers "
                "in smaller steps first",
                details={"limit": MAX_CASCADE},
            )
    # A referrer the same delete removes does not hold it back (SQL checks at the end),
    # nor does one that no longer exists (it expired, leaving its id in the set).
    for label, ref_set, src, ids in restricting:
        left = [i for i in ids if names.doc_key(src.prefix, i) not in seen]
        async with client.pipeline(transaction=False) as pipe:
            for member in left:
                pipe.exists(names.doc_key(src.prefix, member))
            present = {m for m, n in zip(left, await pipe.execute(), strict=True) if n}
        _gone(names, closure, ref_set, src, left, present)
        if present:
            closure.restricted.append((label, len(present)))
    return closure


def _gone(
    names: Names,
    closure: DeleteClosure,
    ref_set: str,
    src: EntitySpec,
    ids: list[str],
    found: set[str],
) -> None:
    """Record the members of ``ref_set`` read without a document (an expired referrer)."""
    for member in ids:
        if member not in found:
            closure.gone.append((ref_set, member, names.doc_key(src.prefix, member)))
