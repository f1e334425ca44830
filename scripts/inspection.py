"""What ``check`` reads and finds, writing nothing: :func:`inspect` walks the documents,
singletons, reference sets, unique claims, counters, tokens, projections and indexes and
reports every disagreement (scripts.report).

Apart from the command (scripts/check.py: options, waiting, repair, printing) because other
code inspects too: ``restore`` checks what it loaded, and the tests check the keyspace after
races, crashes and imports.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from redis.exceptions import ResponseError

from keyspace import (
    Keyspace,
    claims,
    codec,
    crypto,
    keys,
    quarantine,
    ranks,
    search,
    upgrade,
)
from keyspace.connection import call
from keyspace.documents import validate
from keyspace.errors import Unreadable, ValidationFailed
from keyspace.projection import projected
from keyspace.reproject import document, expected
from keyspace.schema import EntitySpec, OnDelete, ref_ids
from keyspace.sealing import validate_stored

from . import counters
from .report import Problem, RefSet, Report, parse_ref_set, ref_sets

BATCH = 500
RECOUNTS = 5  # reads of an index's count beside a fresh count of documents before reporting


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _invalid(spec: EntitySpec, doc_id: str, doc: Any) -> str | None:
    try:
        validate_stored(spec, doc)  # sealed values left sealed (no key) pass by their form
    except ValidationFailed as exc:
        return exc.message
    if doc.get(spec.id_field) != doc_id:
        return f"{spec.id_field} {doc.get(spec.id_field)!r} does not match the key"
    if spec.derive_id is not None and spec.derive_id(doc) != doc_id:
        return f"{spec.id_field} must be {spec.derive_id(doc)!r} (derived from the document)"
    return None


class _Inspection:
    """What one pass has seen: ids and expected bookkeeping, never document bodies."""

    def __init__(self, ks: Keyspace) -> None:
        self.client, self.schema = ks.client, ks.schema
        self.names = ks.schema.names
        self.report = Report([], 0)
        self.ids: dict[str, set[str]] = defaultdict(set)  # prefix -> ids of JSON documents
        self.invalid: set[str] = set()  # keys of documents that fail validation
        self.refs: dict[str, set[str]] = defaultdict(set)  # ref set key -> expected members
        self.holders: dict[str, list[str]] = defaultdict(list)  # claim key -> ids holding it
        self.top: dict[str, int] = defaultdict(int)  # prefix -> highest seed-style number
        self.roles: dict[str, str] = {}  # user id -> role, for the tokens acting as them
        self.sealer = ks.sealer  # opens sealed values for validation (keyspace.sealing)

    def add(self, kind: str, key: str, detail: str, repairable: bool, **fix: str) -> None:
        self.report.problems.append(Problem(kind, key, detail, repairable, fix))

    async def batches(self, match: str) -> list[list[str]]:
        """Distinct key names (SCAN, never KEYS; SCAN may repeat keys), in batches to read.
        A name that is not UTF-8 is reported (no id or service key can be one), not read."""
        found = dict.fromkeys([k async for k in self.client.scan_iter(match=match, count=BATCH)])
        decoded: list[str] = []
        for name in found:
            try:
                decoded.append(name.decode())
            except UnicodeDecodeError:
                shown = name.decode("utf-8", "backslashreplace")
                self.add("invalid_key", shown, "key name is not UTF-8; rename or delete it", False)
        return [decoded[i : i + BATCH] for i in range(0, len(decoded), BATCH)]

    async def documents(self, spec: EntitySpec) -> None:
        for batch in await self.batches(self.names.doc_match(spec.prefix)):
            raws = await call(self.client, "JSON.MGET", *batch, ".")
            for key, raw in zip(batch, raws, strict=True):
                kind = "ReJSON-RL" if raw is not None else _text(await self.client.type(key))
                self.report.documents += kind != "none"  # "none": deleted since the SCAN
                if raw is not None:
                    self.document(spec, key, codec.loads(raw))
                elif kind != "none":
                    self.add("invalid_document", key, f"holds a {kind}, not JSON", False)
            if projected(spec):
                await self.projections(spec, batch, raws)
            if spec.ranked_fields:
                await self.ranks(spec, batch, raws)

    async def projections(self, spec: EntitySpec, batch: list[str], raws: list[Any]) -> None:
        """Each document's search projection must be what its bytes call for."""
        ids = [self.names.id_from_key(spec.prefix, key) for key in batch]
        shown_keys = [self.names.projection_key(spec.prefix, i) for i in ids]
        shown = await call(self.client, "JSON.MGET", *shown_keys, ".")
        for shown_key, raw, current in zip(shown_keys, raws, shown, strict=True):
            want = expected(spec, raw)
            have = None if current in (None, b"[]", "[]") else codec.loads(current)
            if want is not None and have != codec.loads(want):
                state = "missing" if have is None else "stale"
                self.add(
                    "projection", shown_key, f"{state} search projection", True, entity=spec.name
                )

    async def ranks(self, spec: EntitySpec, batch: list[str], raws: list[Any]) -> None:
        """Each document's member in each ranked field's set (keyspace.ranks) must hold the
        score its bytes call for; reported as a projection problem (reprojection fixes it)."""
        ids = [self.names.id_from_key(spec.prefix, key) for key in batch]
        async with self.client.pipeline(transaction=False) as pipe:
            for field in spec.ranked_fields:
                for doc_id in ids:
                    pipe.zscore(self.names.rank_key(spec.prefix, field.name), doc_id)
            scores = iter(await pipe.execute(raise_on_error=False))
        for field in spec.ranked_fields:
            rank_key = self.names.rank_key(spec.prefix, field.name)
            for doc_id, raw in zip(ids, raws, strict=True):
                have = next(scores)
                doc = document(spec, raw)
                want = None if doc is None else ranks.score(field, doc)
                if have is None and want is None:
                    continue
                if want is None or not isinstance(have, float) or have != float(want):
                    detail = f"{doc_id}: stale member of the {field.name} ranking"
                    self.add("projection", rank_key, detail, True, entity=spec.name)

    def projection_problems(self, spec: EntitySpec) -> bool:
        return any(
            p.kind == "projection" and p.fix.get("entity") == spec.name
            for p in self.report.problems
        )

    async def orphan_projections(self) -> None:
        for spec in self.schema.entities:
            if not projected(spec):
                continue
            for batch in await self.batches(self.names.projection_match(spec.prefix)):
                for shown_key in batch:
                    doc_id = shown_key[len(self.names.projection_key(spec.prefix, "")) :]
                    if doc_id not in self.ids[spec.prefix]:
                        detail = "search projection of no document"
                        self.add("projection", shown_key, detail, True, entity=spec.name)
            for field in spec.ranked_fields:
                rank_key = self.names.rank_key(spec.prefix, field.name)
                async for member, _ in self.client.zscan_iter(rank_key, count=BATCH):
                    doc_id = _text(member)
                    if doc_id not in self.ids[spec.prefix]:
                        detail = f"{doc_id}: member of the {field.name} ranking, of no document"
                        self.add("projection", rank_key, detail, True, entity=spec.name)

    def opened(self, spec: EntitySpec, key: str, doc_id: str, doc: Any) -> Any:
        """``doc`` with its sealed values opened, for validation (docs/encryption.md); a
        value that does not open, or plaintext left in an encrypted keyspace, is reported."""
        if self.sealer is None or not spec.sensitive or not isinstance(doc, dict):
            return doc
        if not self.sealer.plaintext_left and any(
            isinstance(doc.get(e.field), str) and crypto.parse_sealed(doc[e.field]) is None
            for e in spec.sensitive
        ):
            detail = "a sensitive field holds plaintext: run `multiframe-admin encrypt`"
            self.add("plaintext_sensitive", key, detail, False)
        try:
            return self.sealer.open(spec, doc_id, doc)
        except Unreadable as exc:
            self.add("undecryptable", key, exc.message, False)
            return doc

    def document(self, spec: EntitySpec, key: str, doc: Any) -> None:
        doc_id = self.names.id_from_key(spec.prefix, key)
        self.ids[spec.prefix].add(doc_id)
        number = keys.counter_value_of(spec.prefix, doc_id) or 0
        self.top[spec.prefix] = max(self.top[spec.prefix], number)
        if (reason := _invalid(spec, doc_id, self.opened(spec, key, doc_id, doc))) is not None:
            self.invalid.add(key)
            self.add("invalid_document", key, reason, False)
        for ref in spec.references if isinstance(doc, dict) else ():
            target = self.schema.entity(ref.target).prefix
            for target_id in ref_ids(doc, ref):
                ref_set = self.names.ref_key(
                    self.names.doc_key(target, target_id), spec.prefix, ref.field
                )
                self.refs[ref_set].add(doc_id)
        for claim in claims.held(self.names, spec, doc) if isinstance(doc, dict) else ():
            self.holders[claim].append(doc_id)  # unique values, and derived ids' sources
        if spec.satellites is not None and isinstance(doc, dict):
            self.roles[doc_id] = str(spec.satellites.derive(doc).get("role"))

    async def tokens(self) -> None:
        """A token acts with the role it holds: one whose user is gone, or whose role is not
        its user's, is a key nobody issued (a forged or hand-edited file), revoked by --repair."""
        for batch in await self.batches(self.names.token_key("*")):
            async with self.client.pipeline(transaction=False) as pipe:
                for token in batch:
                    pipe.hmget(token, "user_id", "role")
                replies = await pipe.execute(raise_on_error=False)
            for token, reply in zip(batch, replies, strict=True):
                if isinstance(reply, Exception) or reply[0] is None:
                    continue  # expired or revoked since the SCAN (a wrong type: commits refuse)
                user_id, role = _text(reply[0]), _text(reply[1] or b"")
                if user_id not in self.roles:
                    detail = f"acts as {user_id}, which does not exist"
                elif role != self.roles[user_id]:
                    has = self.roles[user_id]
                    detail = f"acts as {user_id} with role {role!r}, but the user is {has!r}"
                else:
                    continue
                self.add("token", token, detail, True, user_id=user_id, role=role)

    async def singletons(self) -> None:
        for single in self.schema.singletons:
            try:  # a missing one is no problem: setup() writes its default
                if (raw := await call(self.client, "JSON.GET", single.key, ".")) is not None:
                    self.report.documents += 1
                    validate(single.model, codec.loads(raw))
            except ResponseError:
                kind = _text(await self.client.type(single.key))
                self.add("invalid_document", single.key, f"holds a {kind}, not JSON", False)
            except ValidationFailed as exc:
                self.add("invalid_document", single.key, exc.message, False)

    async def reference_sets(self) -> None:
        seen: set[str] = set()
        for batch in await self.batches(ref_sets(self.schema) + "*"):
            async with self.client.pipeline(transaction=False) as pipe:
                for set_key in batch:
                    pipe.smembers(set_key)
                replies = await pipe.execute(raise_on_error=False)
            for set_key, reply in zip(batch, replies, strict=True):
                seen.add(set_key)
                parsed = parse_ref_set(self.schema, set_key)
                if isinstance(reply, Exception) or parsed is None:
                    self.add("reference_index", set_key, "not a known reference set", False)
                else:
                    self.compare_set(set_key, parsed, {_text(m) for m in reply})
        for set_key in self.refs.keys() - seen:
            if parsed := parse_ref_set(self.schema, set_key):
                self.compare_set(set_key, parsed, set())

    def compare_set(self, set_key: str, parsed: RefSet, actual: set[str]) -> None:
        """Compare one reference set with the documents; also finds dangling references."""
        spec, ref, target_id = parsed
        target = self.schema.entity(ref.target).prefix
        target_key, exists = self.names.doc_key(target, target_id), target_id in self.ids[target]
        expected = self.refs.get(set_key, set())
        for member in sorted(expected):
            member_key = self.names.doc_key(spec.prefix, member)
            pull = not exists and ref.on_delete is OnDelete.PULL
            pull = pull and member_key not in self.invalid
            if not exists:
                how = "pulled by --repair" if pull else f"{ref.on_delete.value}: not repaired"
                detail = f"{ref.field} -> {target_key}, which does not exist ({how})"
                fix = {"field": ref.field, "target": target_key, "target_id": target_id}
                self.add("dangling_reference", member_key, detail, pull, **fix)
            if member not in actual and not pull:  # pulling a dangling ref also unlinks it
                detail = f"{spec.prefix}:{member} refers to the target but is not listed"
                self.add("reference_index", set_key, detail, True, member=member, action="add")
        for member in sorted(actual - expected):
            if spec.expiry is not None and member not in self.ids[spec.prefix]:
                # What an expired document leaves behind: no answer counts it (deletes and
                # restrict rules count existing referrers only), so it is no problem.
                self.report.expired.append((set_key, member))
                continue
            why = "does not refer to it" if member in self.ids[spec.prefix] else "does not exist"
            detail = f"{spec.prefix}:{member} is listed but {why}"
            self.add("reference_index", set_key, detail, True, member=member, action="remove")

    async def claims(self) -> None:
        seen: set[str] = set()
        for batch in await self.batches(self.names.reserved + "uniq:*"):
            for claim, value in zip(batch, await self.client.mget(batch), strict=True):
                if value is None and _text(await self.client.type(claim)) == "none":
                    continue  # released since the SCAN
                seen.add(claim)
                if value is None or (parsed := claims.parse(self.schema, claim)) is None:
                    self.add("unique_index", claim, "not a known unique claim", False)
                elif (owner := _text(value)) not in self.holders.get(claim, []):
                    held = owner in self.ids[parsed.spec.prefix]
                    why = "holds another value" if held else "does not exist"
                    detail = f"claimed by {owner}, which {why}"
                    self.add("unique_index", claim, detail, True, owner=owner, action="delete")
        for claim, holders in self.holders.items():
            if len(holders) > 1:  # the claim (if any) cannot say who is right
                parsed = claims.parse(self.schema, claim)
                prefix = parsed.spec.prefix if parsed is not None else "?"
                for holder in holders:
                    detail = f"{claim} is also held by " + ", ".join(set(holders) - {holder})
                    self.add("unique_violation", f"{prefix}:{holder}", detail, False)
            elif claim not in seen:
                detail = f"{holders[0]} holds the value but there is no claim"
                self.add("unique_index", claim, detail, True, owner=holders[0], action="create")

    async def counters(self) -> None:
        for spec in self.schema.entities:
            counter, top = self.names.counter_key(spec.prefix), self.top[spec.prefix]
            try:  # as commit.lua draws from it: int() would accept "007", " 7" or "1_0"
                current = (await counters.read(self.client, counter) or 0) if spec.counted else top
            except counters.InvalidCounter as exc:  # INCR refuses it or Lua misreads it
                kind = "counter_out_of_range" if exc.out_of_range else "counter_behind"
                detail = (
                    f"{exc}; generated {spec.prefix} ids fail until it is SET to the highest "
                    "id ever issued"
                )
                self.add(kind, counter, detail, False)
                continue
            if current < top:
                detail = f"{current} is behind {keys.generated_id(spec.prefix, top)}"
                self.add("counter_behind", counter, detail, True, value=str(top))

    async def indexes(self) -> None:
        work = await upgrade.indexing(self.client, self.names)
        for spec in self.schema.entities:
            alias, current = self.names.index_alias(spec.prefix), search.current_name(spec)
            try:
                info = search.parse_info(await call(self.client, "FT.INFO", alias))
                name = _text(info.get("index_name", ""))
            except ResponseError as exc:
                info, name = {}, f"missing ({exc})"
            if name.split(".")[0] != current:  # ``reindex`` builds ``<current>.<nanoseconds>``
                if (share := await upcoming(self.client, spec)) is not None:
                    self.report.building.append(share)  # a first start's or an upgrade's
                    continue
                if work is not None and work.failure is None:  # a service builds one at a time
                    self.report.building.append(f"{alias}: waiting for a service's index work")
                    continue
                detail = f"{name}, not the current definition {current}" if info else name
                if work is not None:  # its attempts keep failing: a person's to look at
                    detail += f"; a service's index work keeps failing: {work.failure}"
                self.add("index", alias, detail, True, entity=spec.name)
                continue
            indexed, count = int(_text(info.get("num_docs", 0))), len(self.ids[spec.prefix])
            if self.projection_problems(spec):
                indexed = count  # the index follows the projections, reported (and repaired) above
            failures = int(_text(info.get("hash_indexing_failures", 0)))
            if search.is_building(info):  # not a problem yet, and not checkable: see run()
                self.report.building.append(f"{name}: {indexed_share(info)} indexed")
            elif failures or (indexed != count and not await self.counts_meet(spec, alias)):
                detail = f"{name}: {failures} failures, {indexed} of {count} indexed"
                self.add("index", alias, detail, False)
        await self.stray_indexes()

    async def counts_meet(self, spec: EntitySpec, alias: str) -> bool:
        """Whether the index and the documents count alike when read together: the counts of
        the pass are read apart, and live creates and deletes move both meanwhile."""
        for _ in range(RECOUNTS):
            info = search.parse_info(await call(self.client, "FT.INFO", alias))
            match, kind = self.names.doc_match(spec.prefix), "ReJSON-RL"
            stored = len({k async for k in self.client.scan_iter(match=match, _type=kind)})
            if int(_text(info.get("num_docs", 0))) == stored:
                return True
            await asyncio.sleep(0.1)
        return False

    async def stray_indexes(self) -> None:
        """Versions of this service's naming scheme that no alias points at (left by an
        interrupted reindex, they would index every write): all but the current definition,
        which setup() may be building, and the rebuild a running reindex holds its lock for."""
        names = await search.list_indexes(self.client)
        reindexing = bool(await self.client.exists(self.names.lock_key("reindex")))
        for spec in self.schema.entities:
            kept = {await search.alias_target(self.client, spec), search.current_name(spec)}
            for name in search.versions(spec, names):
                if name in kept or (reindexing and name.startswith(search.current_name(spec))):
                    continue
                detail = "no alias points at it; it indexes every write for nothing"
                self.add("stray_index", name, detail, True, entity=spec.name)


async def upcoming(client: Any, spec: EntitySpec) -> str | None:
    """The current definition's index, when the alias is not on it yet and it is still
    building (a service's first start, or an upgrade to a new definition: the alias moves
    once it is built), as ``"<name>: NN% indexed"``; None otherwise."""
    name = search.current_name(spec)
    try:
        info = search.parse_info(await call(client, "FT.INFO", name))
    except ResponseError:
        return None
    if not search.is_building(info):
        return None
    return f"{name}: {indexed_share(info)} indexed (its alias moves to it once built)"


def indexed_share(info: dict[str, Any]) -> str:
    """An index's ``percent_indexed`` (FT.INFO) as a percentage, for people."""
    # RediSearch 2.10 has been seen answering 7403 (not 0..1) while rebuilding after a restart.
    return f"{min(max(float(_text(info.get('percent_indexed', 0))), 0.0), 1.0):.0%}"


async def inspect(ks: Keyspace, *, indexes: bool = True) -> Report:
    """Report every disagreement, reading by SCAN and batches and writing nothing.
    Indexes are checked when ``indexes`` and ``ks.capabilities.search`` (i.e. after
    ``ks.setup()``)."""
    state = _Inspection(ks)
    for spec in ks.schema.entities:
        await state.documents(spec)
    await state.singletons()
    await state.reference_sets()
    await state.claims()
    await state.counters()
    await state.tokens()
    await state.orphan_projections()
    if indexes and ks.capabilities.search:
        await state.indexes()
    state.report.quarantined = await quarantine.count(ks.client, ks.schema.names)
    if state.sealer is not None and not state.sealer.plaintext_left:
        for entry_key in await quarantine.unsealed(ks.client, ks.schema.names):
            detail = "a quarantined record is stored in clear: run `multiframe-admin encrypt`"
            state.add("plaintext_sensitive", entry_key, detail, False)
    state.report.problems.sort(key=lambda p: (p.kind, p.key))
    return state.report


async def inspect_settled(ks: Keyspace, *, indexes: bool = True) -> Report:
    """:func:`inspect`, then, if it found problems, once more: only problems both passes found
    are reported. Under live writes one pass can see a claim, projection or reference of a
    document created after it read the documents, and a document that expires between the
    reads of the documents and of the claims seems to lack its claim; such a problem is gone
    on the second pass."""
    first = await inspect(ks, indexes=indexes)
    if first.clean:
        return first
    second = await inspect(ks, indexes=indexes)
    seen = {(p.kind, p.key, p.detail) for p in first.problems}
    second.problems = [p for p in second.problems if (p.kind, p.key, p.detail) in seen]
    return second
