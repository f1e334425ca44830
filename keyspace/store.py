"""Documents: create, read, replace, patch and delete of declared entities (``Documents``).

Every write is read -> plan (pure, :mod:`keyspace.plan`) -> one ``commit.lua``
call that re-checks what was read. When another writer got there first the
commit changes nothing and reports ``stale``; the write is then planned again
from fresh data, or, when the caller pinned a revision, refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from . import codec, keys
from .closures import read_closure, read_root
from .deletes import plan_delete, plan_fence
from .documents import explicit_id, for_create, for_update
from .errors import (
    Contention,
    CounterExhausted,
    NotFound,
    StaleRevision,
    Unreadable,
)
from .ids import new_id
from .keyring import Keys
from .pipelining import single
from .plan import (
    Loaded,
    Plan,
    mirrored_change,
    plan_create,
    plan_create_generated,
    plan_update,
)

# Re-exported: what the store returns has always been importable from here.
from .prepared import PreparedCreate as PreparedCreate
from .prepared import Stored as Stored
from .prepared import Upserted as Upserted
from .prepared import raise_for
from .schema import EntitySpec, IdStrategy, Schema
from .scripts import CommitResult, Scripts
from .sealing import Sealer, refuse_reserved
from .systems.multiframe.entities import MULTIFRAME

MAX_ATTEMPTS = 64
GENERATED = (IdStrategy.CUID, IdStrategy.UUID)
STAND_IN = "pending"
"""The id a generated create validates with; the script puts the drawn id in its place."""

Guard = Callable[[Mapping[str, Any], Mapping[str, Any]], None]
"""Sees (stored, proposed) documents before a write and raises to refuse it."""
FENCE_MS = 30_000
"""How long a delete fence outlives a deleter that died before lowering it."""


class Documents:
    """Create, read, replace, patch and delete documents of the declared entities."""

    def __init__(
        self,
        client: Redis,
        scripts: Scripts,
        schema: Schema = MULTIFRAME,
        keys_: Keys | None = None,
    ) -> None:
        self.client = client
        self.schema = schema
        self.names = schema.names
        self.scripts = scripts  # the keyspace's one runner (Keyspace owns it)
        self.keys = keys_  # the keyspace's keys (keyspace.keyring); None: never sealed

    def sealing(self, spec: EntitySpec) -> Sealer | None:
        """The sealer for ``spec``'s documents: None when encryption is off or it has no
        sensitive fields."""
        if self.keys is None or self.keys.sealer is None or not spec.sensitive:
            return None
        return self.keys.sealer

    async def opened(self, spec: EntitySpec, doc_id: str, stored: Stored) -> Stored:
        """``stored`` with its sealed values opened; a value under a key not held yet makes
        the keyring be read again first (a rotation another process began)."""
        try:
            return stored.opened_with(self.sealing(spec), spec, doc_id)
        except Unreadable:
            if self.keys is None:
                raise
            await self.keys.refresh()
            return stored.opened_with(self.sealing(spec), spec, doc_id)

    async def open_doc(self, spec: EntitySpec, doc: dict[str, Any]) -> dict[str, Any]:
        """A document read in stored form (a list's item), opened."""
        if self.sealing(spec) is None:
            return doc
        doc_id = str(doc.get(spec.id_field, ""))
        return (await self.opened(spec, doc_id, Stored(doc, ""))).doc

    async def _read(self, key: str) -> bytes | None:
        raw: bytes | None = await single(self.client, "JSON.GET", key, ".")
        return raw

    async def get(self, spec: EntitySpec, doc_id: str) -> Stored:
        """The document, or NotFound."""
        raw = (
            await self._read(self.names.doc_key(spec.prefix, doc_id))
            if keys.is_lookup_id(doc_id)
            else None
        )
        if raw is None:
            raise NotFound(f"{spec.name} {doc_id!r} does not exist")
        return await self.opened(spec, doc_id, Stored.from_raw(raw))

    def prepare_create(self, spec: EntitySpec, data: Mapping[str, Any]) -> PreparedCreate:
        """Validate ``data`` and plan its create, without I/O (ValidationFailed when invalid).
        The id comes from the counter unless ``data`` carries it (an import) or the entity
        derives it (NFTs: ``nft_<user_id>_<chip_id>``)."""
        wanted = explicit_id(spec, data) if isinstance(data, Mapping) else None
        sealer = self.sealing(spec)
        if spec.derive_id is not None:
            doc = for_create(spec, data, spec.derive_id(data) if isinstance(data, Mapping) else "")
        elif wanted is not None:
            doc = for_create(spec, data, wanted)
        elif spec.id_strategy in GENERATED:  # drawn here: random, so no counter is involved
            doc = for_create(spec, data, new_id(spec.id_strategy))
            return self._planned(spec, doc, data, explicit=False)
        else:
            doc = for_create(spec, data, STAND_IN)
            refuse_reserved(spec, doc)
            if sealer is not None:  # sealed values are bound to the id: read it first
                stand_in = plan_create_generated(self.schema, spec, doc, STAND_IN)
                return PreparedCreate(spec, stand_in, None, None, sealer, data, assign=True)
            return PreparedCreate(spec, plan_create_generated(self.schema, spec, doc, STAND_IN))
        return self._planned(spec, doc, data, explicit=True)

    def _planned(
        self, spec: EntitySpec, doc: dict[str, Any], data: Any, *, explicit: bool
    ) -> PreparedCreate:
        doc_id, sealer = doc[spec.id_field], self.sealing(spec)
        refuse_reserved(spec, doc)
        stored = doc if sealer is None else sealer.seal(spec, doc_id, doc)
        plan = plan_create(self.schema, spec, doc_id, stored, explicit_id=explicit)
        if sealer is not None:
            sealer.fence(self.names, plan, spec, doc_id, doc)
        source = spec.source(doc) if explicit else None
        return PreparedCreate(spec, plan, doc_id, source, sealer, data)

    def plan_stored(
        self,
        spec: EntitySpec,
        doc_id: str,
        doc: Mapping[str, Any],
        *,
        explicit_id: bool,
        replacing_legacy: bytes | None = None,
    ) -> Plan:
        """:func:`keyspace.plan.plan_create` of a validated ``doc`` (bulk loading, imports),
        its sensitive values sealed when the keyspace is encrypted."""
        sealer = self.sealing(spec)
        stored = doc if sealer is None else sealer.seal(spec, doc_id, doc)
        plan = plan_create(
            self.schema,
            spec,
            doc_id,
            stored,
            explicit_id=explicit_id,
            replacing_legacy=replacing_legacy,
        )
        if sealer is not None:
            sealer.fence(self.names, plan, spec, doc_id, doc)
        return plan

    async def ready(self, prepared: PreparedCreate) -> PreparedCreate:
        """``prepared`` as it can be committed: a counter id read now when its values are
        sealed (the next after the counter and after any id found taken before)."""
        if not prepared.assign:
            return prepared
        spec = prepared.spec
        raw = await self.client.get(self.names.counter_key(spec.prefix))
        current = int(raw) if raw is not None and raw.isdigit() else 0
        number = max(current, prepared.after) + 1
        if number > keys.MAX_COUNTER:
            raise CounterExhausted(
                f"{self.names.counter_key(spec.prefix)} has reached {keys.MAX_COUNTER}",
                field=spec.id_field,
            )
        doc = for_create(spec, prepared.data, keys.generated_id(spec.prefix, number))
        return replace(self._planned(spec, doc, prepared.data, explicit=True), after=number)

    async def again(
        self, asked: PreparedCreate, ready: PreparedCreate, result: CommitResult
    ) -> PreparedCreate | None:
        """What to commit next when ``ready`` (planned from ``asked``) met a rotation or
        found its read counter id taken; None when ``result`` is the create's answer."""
        if result.error == "rekeyed" and self.keys is not None:
            await self.keys.refresh()
            return self.prepare_create(asked.spec, asked.data)
        if asked.assign and result.error == "already_exists":
            return replace(asked, after=ready.after)
        return None

    async def create(self, spec: EntitySpec, data: Mapping[str, Any]) -> Stored:
        """Create a document (see :meth:`prepare_create`)."""
        asked = self.prepare_create(spec, data)
        for _ in range(MAX_ATTEMPTS):
            prepared = await self.ready(asked)
            result = await self.scripts.commit(prepared.plan, spec=spec, doc_id=prepared.doc_id)
            following = await self.again(asked, prepared, result)
            if following is None:
                return prepared.stored(result, await self.holder(prepared, result))
            asked = following
        raise Contention(f"could not find a free {spec.name} id; retry")

    async def holder(self, prepared: PreparedCreate, result: CommitResult) -> Any:
        """The document under the id a derived create found taken, when that decides the
        error (:meth:`PreparedCreate.needs_holder`); else None."""
        if not prepared.needs_holder(result) or prepared.doc_id is None:
            return None
        try:
            raw = await self._read(self.names.doc_key(prepared.spec.prefix, prepared.doc_id))
        except ResponseError:  # a legacy string awaiting import-legacy: no values to compare
            return None
        return codec.loads(raw) if raw is not None else None

    async def replace(
        self,
        spec: EntitySpec,
        doc_id: str,
        data: Mapping[str, Any],
        *,
        if_revision: str | None = None,
        guard: Guard | None = None,
    ) -> Stored:
        """Replace the whole document (the id is kept)."""
        return await self.update(
            spec, doc_id, lambda old: for_update(spec, old, data, merge=False), if_revision, guard
        )

    async def patch(
        self,
        spec: EntitySpec,
        doc_id: str,
        changes: Mapping[str, Any],
        *,
        if_revision: str | None = None,
        guard: Guard | None = None,
    ) -> Stored:
        """Apply a JSON merge patch (RFC 7386) to the document."""
        return await self.update(
            spec, doc_id, lambda old: for_update(spec, old, changes, merge=True), if_revision, guard
        )

    async def update(
        self,
        spec: EntitySpec,
        doc_id: str,
        change: Callable[[dict[str, Any]], dict[str, Any]],
        if_revision: str | None = None,
        guard: Guard | None = None,
    ) -> Stored:
        """Compute the new document from the stored one with ``change`` and commit it.

        Without ``if_revision`` a concurrent write makes us re-read and re-apply
        ``change``, so merges of disjoint fields are never lost. ``guard(old, new)``
        may raise to refuse the change (authorization); the commit re-checks that
        ``old`` is still what is stored, so the decision cannot go stale.
        """
        for _ in range(MAX_ATTEMPTS):
            raw = await self._read_id(spec, doc_id)
            if raw is None:
                raise NotFound(f"{spec.name} {doc_id!r} does not exist")
            stored = await self._update_once(spec, doc_id, raw, change, if_revision, guard)
            if stored is not None:
                return stored
        raise Contention(f"{spec.name} {doc_id} is changing too fast; try again")

    async def upsert(
        self,
        spec: EntitySpec,
        doc_id: str,
        data: Mapping[str, Any],
        *,
        if_revision: str | None = None,
        guard: Guard | None = None,
        create_guard: Callable[[Mapping[str, Any]], None] | None = None,
    ) -> Upserted:
        """Replace the document (as :meth:`replace`), or create it under ``doc_id`` when there
        is none (as a create with that id: defaults filled); entities declaring ``upsert``.

        ``create_guard(doc)`` sees the document a create would store and may raise to refuse
        it; ``guard`` is :meth:`update`'s. Each attempt is one commit that re-checks what was
        read (the key still absent, or still as read), so a concurrent create or write makes
        the next attempt replace what it left. ``if_revision`` pins a stored revision: a
        missing document then matches none (StaleRevision, as RFC 9110's If-Match)."""
        assert spec.upsert, f"{spec.name} does not declare upsert"

        def change(old: dict[str, Any]) -> dict[str, Any]:
            return for_update(spec, old, data, merge=False)

        for _ in range(MAX_ATTEMPTS):
            raw = await self._read_id(spec, doc_id)
            if raw is not None:
                stored = await self._update_once(spec, doc_id, raw, change, if_revision, guard)
                if stored is not None:
                    return Upserted(stored, created=False)
                continue
            if if_revision is not None:
                raise StaleRevision(f"{spec.name} {doc_id} does not exist: no revision matches")
            doc = for_create(spec, data, doc_id)
            if create_guard is not None:
                create_guard(doc)
            prepared = self._planned(spec, doc, data, explicit=True)
            result = await self.scripts.commit(prepared.plan, spec=spec, doc_id=doc_id)
            if result.ok:
                return Upserted(prepared.stored(result), created=True)
            if result.error == "rekeyed" and self.keys is not None:
                await self.keys.refresh()
                continue
            if result.error != "already_exists":  # created meanwhile: replace it next
                raise_for(result, spec)
        raise Contention(f"{spec.name} {doc_id} is changing too fast; try again")

    async def _read_id(self, spec: EntitySpec, doc_id: str) -> bytes | None:
        if not keys.is_lookup_id(doc_id):
            return None
        return await self._read(self.names.doc_key(spec.prefix, doc_id))

    async def _update_once(
        self,
        spec: EntitySpec,
        doc_id: str,
        raw: bytes,
        change: Callable[[dict[str, Any]], dict[str, Any]],
        if_revision: str | None,
        guard: Guard | None,
    ) -> Stored | None:
        """One attempt of :meth:`update` on ``raw`` as read: the stored result, or None when
        another write got there first (read again and retry)."""
        old = Loaded(spec, doc_id, raw, codec.loads(raw), self.names.doc_key(spec.prefix, doc_id))
        sealer = self.sealing(spec)
        plain = (await self.opened(spec, doc_id, Stored(dict(old.doc), ""))).doc
        if guard is not None:
            # Whether the caller may write this document at all, before its revision is
            # compared: a 412 for one who may not would test guesses of the whole stored
            # document, private fields included (review 41; RFC 9110 13.2.1).
            guard(plain, plain)
        if if_revision is not None and codec.revision(raw) != if_revision:
            raise StaleRevision(f"{spec.name} {doc_id} has changed since revision {if_revision}")
        new = change(dict(plain))
        if guard is not None:
            guard(plain, new)
        members = await self._satellites(spec, doc_id) if mirrored_change(spec, plain, new) else []
        refuse_reserved(spec, new, plain)
        stored = new if sealer is None else sealer.seal(spec, doc_id, new, old.doc)
        plan = plan_update(self.schema, old, stored, members)
        if sealer is not None:
            sealer.fence(self.names, plan, spec, doc_id, new)
        result = await self.scripts.commit(plan, spec=spec, doc_id=doc_id)
        if result.ok:
            assert result.raw is not None
            return Stored.from_raw(result.raw).opened_with(sealer, spec, doc_id)
        if result.error == "rekeyed" and self.keys is not None:
            await self.keys.refresh()
            return None  # planned again under the key the keyring names now
        if result.error != "stale":
            raise_for(result, spec)
        if if_revision is not None:
            raise StaleRevision(f"{spec.name} {doc_id} changed while being written")
        return None

    async def _may_delete(
        self, root: Loaded, guard: Callable[[dict[str, Any]], None] | None, if_revision: str | None
    ) -> None:
        """The delete's guard, then its If-Match: whether the caller may delete the document
        at all comes first (a 412 would test guesses of it, review 41)."""
        if guard is not None:
            guard(await self.open_doc(root.spec, dict(root.doc)))
        if if_revision is not None and codec.revision(root.raw) != if_revision:
            message = f"{root.spec.name} {root.doc_id} has changed since revision {if_revision}"
            raise StaleRevision(message)

    async def _satellites(self, spec: EntitySpec, doc_id: str) -> list[str]:
        if spec.satellites is None:
            return []
        members = await self.client.smembers(self.names.user_tokens_key(doc_id))
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    async def delete(
        self,
        spec: EntitySpec,
        doc_id: str,
        *,
        if_revision: str | None = None,
        guard: Callable[[dict[str, Any]], None] | None = None,
    ) -> int:
        """Delete the document and apply each reference's on-delete rule to its referrers.

        ``guard`` sees the stored document first and may raise to refuse (authorization).
        Returns how many documents were deleted (the document plus cascades).
        """
        fenced: list[str] = []
        try:
            for _ in range(MAX_ATTEMPTS):
                if guard is not None or if_revision is not None:
                    # Refused on the document alone before its cascade is read and bounded
                    # (review 42: a stale If-Match answered the cascade's 409).
                    root = await read_root(self.client, self.schema, spec, doc_id)
                    await self._may_delete(root, guard, if_revision)
                closure = await read_closure(self.client, self.schema, spec, doc_id)
                await self._may_delete(closure.deleted[0], guard, if_revision)
                for loaded in closure.deleted:
                    if loaded.spec.satellites is not None:
                        index = self.names.user_tokens_key(loaded.doc_id)
                        members = await self._satellites(loaded.spec, loaded.doc_id)
                        closure.satellites[index] = members
                plan = plan_delete(self.schema, closure)
                result = await self.scripts.commit(plan, spec=spec, doc_id=doc_id)
                if result.ok:
                    return len(closure.deleted)
                if result.error not in ("stale", "not_found"):
                    raise_for(result, spec)
                if if_revision is not None and result.value == closure.deleted[0].key:
                    raise StaleRevision(f"{spec.name} {doc_id} changed while being deleted")
                if result.field and not fenced:
                    # A referrer was added meanwhile ('card'): fence the closure so the next
                    # attempt cannot lose the same race again.
                    fenced = [loaded.key for loaded in closure.deleted]
                    fence = plan_fence(self.names, fenced, FENCE_MS, up=True)
                    await self.scripts.commit(fence, durable=False)  # the delete's WAIT covers it
            raise Contention(f"{spec.name} {doc_id} is changing too fast; try again")
        finally:
            if fenced:
                # Not waited for: a fence a failover restores expires by itself (FENCE_MS).
                fence = plan_fence(self.names, fenced, FENCE_MS, up=False)
                await self.scripts.commit(fence, durable=False)
