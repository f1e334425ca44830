"""Delete plans: what deleting a document does to the documents that refer to it.

A delete is read first (keyspace.store follows the inbound reference sets into a
:class:`DeleteClosure`), then planned here without I/O: every document of the closure
dropped and unlinked, each referrer cascaded, pulled or set to null as its reference
declares, RESTRICT refused, all in one ``commit.lua`` plan that re-checks the closure as
read. The delete fences a losing delete raises live here too. Apart from keyspace.plan,
which keeps the plan itself and the per-document ops creates, updates and deletes share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import codec
from .errors import HasDependents
from .keys import Names
from .plan import Loaded, Plan, drop, expire, put, ref_sets, uniques, unprofile
from .schema import EntitySpec, OnDelete, Reference, Schema


def plan_fence(names: Names, keys_: Sequence[str], ttl_ms: int, *, up: bool) -> Plan:
    """Raise (``up``) or lower the delete fences of ``keys_`` in one commit; raised fences
    expire after ``ttl_ms`` so a crashed deleter cannot block references for long."""
    plan = Plan(names.pause_key())
    for key in keys_:
        fence = names.delete_fence(key)
        if up:
            plan.write("set", fence, "1")
            plan.write("pexpire", fence, ttl_ms)
        else:
            plan.write("del", fence)
    return plan


@dataclass
class DeleteClosure:
    """Everything a delete touches, as read: the documents to delete and those to edit.

    ``inbound`` maps each reference set pointing at a deleted document to the
    ids it held when read; the commit checks the set's size so a referrer
    created meanwhile makes the plan stale instead of dangling. ``gone`` lists the
    members read whose documents did not exist (an expired referrer leaves its id behind):
    (reference set, member, member's key). They neither restrict nor cascade, and the
    commit checks that each is still absent and still a member, so a set whose size is
    unchanged is the set the plan read.
    """

    deleted: list[Loaded]
    inbound: dict[str, list[str]] = field(default_factory=dict)
    gone: list[tuple[str, str, str]] = field(default_factory=list)
    pulls: list[tuple[Loaded, Reference, str]] = field(default_factory=list)
    restricted: list[tuple[str, int]] = field(default_factory=list)
    satellites: dict[str, list[str]] = field(default_factory=dict)


def pulled(doc: Mapping[str, Any], ref: Reference, removed: Sequence[str]) -> dict[str, Any]:
    """``doc`` with ``removed`` ids taken out of the array field of ``ref`` (``pull``), or
    its scalar field set to null when it holds one of them (``set null``)."""
    out = dict(doc)
    if ref.many:
        out[ref.field] = [v for v in doc.get(ref.field, []) if v not in removed]
    elif doc.get(ref.field) in removed:
        out[ref.field] = None
    return out


def plan_delete(schema: Schema, closure: DeleteClosure) -> Plan:
    """Delete every document of the closure and unlink it everywhere, in one commit."""
    if closure.restricted:
        name, count = closure.restricted[0]
        raise HasDependents(
            f"{count} document(s) still refer to it through {name}",
            details={"field": name, "count": count},
        )
    names = schema.names
    plan = Plan(names.pause_key())
    deleted_keys = {d.key for d in closure.deleted}
    for loaded in closure.deleted:
        plan.check("equals", loaded.key, loaded.raw)
    for ref_set, members in closure.inbound.items():
        plan.check("card", ref_set, len(members), ref_set)
    for ref_set, member, key in closure.gone:
        plan.check("gone", key, plan.key(ref_set), member)
    edits: dict[str, tuple[Loaded, dict[str, Any]]] = {}
    for loaded, ref, removed_id in closure.pulls:
        if loaded.key in deleted_keys:
            continue
        _, current = edits.get(loaded.key, (loaded, dict(loaded.doc)))
        edits[loaded.key] = (loaded, pulled(current, ref, [removed_id]))
    for loaded, _ in edits.values():
        plan.check("equals", loaded.key, loaded.raw)
    for loaded in closure.deleted:
        drop(names, plan, loaded.spec, loaded.doc_id)
        unprofile(schema, plan, loaded.spec, loaded.doc_id, loaded.doc)
        for claim in uniques(names, loaded.spec, loaded.doc):
            plan.write("delif", claim, loaded.doc_id)
        for ref_set in ref_sets(schema, loaded.spec, loaded.doc):
            plan.write("srem", ref_set, loaded.doc_id)
    for ref_set in closure.inbound:
        plan.write("del", ref_set)
    for loaded in closure.deleted:
        owned = loaded.spec.satellites
        if owned is None:
            continue
        index = names.user_tokens_key(loaded.doc_id)
        members = closure.satellites.get(index, [])
        plan.check("card", index, len(members), index)
        for member in members:
            plan.write("del", names.token_key(member))
        plan.write("del", index)
    for loaded, new in edits.values():
        put(names, plan, loaded.spec, loaded.doc_id, codec.dumps(new), new)
        unprofile(schema, plan, loaded.spec, loaded.doc_id, loaded.doc, new)
        # Not a write of its owner's: an expiring referrer keeps the time it has left.
        expire(names, plan, loaded.spec, loaded.doc_id, (), refresh=False)
        for ref_set in (
            ref_sets(schema, loaded.spec, loaded.doc).keys()
            - ref_sets(schema, loaded.spec, new).keys()
        ):
            plan.write("srem", ref_set, loaded.doc_id)
        # A field set to null may be part of a composite unique, which then holds no claim.
        for claim in (
            uniques(names, loaded.spec, loaded.doc).keys() - uniques(names, loaded.spec, new).keys()
        ):
            plan.write("delif", claim, loaded.doc_id)
    feed = names.changes_key()
    for loaded in closure.deleted:
        plan.event(feed, loaded.key, "delete", loaded.spec.collection, loaded.doc_id)
    for loaded, _ in edits.values():
        plan.event(feed, loaded.key, "update", loaded.spec.collection, loaded.doc_id)
    return plan


def inbound_sets(schema: Schema, loaded: Loaded) -> list[tuple[str, EntitySpec, Reference]]:
    """The reference sets that hold referrers of ``loaded``, with who refers and how."""
    return [
        (schema.names.ref_key(loaded.key, src.prefix, ref.field), src, ref)
        for src, ref in schema.inbound(loaded.spec.name)
    ]


def cascades(ref: Reference) -> bool:
    return ref.on_delete is OnDelete.CASCADE
