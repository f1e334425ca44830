"""``check --repair``: each repair is one ``commit.lua`` plan re-checking the exact bytes it
relied on, so a concurrent write makes it skip rather than undo that write."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import ResponseError, WatchError

from keyspace import Keyspace, claims, codec, search
from keyspace.connection import call
from keyspace.deletes import pulled
from keyspace.errors import ValidationFailed
from keyspace.plan import Plan, put_document
from keyspace.schema import ref_ids
from keyspace.sealing import validate_stored

from .report import Problem, Report, parse_ref_set


async def _read(ks: Keyspace, key: str) -> tuple[bytes | None, Any]:  # exact bytes, document
    try:
        raw: bytes | None = await call(ks.client, "JSON.GET", key, ".")
    except ResponseError:
        return None, None
    return raw, (codec.loads(raw) if raw is not None else None)


async def _commit(ks: Keyspace, plan: Plan, key: str = "", raw: bytes | None = None) -> bool:
    """Commit ``plan`` only if ``key`` still holds exactly ``raw`` (None: still absent)."""
    if key:
        plan.checks.insert(0, ["equals", plan.key(key), raw] if raw else ["absent", plan.key(key)])
    try:
        return (await ks.commit(plan)).ok
    except ResponseError:
        return False


async def _fix_reference_set(ks: Keyspace, problem: Problem) -> bool:
    if (parsed := parse_ref_set(ks.schema, problem.key)) is None:
        return False
    spec, ref, target_id = parsed
    member, adding = problem.fix["member"], problem.fix["action"] == "add"
    raw, doc = await _read(ks, ks.schema.names.doc_key(spec.prefix, member))
    if (isinstance(doc, dict) and target_id in ref_ids(doc, ref)) != adding:
        return False  # no longer true: it changed since the inspection
    names = ks.schema.names
    plan = Plan(names.pause_key())
    plan.write("sadd" if adding else "srem", problem.key, member)
    # A profile read finds its companion through this set: one computed from the broken set
    # goes with the repair (keyspace.profiles).
    for _, profile in ks.schema.profiled_through(spec):
        if profile.via == ref.field:
            plan.write("del", names.profile_key(profile.key, target_id))
    return await _commit(ks, plan, names.doc_key(spec.prefix, member), raw)


async def _fix_claim(ks: Keyspace, problem: Problem) -> bool:
    if (claim := claims.parse(ks.schema, problem.key)) is None:
        return False
    spec = claim.spec
    owner, creating = problem.fix["owner"], problem.fix["action"] == "create"
    raw, doc = await _read(ks, ks.schema.names.doc_key(spec.prefix, owner))
    if (
        isinstance(doc, dict) and problem.key in claims.held(ks.schema.names, spec, doc)
    ) != creating:
        return False
    plan = Plan(ks.schema.names.pause_key())
    plan.check("free", problem.key, owner, claim.field)  # unclaimed, or still the owner's
    plan.write("set" if creating else "delif", problem.key, owner)
    return await _commit(ks, plan, ks.schema.names.doc_key(spec.prefix, owner), raw)


async def _fix_dangling(ks: Keyspace, problem: Problem) -> bool:
    names = ks.schema.names
    spec, doc_id = next(
        (s, problem.key[len(names.doc_key(s.prefix, "")) :])
        for s in ks.schema.entities
        if problem.key.startswith(names.doc_key(s.prefix, ""))
    )
    ref = next(r for r in spec.references if r.field == problem.fix["field"])
    target, target_id = problem.fix["target"], problem.fix["target_id"]
    raw, doc = await _read(ks, problem.key)
    if raw is None or not isinstance(doc, dict) or target_id not in ref_ids(doc, ref):
        return False
    try:
        new = validate_stored(spec, pulled(doc, ref, [target_id]))  # sealed values kept
    except ValidationFailed:
        return False
    plan = Plan(ks.schema.names.pause_key())
    plan.check("absent", target)  # the target was not created meanwhile
    put_document(ks.schema, plan, spec, doc_id, new, doc)
    plan.write("srem", names.ref_key(target, spec.prefix, ref.field), doc_id)
    return await _commit(ks, plan, problem.key, raw)


async def _fix_counter(ks: Keyspace, problem: Problem) -> bool:
    plan = Plan(ks.schema.names.pause_key())
    plan.write("floor", problem.key, int(problem.fix["value"]))  # raises it, never lowers it
    return await _commit(ks, plan)


async def _fix_projection(ks: Keyspace, problem: Problem) -> bool:
    # One pass per entity fixes them all; later problems of the entity find nothing to do.
    spec = ks.schema.entity(problem.fix["entity"])
    await ks.reproject(spec)
    return True


async def _fix_stray_index(ks: Keyspace, problem: Problem) -> bool:
    spec = ks.schema.entity(problem.fix["entity"])
    if problem.key == await search.alias_target(ks.client, spec):
        return False  # an alias points at it since the inspection
    rebuild = problem.key.startswith(search.current_name(spec))
    if rebuild and await ks.client.exists(ks.schema.names.lock_key("reindex")):
        return False  # a reindex started since: this may be its rebuild
    try:
        await call(ks.client, "FT.DROPINDEX", problem.key)  # the documents are kept
    except ResponseError:
        return False  # dropped meanwhile
    return True


async def _fix_index(ks: Keyspace, problem: Problem) -> bool:
    spec = ks.schema.entity(problem.fix["entity"])
    name = await search.ensure(ks.client, spec, timeout=600)  # as setup() in the CLI
    return name.split(".")[0] == search.current_name(spec)


async def _fix_token(ks: Keyspace, problem: Problem) -> bool:
    """Revoke a token nobody issued: deleted only while it still names the same user and role
    (WATCH on its one key), so a token minted meanwhile under that digest is left alone."""
    async with ks.client.pipeline(transaction=True) as pipe:
        try:
            await pipe.watch(problem.key)
            held = await pipe.hmget(problem.key, "user_id", "role")
            if [v.decode() if isinstance(v, bytes) else v for v in held] != [
                problem.fix["user_id"],
                problem.fix["role"],
            ]:
                return False
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.delete(problem.key)
            await pipe.execute()
        except WatchError:
            return False
    return True


# In this order; orphan claims are deleted before missing ones are created.
FIXERS: dict[str, Callable[[Keyspace, Problem], Awaitable[bool]]] = {
    "reference_index": _fix_reference_set, "unique_index": _fix_claim,
    "dangling_reference": _fix_dangling, "counter_behind": _fix_counter,
    "projection": _fix_projection, "token": _fix_token,
    "stray_index": _fix_stray_index, "index": _fix_index,
}  # fmt: skip


async def prune(ks: Keyspace, report: Report) -> int:
    """Remove the memberships expired documents left in reference sets (``report.expired``),
    each while its document is still absent; how many were removed."""
    removed = 0
    for set_key, member in report.expired:
        if (parsed := parse_ref_set(ks.schema, set_key)) is None:
            continue
        plan = Plan(ks.schema.names.pause_key())
        plan.write("srem", set_key, member)
        doc_key = ks.schema.names.doc_key(parsed[0].prefix, member)
        removed += await _commit(ks, plan, doc_key, None)  # not created again meanwhile
    return removed


async def repair(ks: Keyspace, report: Report) -> int:
    """Fix the repairable problems of ``report``; returns how many were fixed. Each fix
    re-reads what it relies on and commits against those exact bytes, or is skipped."""
    order = list(FIXERS)
    todo = [p for p in report.problems if p.repairable and p.kind in FIXERS]
    todo.sort(key=lambda p: (order.index(p.kind), p.fix.get("action") == "create"))
    return sum([await FIXERS[p.kind](ks, p) for p in todo])
