"""Write plans: the pure half of every write.

A :class:`Plan` is the list of keys and ops that ``lua/commit.lua`` applies
atomically. The functions here decide, from the declarations and the documents
as read, which unique values to claim and release and which references to check
and record. They do no I/O, so every rule is unit-tested without Redis; the store
only reads, plans and commits. What a delete does to dependents is planned in
keyspace.deletes, from the same per-document ops.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import claims, codec, keys, profiles, ranks
from .changes import DEFAULT_CAP, ChangeCap
from .keys import Names
from .projection import project, projected
from .schema import EntitySpec, IdStrategy, Reference, Schema, ref_ids

Arg = str | bytes | int

VERSION_START = 2**40
"""An absent cache version (keyspace.cache) starts at a random value below this, in a commit
and in a lookup alike: a version that a restore or reset deleted never counts from 1 again,
so an answer computed before cannot be met again by chance."""


@dataclass(slots=True)
class Plan:
    """Keys and ops for one atomic commit; build with the methods, send with :meth:`args`.
    KEYS[1] is always ``pause``, the system's pause key (``Names.pause_key``): commit.lua
    refuses every plan while it exists."""

    pause: str
    keys: list[str] = field(default_factory=list)
    checks: list[list[Arg]] = field(default_factory=list)
    writes: list[list[Arg]] = field(default_factory=list)
    returning: int = 0
    # An id the script draws from a counter: (counter key, id prefix, document key prefix).
    counter: int = 0
    id_prefix: str = ""
    id_key: int = 0
    # How far a floor op may raise its counter past the counter's value (None: no limit);
    # authorized_commit.lua sets it for non-admins.
    window: int | None = None
    # The change feed's entries, written after every other op (each names its document's
    # revision as the plan leaves it): [op, stream, key, change, collection(, doc id)].
    events: list[list[Arg]] = field(default_factory=list)
    _index: dict[str, int] = field(default_factory=dict)
    _bumped: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.key(self.pause)

    def key(self, name: str) -> int:
        """1-based position of ``name`` in KEYS, adding it on first use."""
        if name not in self._index:
            self.keys.append(name)
            self._index[name] = len(self.keys)
        return self._index[name]

    def check(self, op: str, key: str, *args: Arg) -> None:
        self.checks.append([op, self.key(key), *args])

    def write(self, op: str, key: str, *args: Arg) -> None:
        self.writes.append([op, self.key(key), *args])

    def bump(self, key: str) -> None:
        """INCR the version ``key`` once in this commit, however many documents the plan
        writes; an absent version starts at a random value instead of 1 (see
        :data:`VERSION_START`)."""
        if key not in self._bumped:
            self._bumped.add(key)
            self.write("bump", key, secrets.randbelow(VERSION_START))

    def event(self, stream: str, key: str, change: str, collection: str, doc_id: str) -> None:
        """Append one change-feed entry for the document at ``key`` (docs/changes.md)."""
        self.events.append(["event", self.key(stream), self.key(key), change, collection, doc_id])

    def event_drawn(self, stream: str, key_prefix: str, collection: str) -> None:
        """:meth:`event` for a create whose id the script draws (see :meth:`generates`)."""
        drawn: list[Arg] = ["eventid", self.key(stream), self.key(key_prefix), "create", collection]
        self.events.append(drawn)

    def returns(self, key: str) -> None:
        self.returning = self.key(key)

    def generates(self, counter: str, id_prefix: str, key_prefix: str) -> None:
        """Have the script INCR ``counter`` (after every check passed) for the id
        ``id_prefix<n>`` and append that id to the KEYS entry ``key_prefix``."""
        self.counter = self.key(counter)
        self.id_prefix = id_prefix
        self.id_key = self.key(key_prefix)

    def args(self, cap: ChangeCap | None = DEFAULT_CAP) -> list[Arg]:
        """ARGV for ``commit.lua``; a plan with change-feed entries trims the feed to ``cap``
        in the same commit (``None``: no trim, for a caller that trims once after many
        plans in the same script call, as ``bulk_commit.lua`` does)."""
        flat: list[Arg] = [len(self.checks), self.returning]
        flat += [self.counter, self.id_prefix, self.id_key]
        flat.append("" if self.window is None else self.window)
        for op in (*self.checks, *self.writes, *self.events):
            flat.extend(op)
        if self.events and cap is not None:
            flat.extend(["trim", self.events[0][1], *cap.args()])
        return flat

    def feed(self) -> str | None:
        """The change feed this plan's events go to, None without events."""
        return self.keys[int(self.events[0][1]) - 1] if self.events else None


@dataclass(frozen=True)
class Loaded:
    """A document as read, with the exact bytes its revision check compares against."""

    spec: EntitySpec
    doc_id: str
    raw: bytes
    doc: Mapping[str, Any]
    key: str  # the document's key (Names.doc_key)


# uniques, ref_sets, put, drop, unprofile and expire are the per-document ops every plan is
# built from: public because keyspace.deletes builds delete plans from them too.


def uniques(names: Names, spec: EntitySpec, doc: Mapping[str, Any]) -> dict[str, str]:
    """Unique claim key -> field name, for the values this document holds (the tuple a
    derived id is built from included)."""
    return claims.held(names, spec, doc)


def _target_key(schema: Schema, ref: Reference, target_id: str) -> str:
    return schema.names.doc_key(schema.entity(ref.target).prefix, target_id)


def ref_sets(
    schema: Schema, spec: EntitySpec, doc: Mapping[str, Any]
) -> dict[str, tuple[str, str, str]]:
    """Reference set key -> (target doc key, field, target id) for every id the doc points at."""
    out: dict[str, tuple[str, str, str]] = {}
    for ref in spec.references:
        for target_id in ref_ids(doc, ref):
            target = _target_key(schema, ref, target_id)
            ref_set = schema.names.ref_key(target, spec.prefix, ref.field)
            out[ref_set] = (target, ref.field, target_id)
    return out


def _check_target(names: Names, plan: Plan, target: str, name: str, target_id: str) -> None:
    """A new reference needs its target to exist and not be in the middle of a delete."""
    plan.check("exists", target, name, target_id)
    plan.check("unfenced", names.delete_fence(target), name, target_id)


def put_document(
    schema: Schema,
    plan: Plan,
    spec: EntitySpec,
    doc_id: str,
    doc: Mapping[str, Any],
    old: Mapping[str, Any],
) -> None:
    """Write ``doc`` over ``old`` and, for a projected entity, its search projection; an
    expiring document keeps the time it has left (a repair is no write of its owner's)."""
    names = schema.names
    put(names, plan, spec, doc_id, codec.dumps(doc), doc)
    unprofile(schema, plan, spec, doc_id, old, doc)
    expire(names, plan, spec, doc_id, uniques(names, spec, doc), refresh=False)
    key = names.doc_key(spec.prefix, doc_id)
    plan.event(names.changes_key(), key, "update", spec.collection, doc_id)


def unprofile(
    schema: Schema, plan: Plan, spec: EntitySpec, doc_id: str | None, *docs: Mapping[str, Any]
) -> None:
    """Delete the cached profiles that ``docs`` (the states of one document before and after
    the write) contribute to (keyspace.profiles), in the commit that writes them."""
    for doc in docs:
        for key in profiles.stale_keys(schema, spec, doc_id, doc):
            plan.write("del", key)


def _cached(names: Names, plan: Plan, spec: EntitySpec) -> None:
    """Every plan that writes or deletes a document of a cached entity goes through here:
    its collection version moves in the same commit, so no cached answer computed before the
    write is reachable once the write is acknowledged (keyspace.cache)."""
    if spec.cached:
        plan.bump(names.collection_version_key(spec.prefix))


def put(
    names: Names, plan: Plan, spec: EntitySpec, doc_id: str, raw: bytes, doc: Mapping[str, Any]
) -> None:
    _cached(names, plan, spec)
    plan.write("jset", names.doc_key(spec.prefix, doc_id), raw)
    if projected(spec):
        shown = codec.dumps(project(spec, doc))
        plan.write("jset", names.projection_key(spec.prefix, doc_id), shown)
    ranks.rank(names, plan, spec, doc_id, doc)


def expire(
    names: Names,
    plan: Plan,
    spec: EntitySpec,
    doc_id: str,
    claimed: Iterable[str],
    *,
    refresh: bool,
    drawn: bool = False,
) -> None:
    """For an expiring entity: the document's TTL set in full (``refresh``) or kept (set in
    full only when it has none), then copied to its search projection and to ``claimed``, so
    all of them expire in the same millisecond. SET clears a key's TTL and JSON.SET keeps it,
    so this follows every write of the plan. ``drawn``: the script draws the id (``doc_id``
    is ""), completing the document's KEYS entry; ``ttlat`` completes the projection's."""
    expiry = spec.expiry
    if expiry is None:
        return
    key = names.doc_key(spec.prefix, doc_id)
    plan.write("pexpire" if refresh else "keepttl", key, expiry.ms)
    source = plan.key(key)
    if projected(spec):
        plan.write("ttlat" if drawn else "ttlof", names.projection_key(spec.prefix, doc_id), source)
    for claim in claimed:
        plan.write("ttlof", claim, source)


def drop(names: Names, plan: Plan, spec: EntitySpec, doc_id: str) -> None:
    """Delete a document and its projection."""
    _cached(names, plan, spec)
    plan.write("del", names.doc_key(spec.prefix, doc_id))
    if projected(spec):
        plan.write("del", names.projection_key(spec.prefix, doc_id))
    ranks.unrank(names, plan, spec, doc_id)


def _split_at_id(spec: EntitySpec, raw: bytes, stand_in: str) -> tuple[bytes, bytes]:
    """``raw`` (which serializes the id field first, as ``stand_in``) cut around the id."""
    head = b'{"' + spec.id_field.encode() + b'":"'
    tail = raw[len(head) + len(stand_in) :]
    if not raw.startswith(head + stand_in.encode()) or not tail.startswith(b'"'):
        raise ValueError(f"{spec.name} documents must serialize {spec.id_field} first")
    return head, tail


def _counter_ops(names: Names, plan: Plan, spec: EntitySpec, doc_id: str, explicit: bool) -> None:
    counter = names.counter_key(spec.prefix)
    if spec.id_strategy is IdStrategy.DERIVED:
        plan.write("incr", counter)  # derived ids: the counter counts documents ever created
        return
    if not spec.counted:
        return  # generated ids (cuid, uuid) have no counter
    number = keys.counter_value_of(spec.prefix, doc_id)
    if explicit and number is not None:
        plan.write("floor", counter, number)  # a later generated id never lands on this one


def plan_create(
    schema: Schema,
    spec: EntitySpec,
    doc_id: str,
    doc: Mapping[str, Any],
    *,
    explicit_id: bool,
    replacing_legacy: bytes | None = None,
) -> Plan:
    """Create ``doc`` under its key: it must be absent, its uniques free, its references present.

    With ``replacing_legacy`` the key must instead still hold exactly that legacy
    string value, which the document replaces (in-place import of MultiFrame 11.0).
    """
    names = schema.names
    plan = Plan(names.pause_key())
    key = names.doc_key(spec.prefix, doc_id)
    if replacing_legacy is None:
        plan.check("absent", key)
    else:
        plan.check("string", key, replacing_legacy)
        plan.write("del", key)
    held = uniques(names, spec, doc)
    for claim, name in held.items():
        plan.check("free", claim, doc_id, name)
    refs = ref_sets(schema, spec, doc)
    for target, name, target_id in refs.values():
        _check_target(names, plan, target, name, target_id)
    put(names, plan, spec, doc_id, codec.dumps(doc), doc)
    unprofile(schema, plan, spec, None, doc)
    for claim in held:
        plan.write("set", claim, doc_id)
    for ref_set in refs:
        plan.write("sadd", ref_set, doc_id)
    expire(names, plan, spec, doc_id, held, refresh=True)
    if replacing_legacy is None or spec.counted:
        # A legacy NFT was already counted by the legacy nft_counter.
        _counter_ops(names, plan, spec, doc_id, explicit_id)
    plan.event(names.changes_key(), key, "create", spec.collection, doc_id)
    plan.returns(key)
    return plan


def plan_create_generated(
    schema: Schema, spec: EntitySpec, doc: Mapping[str, Any], stand_in: str
) -> Plan:
    """Create ``doc`` under the next id of its counter, drawn inside the script.

    ``doc`` carries ``stand_in`` as its id. The counter advances only once every
    unique and reference check passed, and skips ids an import already took, so
    one round trip creates the document and no failed create burns an id.
    """
    names = schema.names
    plan = Plan(names.pause_key())
    head, tail = _split_at_id(spec, codec.dumps(doc), stand_in)
    key_prefix = names.doc_key(spec.prefix, "")
    held = uniques(names, spec, doc)
    for claim, name in held.items():
        plan.check("unclaimed", claim, name)
    refs = ref_sets(schema, spec, doc)
    for target, name, target_id in refs.values():
        _check_target(names, plan, target, name, target_id)
    plan.generates(names.counter_key(spec.prefix), keys.generated_prefix(spec.prefix), key_prefix)
    _cached(names, plan, spec)
    unprofile(schema, plan, spec, None, doc)
    plan.write("jsetid", key_prefix, head, tail)
    if projected(spec):
        shown = codec.dumps(project(spec, doc))
        plan.write(
            "jsetat", names.projection_key(spec.prefix, ""), *_split_at_id(spec, shown, stand_in)
        )
    ranks.rank_drawn(names, plan, spec, doc)
    for claim in held:
        plan.write("setid", claim)
    for ref_set in refs:
        plan.write("saddid", ref_set)
    expire(names, plan, spec, "", held, refresh=True, drawn=True)
    plan.event_drawn(names.changes_key(), key_prefix, spec.collection)
    plan.returns(key_prefix)
    return plan


def mirrored_change(spec: EntitySpec, old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """True when an update changes a field the entity's satellites mirror."""
    owned = spec.satellites
    return owned is not None and any(old.get(f) != new.get(f) for f in owned.watch)


def plan_update(
    schema: Schema,
    old: Loaded,
    new: Mapping[str, Any],
    satellites: Sequence[str] = (),
    *,
    plan: Plan | None = None,
) -> Plan:
    """Replace ``old`` by ``new`` if it is still as read; re-claim uniques, re-link refs.

    ``satellites`` are the member ids read from the owned set when a mirrored
    field changes; the set's size is re-checked and each member hash updated. ``plan``:
    add to that plan (a batch of updates committed at once, keyspace.migrations).
    """
    spec, doc_id = old.spec, old.doc_id
    names = schema.names
    plan = plan if plan is not None else Plan(names.pause_key())
    plan.check("equals", old.key, old.raw)
    owned = spec.satellites
    if owned is not None and mirrored_change(spec, old.doc, new):
        index = names.user_tokens_key(doc_id)
        plan.check("card", index, len(satellites), index)
        for member in satellites:
            for name, value in owned.derive(new).items():
                plan.write("hsetx", names.token_key(member), name, value)
    old_claims, new_claims = uniques(names, spec, old.doc), uniques(names, spec, new)
    for claim, name in new_claims.items():
        if claim not in old_claims:
            plan.check("free", claim, doc_id, name)
    old_refs, new_refs = ref_sets(schema, spec, old.doc), ref_sets(schema, spec, new)
    for ref_set, (target, name, target_id) in new_refs.items():
        if ref_set not in old_refs:
            _check_target(names, plan, target, name, target_id)
    put(names, plan, spec, doc_id, codec.dumps(new), new)
    unprofile(schema, plan, spec, doc_id, old.doc, new)
    for claim in new_claims.keys() - old_claims.keys():
        plan.write("set", claim, doc_id)
    for claim in old_claims.keys() - new_claims.keys():
        plan.write("delif", claim, doc_id)
    for ref_set in new_refs.keys() - old_refs.keys():
        plan.write("sadd", ref_set, doc_id)
    for ref_set in old_refs.keys() - new_refs.keys():
        plan.write("srem", ref_set, doc_id)
    refresh = spec.expiry is not None and spec.expiry.refresh_on_write
    expire(names, plan, spec, doc_id, new_claims, refresh=refresh)
    plan.event(names.changes_key(), old.key, "update", spec.collection, doc_id)
    plan.returns(old.key)
    return plan
