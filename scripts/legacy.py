"""``import-legacy [--source URL] [--batch N] [--batch-bytes N] [--dry-run] [--report FILE]``.

Converts the original keyspace (each entity a JSON *string*: ``SET user:user_1 '{...}'``),
read with SCAN from ``--source URL`` or in place (each string key becomes its document under
the same key), users first. A record's id field must match its key (NFTs: the derived id); it
is validated like a create (defaults, normalized times) or skipped with the reason (exit 1).
Counters end past the highest imported id and the legacy counter; singletons convert too.
Odd keys are skipped with a reason each, never a traceback: names that are not UTF-8, values
that are not JSON, keys of other types; a legacy counter no create could draw from (not a
plain decimal, or past 2^53 - 1) is skipped too, and in place it is replaced by the highest
imported id. Values are read in groups of at most ``--batch-bytes`` (a larger one alone), so
memory follows that budget, not the batch's key count.

Re-runs and Ctrl-C are safe: each record is one atomic ``commit.lua`` call that checks the
key still holds exactly the legacy string read (``--source``: the target key is absent)
then writes document, claims, references and counter floor: each key is a legacy string or
a finished document, and a re-run converts the rest, counting the others "already imported".

In place, a record that cannot be converted (not JSON, invalid, a duplicate, a reference to
nothing) is moved unchanged to the quarantine (keyspace.quarantine), its id kept taken for
``quarantine restore``; other odd keys (types, names, sizes) are left and listed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from keyspace import MULTIFRAME, Keyspace, claims, codec, connect, keys, quarantine
from keyspace.connection import call
from keyspace.documents import validate
from keyspace.keyring import KeyringError
from keyspace.keys import Names
from keyspace.plan import Plan
from keyspace.schema import EntitySpec, SingletonSpec, ref_ids

from . import counters, legacy_source
from .args import positive_int
from .exits import OK, PROBLEMS, Refused
from .legacy_conversion import convert, convert_single
from .legacy_source import Read, shown, unread
from .legacy_summary import summary, write_report
from .progress import Progress

JSON_TYPE = b"ReJSON-RL"
ALREADY = "\0already"  # outcome marker: the document is already there, identical
FAULT = "\0fault:"  # outcome prefix: the record itself is at fault (quarantined in place)
MOVED = "\0moved"  # outcome marker: the record is quarantined (counted already)
RETRY = "changed while importing; re-run to retry"
CONCURRENCY = 200  # commits in flight at once
BATCH_BYTES = 16 * 2**20  # default budget of legacy values held at once
Record = tuple[str, bytes, dict[str, Any]]  # key, legacy string, converted document


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", metavar="URL", help="legacy server (default: in place)")
    parser.add_argument("--batch", type=positive_int, default=500, help="keys per SCAN batch (500)")
    parser.add_argument(
        "--batch-bytes",
        type=positive_int,
        default=BATCH_BYTES,
        metavar="N",
        help=f"bytes of legacy values held at once ({BATCH_BYTES}); a larger value is read alone",
    )
    parser.add_argument("--dry-run", action="store_true", help="validate and report; write nothing")
    parser.add_argument("--report", type=Path, metavar="FILE", help="all skips, as JSON")
    parser.set_defaults(setup=False)  # JSON.SET NX fails on legacy strings: run() sets up


def _existing(kind: bytes, current: bytes | None, doc: Any) -> str:
    if current is None:
        return f"target key exists as a {kind.decode()} value"
    return ALREADY if codec.loads(current) == doc else "exists with different content"


def _rank(names: Names, prefix: str, key: str) -> tuple[int, str]:
    """Order of keys: seed-style numbers numerically (``user_2`` < ``user_10``), then ids."""
    doc_id = names.id_from_key(prefix, key)
    return keys.counter_value_of(prefix, doc_id) or sys.maxsize, doc_id


@dataclass
class Importer:
    ks: Keyspace
    source: Redis
    in_place: bool
    dry_run: bool
    batch: int
    budget: int = BATCH_BYTES  # bytes of legacy values read at once (a larger one alone)
    tallies: dict[str, Counter[str]] = field(default_factory=dict)
    skips: list[dict[str, str]] = field(default_factory=list)
    quarantined: list[dict[str, str]] = field(default_factory=list)  # dry run: would be
    done: set[bytes] = field(default_factory=set)  # names handled (SCAN may repeat a key)
    accepted: set[str] = field(default_factory=set)  # dry run: keys that would exist
    owners: dict[tuple[str, str], str] = field(default_factory=dict)  # (field, value) -> key
    counter_ok: bool = True  # False: the entity's counter is unusable, so no op touches it
    replace: bytes | None = None  # in place: the unusable counter string to replace at the end

    def tally(self, name: str) -> Counter[str]:
        return self.tallies.setdefault(
            name, Counter(imported=0, already=0, skipped=0, quarantined=0)
        )

    def skip(self, name: str, key: str, reason: str) -> None:
        self.tally(name)["skipped"] += 1
        self.skips.append({"entity": name, "key": key, "reason": reason})

    async def target(self, key: str) -> tuple[bytes, bytes | None]:
        """TYPE of a target key and its JSON text when it is a document."""
        kind: bytes = await call(self.ks.client, "TYPE", key)
        return kind, await call(self.ks.client, "JSON.GET", key, ".") if kind == JSON_TYPE else None

    async def quarantine(self, name: str, key: str, raw: bytes, reason: str) -> str:
        """Move a record at fault to the quarantine (in place); MOVED, or what to note."""
        if not self.in_place:
            return reason
        if not self.dry_run:
            result = await self.ks.commit(self._move(name, key, raw, reason))
            if result.error == "rekeyed":  # a rotation made another key current
                await self.ks.keys.refresh()
                result = await self.ks.commit(self._move(name, key, raw, reason))
            if result.error == "already_exists":
                return f"{reason}; the quarantine holds an earlier {key}: restore or drop it"
            if not result.ok:
                return RETRY
        self.tally(name)["quarantined"] += 1
        self.quarantined.append({"entity": name, "key": key, "reason": reason})
        return MOVED

    def _move(self, name: str, key: str, raw: bytes, reason: str) -> Plan:
        # Sealed on an encrypted keyspace: the record may hold sensitive values in clear.
        sealer = self.ks.keys.sealer
        cipher = None if sealer is None else sealer.cipher
        return quarantine.plan_move(self.ks.schema.names, key, raw, name, reason, cipher)

    def note(self, name: str, key: str, outcome: str) -> None:
        """Count one key: "" imported, ALREADY already imported, MOVED quarantined, else
        skipped for that reason."""
        if outcome == ALREADY:
            self.tally(name)["already"] += 1
        elif outcome == MOVED:
            pass
        elif outcome:
            self.skip(name, key, outcome)
        else:
            self.tally(name)["imported"] += 1

    async def singleton(self, spec: SingletonSpec) -> str | None:
        """Convert ``config:system`` or ``analytics:metrics``; None when there is none."""
        kind, raw = await legacy_source.one(self.source, spec.key, self.budget)
        if kind == b"none":
            return None
        if kind == JSON_TYPE and self.in_place:
            return ALREADY
        if kind != b"string":
            return unread(kind)
        doc = convert_single(spec, raw)
        if isinstance(doc, str):
            return await self.quarantine(spec.name, spec.key, raw, doc)
        plan = Plan(self.ks.schema.names.pause_key())
        if self.in_place:
            plan.check("string", spec.key, raw)
            plan.write("del", spec.key)
        else:
            kind, current = await self.target(spec.key)
            if kind == b"none":
                plan.check("absent", spec.key)
            elif current is None or codec.loads(current) != validate(spec.model, spec.default):
                return _existing(kind, current, doc)
            else:
                plan.check("equals", spec.key, current)  # replace only the default of setup()
        plan.write("jset", spec.key, codec.dumps(doc))
        ok = self.dry_run or (await self.ks.commit(plan)).ok
        return "" if ok else RETRY

    async def elect(self, spec: EntitySpec) -> None:
        """Pass 1: of valid legacy records sharing a unique value, the lowest id keeps it."""
        self.owners = {}
        if not spec.uniques:
            return
        async for batch in self.scan(spec, mark=False):
            async for group in legacy_source.read(self.source, batch, self.budget):
                for key, kind, raw in group:
                    doc = convert(self.ks.schema.names, spec, key, raw) if kind == b"string" else ""
                    if isinstance(doc, str):
                        continue
                    for u in spec.uniques:
                        value = (u.field, u.normalize(doc[u.field]))
                        best = self.owners.setdefault(value, key)
                        self.owners[value] = min(
                            best, key, key=lambda k: _rank(self.ks.schema.names, spec.prefix, k)
                        )

    def dedupe(self, spec: EntitySpec, todo: list[Record]) -> tuple[list[Record], list[Read]]:
        """The records keeping their unique values, and the others with their reasons."""
        kept: list[Record] = []
        lost_to: list[Read] = []
        for key, raw, doc in todo:
            lost = [
                (u.field, self.ks.schema.names.id_from_key(spec.prefix, owner))
                for u in spec.uniques
                if (owner := self.owners.get((u.field, u.normalize(doc[u.field])), key)) != key
            ]
            if lost:
                lost_to.append((key, raw, "duplicate {}: already used by {}".format(*lost[0])))
            else:
                kept.append((key, raw, doc))
        return kept, lost_to

    async def counter(self, spec: EntitySpec) -> int:
        """The legacy counter (0 when absent or unusable: validated as commit.lua draws ids).
        An unusable one is skipped with its reason; in place it is then left out of every
        commit and replaced by the highest imported id at the end (``replace``)."""
        name = self.ks.schema.names.counter_key(spec.prefix)
        self.counter_ok, self.replace = True, None
        legacy = 0
        try:
            legacy = await counters.read(self.source, name) or 0
        except counters.InvalidCounter as exc:
            if not self.in_place:  # the target's own counter still follows the imported ids
                self.skip(spec.name, name, f"legacy counter {exc}; ignored")
            elif exc.raw is None:
                self.counter_ok = False
                self.skip(spec.name, name, f"counter {exc}; delete it, then re-run")
            else:
                self.counter_ok, self.replace = False, exc.raw
                self.skip(spec.name, name, f"counter {exc}; set to the highest imported id")
        if not self.in_place:
            try:
                await counters.read(self.ks.client, name)
            except counters.InvalidCounter as exc:  # not legacy data: for a person to look at
                self.counter_ok = False
                reason = f"target counter {exc}; left alone, see multiframe-admin check"
                self.skip(spec.name, name, reason)
        return legacy

    async def dry(self, spec: EntitySpec, key: str, doc: dict[str, Any]) -> str | None:
        """What a commit would say, from reads only (``--dry-run``)."""
        doc_id, names = doc[spec.id_field], self.ks.schema.names
        for ref in spec.references:
            for target_id in ref_ids(doc, ref):
                target = names.doc_key(self.ks.schema.entity(ref.target).prefix, target_id)
                if target not in self.accepted and (await self.target(target))[0] != JSON_TYPE:
                    return f"{FAULT}{ref.field}: {ref.target} {target_id} does not exist"
        if not self.in_place:
            kind, current = await self.target(key)
            if kind != b"none":
                return _existing(kind, current, doc)
        for claim, name in claims.held(names, spec, doc).items():  # as commit.lua's 'free'
            owner = await call(self.ks.client, "GET", claim)
            if owner and owner.decode() != doc_id:
                return f"{FAULT}duplicate {name}: already used by {owner.decode()}"
        self.accepted.add(key)
        return None

    async def write(self, spec: EntitySpec, key: str, raw: bytes, doc: dict[str, Any]) -> str:
        if self.dry_run:
            return await self.dry(spec, key, doc) or ""
        legacy = raw if self.in_place else None
        plan = self.ks.documents.plan_stored(  # sealed when the keyspace is encrypted
            spec, doc[spec.id_field], doc, explicit_id=True, replacing_legacy=legacy
        )
        # A bad counter is left alone; in place the legacy nft_counter already counts NFTs.
        drop = {"floor", "incr"} if not self.counter_ok else {"incr"} if self.in_place else set()
        plan.writes = [op for op in plan.writes if op[0] not in drop]
        result = await self.ks.commit(plan)
        if result.ok:
            return ""
        if result.error == "unique_conflict":
            return f"{FAULT}duplicate {result.field}: already used by {result.value}"
        if result.error == "missing_reference":
            target = next(r.target for r in spec.references if r.field == result.field)
            return f"{FAULT}{result.field}: {target} {result.value} does not exist"
        if result.error == "already_exists" and not self.in_place:
            return _existing(*await self.target(key), doc)
        if result.error == "stale":
            return RETRY
        return f"refused: {result.error}"

    async def scan(self, spec: EntitySpec, mark: bool = True) -> AsyncIterator[list[str]]:
        """Batches of the entity's key names; with ``mark`` each is counted once, and one
        that is not UTF-8 (no document id can hold it) is skipped with its reason."""
        batch: list[str] = []
        pattern = self.ks.schema.names.doc_match(spec.prefix)
        async for name in self.source.scan_iter(match=pattern, count=self.batch):
            if name in self.done:
                continue
            if mark:  # a key SCAN returns again is not counted twice
                self.done.add(name)
            try:
                batch.append(name.decode())
            except UnicodeDecodeError:
                if mark:
                    reason = "key name is not UTF-8; RENAME it to a valid id, then re-run"
                    self.skip(spec.name, shown(name), reason)
            if len(batch) >= self.batch:
                yield batch
                batch = []
        if batch:
            yield batch

    async def group(self, spec: EntitySpec, group: list[Read]) -> int:
        """Convert and write one group of keys; returns the highest seed-style number of
        the documents now there (imported, or already there in place)."""
        tally, top = self.tally(spec.name), 0
        names = self.ks.schema.names
        todo: list[Record] = []
        faults: list[Read] = []  # key, legacy string, why it cannot be converted
        for key, kind, raw in group:
            if kind == JSON_TYPE and self.in_place:
                tally["already"] += 1
                top = max(top, keys.counter_value_of(spec.prefix, key.split(":", 1)[1]) or 0)
            elif kind == b"string":
                doc = convert(self.ks.schema.names, spec, key, raw)
                if isinstance(doc, str):
                    faults.append((key, raw, doc))
                else:
                    todo.append((key, raw, doc))
            elif kind != b"none":
                self.skip(spec.name, key, unread(kind))
        todo, lost = self.dedupe(spec, todo)
        faults += lost
        for start in range(0, len(todo), CONCURRENCY):
            chunk = todo[start : start + CONCURRENCY]
            outcomes = await asyncio.gather(*(self.write(spec, *item) for item in chunk))
            for (key, raw, doc), outcome in zip(chunk, outcomes, strict=True):
                if outcome.startswith(FAULT):
                    faults.append((key, raw, outcome.removeprefix(FAULT)))
                    continue
                self.note(spec.name, key, outcome)
                if outcome in ("", ALREADY):
                    top = max(top, keys.counter_value_of(spec.prefix, doc[spec.id_field]) or 0)
        for key, raw, reason in faults:
            outcome = await self.quarantine(spec.name, key, raw, reason)
            self.note(spec.name, key, outcome)
            if outcome == MOVED:  # its id stays taken: a restore brings it back under its key
                doc_id = names.id_from_key(spec.prefix, key)
                top = max(top, keys.counter_value_of(spec.prefix, doc_id) or 0)
        return top

    async def entity(self, spec: EntitySpec) -> None:
        tally = self.tally(spec.name)
        legacy_counter = await self.counter(spec)
        await self.elect(spec)
        top = 0
        with Progress(f"import {spec.collection}", stream=sys.stderr) as progress:
            async for batch in self.scan(spec):
                async for group in legacy_source.read(self.source, sorted(batch), self.budget):
                    top = max(top, await self.group(spec, group))
                progress.advance(len(batch))
        print(progress.summary("keys"), file=sys.stderr)
        if self.dry_run:
            return
        present = tally["imported"] + tally["already"] if self.in_place and not spec.counted else 0
        name, plan = (
            self.ks.schema.names.counter_key(spec.prefix),
            Plan(self.ks.schema.names.pause_key()),
        )
        if self.replace is not None:  # exactly the unusable value read, else someone fixed it
            plan.check("string", name, self.replace)
            plan.write("set", name, str(top if spec.counted else present))
        elif self.counter_ok:  # after the commits' own floor/incr ops; past quarantined ids
            plan.write("floor", name, max(legacy_counter, present, top if spec.counted else 0))
        else:
            return
        await self.ks.commit(plan)  # NFTs minted >= NFTs there are


async def run(args: argparse.Namespace, ks: Keyspace) -> int:
    if MULTIFRAME.entities[0].model not in {e.model for e in ks.schema.entities}:
        raise Refused(
            "import-legacy converts MultiFrame 11.0 string keys; the other systems had no "
            "such keyspace (run it without --system)"
        )
    source = connect(args.source) if args.source else ks.client
    batch = args.batch
    importer = Importer(
        ks,
        source,
        in_place=not args.source,
        dry_run=args.dry_run,
        batch=batch,
        budget=args.batch_bytes,
    )
    try:
        for single in ks.schema.singletons:
            if (outcome := await importer.singleton(single)) is not None:
                importer.note(single.name, single.key, outcome)
        try:
            await ks.setup(index_timeout=600) if not args.dry_run else None
        except ResponseError as exc:  # a skipped singleton still holds its legacy string
            print(f"warning: setup incomplete: {exc}", file=sys.stderr)
        if not args.dry_run and args.encryption_key is not None:
            # Deferred with the set-up: a configured key makes the keyring now, on a keyspace
            # no service has opened yet, so what the import writes is sealed.
            try:
                await ks.unlock(args.encryption_key)
            except KeyringError as exc:
                raise Refused(str(exc)) from None
        for spec in ks.schema.entities:
            await importer.entity(spec)
    except (asyncio.CancelledError, KeyboardInterrupt):
        shown = summary(importer.tallies, importer.skips, importer.quarantined, args.dry_run)
        print(f"interrupted; converted keys are complete, re-run to finish\n{shown}")
        raise
    finally:
        if args.source:
            await source.aclose()
    print(summary(importer.tallies, importer.skips, importer.quarantined, args.dry_run))
    if args.report:
        write_report(
            args.report, importer.tallies, importer.skips, importer.quarantined, args.dry_run
        )
    return PROBLEMS if importer.skips or importer.quarantined else OK
