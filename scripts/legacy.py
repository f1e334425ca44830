"""``import-legacy [--source URL] [--batch N] [--dry-run] [--report FILE]``: MultiFrame 11.0.

Converts the original keyspace (each entity a JSON *string*: ``SET user:user_1 '{...}'``),
read with SCAN from ``--source URL`` or in place (each string key becomes its document under
the same key), users first. A record's id field must match its key (NFTs: the derived id); it
is validated like a create (defaults, normalized times) or skipped with the reason (exit 1).
Counters end past the highest imported id and the legacy counter; singletons convert too.

Re-runs and Ctrl-C are safe: each record is one atomic ``commit.lua`` call that checks the
key still holds exactly the legacy string read (``--source``: the target key is absent)
then writes document, claims, references and counter floor: each key is a legacy string or
a finished document, and a re-run converts the rest, counting the others "already imported".
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from keyspace import Keyspace, claims, codec, connect, keys
from keyspace.connection import call
from keyspace.documents import for_create, validate
from keyspace.errors import ValidationFailed
from keyspace.plan import Plan, plan_create
from keyspace.schema import EntitySpec, SingletonSpec, ref_ids

from .cli import OK, PROBLEMS
from .progress import Progress

JSON_TYPE = b"ReJSON-RL"
ALREADY = "\0already"  # outcome marker: the document is already there, identical
CONCURRENCY = 200  # commits in flight at once
LISTED = 50  # skipped keys printed; --report FILE has them all
_INTEGER = re.compile(rb"-?[0-9]{1,18}")
Record = tuple[str, bytes, dict[str, Any]]  # key, legacy string, converted document


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", metavar="URL", help="legacy server (default: in place)")
    parser.add_argument("--batch", type=int, default=500, help="keys per SCAN batch (500)")
    parser.add_argument("--dry-run", action="store_true", help="validate and report; write nothing")
    parser.add_argument("--report", type=Path, metavar="FILE", help="all skips, as JSON")
    parser.set_defaults(setup=False)  # JSON.SET NX fails on legacy strings: run() sets up


def _invalid(exc: ValidationFailed) -> str:
    first = exc.details[0] if isinstance(exc.details, list) and exc.details else None
    return f"{first['field']}: {first['message']}" if first else exc.message


def _existing(kind: bytes, current: bytes | None, doc: Any) -> str:
    if current is None:
        return f"target key exists as a {kind.decode()} value"
    return ALREADY if codec.loads(current) == doc else "exists with different content"


def _rank(prefix: str, key: str) -> tuple[int, str]:
    """Order of keys: seed-style numbers numerically (``user_2`` < ``user_10``), then ids."""
    doc_id = keys.id_from_key(prefix, key)
    return keys.counter_value_of(prefix, doc_id) or sys.maxsize, doc_id


async def _number(client: Redis, key: str) -> int | None:
    """The integer a counter holds, None when absent; ValueError when it is no integer."""
    kind = await call(client, "TYPE", key)
    raw = await call(client, "GET", key) if kind == b"string" else None
    if kind != b"none" and not (raw is not None and _INTEGER.fullmatch(raw)):
        raise ValueError(key)
    return None if raw is None else int(raw)


@dataclass
class Importer:
    ks: Keyspace
    source: Redis
    in_place: bool
    dry_run: bool
    batch: int
    tallies: dict[str, Counter[str]] = field(default_factory=dict)
    skips: list[dict[str, str]] = field(default_factory=list)
    done: set[str] = field(default_factory=set)  # keys handled (SCAN may repeat a key)
    accepted: set[str] = field(default_factory=set)  # dry run: keys that would exist
    owners: dict[tuple[str, str], str] = field(default_factory=dict)  # (field, value) -> key
    counter_ok: bool = True  # False: the entity's counter is no integer, so leave it alone

    def tally(self, name: str) -> Counter[str]:
        return self.tallies.setdefault(name, Counter(imported=0, already=0, skipped=0))

    def skip(self, name: str, key: str, reason: str) -> None:
        self.tally(name)["skipped"] += 1
        self.skips.append({"entity": name, "key": key, "reason": reason})

    async def read(self, names: list[str]) -> list[tuple[bytes, Any]]:
        """(TYPE, GET) of each source key; GET of a non-string is an exception object."""
        async with self.source.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.type(name)
                pipe.get(name)
            replies = await pipe.execute(raise_on_error=False)
        return list(zip(replies[::2], replies[1::2], strict=True))

    async def target(self, key: str) -> tuple[bytes, bytes | None]:
        """TYPE of a target key and its JSON text when it is a document."""
        kind: bytes = await call(self.ks.client, "TYPE", key)
        return kind, await call(self.ks.client, "JSON.GET", key, ".") if kind == JSON_TYPE else None

    def note(self, name: str, key: str, outcome: str) -> None:
        """Count one key: "" imported, ALREADY already imported, else skipped for that reason."""
        if outcome == ALREADY:
            self.tally(name)["already"] += 1
        elif outcome:
            self.skip(name, key, outcome)
        else:
            self.tally(name)["imported"] += 1

    async def singleton(self, spec: SingletonSpec) -> str | None:
        """Convert ``config:system`` or ``analytics:metrics``; None when there is none."""
        kind, raw = (await self.read([spec.key]))[0]
        if kind == b"none":
            return None
        if kind == JSON_TYPE and self.in_place:
            return ALREADY
        if kind != b"string":
            return f"not a legacy string value ({kind.decode()})"
        try:
            doc = validate(spec.model, codec.loads(raw))
        except orjson.JSONDecodeError:
            return "not valid JSON"
        except ValidationFailed as exc:
            return _invalid(exc)
        plan = Plan()
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
        ok = self.dry_run or (await self.ks.documents.commit(plan)).ok
        return "" if ok else "changed while importing; re-run to retry"

    def convert(self, spec: EntitySpec, key: str, raw: bytes) -> dict[str, Any] | str:
        """The document for one legacy record, or why it cannot be imported."""
        doc_id = keys.id_from_key(spec.prefix, key)
        try:
            record = codec.loads(raw)
        except orjson.JSONDecodeError:
            return "not valid JSON"
        if not isinstance(record, dict):
            return "not a JSON object"
        if (stated := record.get(spec.id_field, doc_id)) != doc_id:
            return f"{spec.id_field} {stated!r} does not match the key"
        if spec.derive_id is not None and spec.derive_id(record) != doc_id:
            return f"{spec.id_field} must be {spec.derive_id(record)!r} (nft_<user_id>_<chip_id>)"
        try:
            return for_create(spec, record, doc_id)
        except ValidationFailed as exc:
            return _invalid(exc)

    async def elect(self, spec: EntitySpec) -> None:
        """Pass 1: of valid legacy records sharing a unique value, the lowest id keeps it."""
        self.owners = {}
        if not spec.uniques:
            return
        async for batch in self.scan(spec, mark=False):
            for key, (kind, raw) in zip(batch, await self.read(batch), strict=True):
                doc = self.convert(spec, key, raw) if kind == b"string" else ""
                if isinstance(doc, str):
                    continue
                for u in spec.uniques:
                    value = (u.field, u.normalize(doc[u.field]))
                    best = self.owners.setdefault(value, key)
                    self.owners[value] = min(best, key, key=lambda k: _rank(spec.prefix, k))

    def dedupe(self, spec: EntitySpec, todo: list[Record]) -> list[Record]:
        kept: list[Record] = []
        for key, raw, doc in todo:
            lost = [
                (u.field, keys.id_from_key(spec.prefix, owner))
                for u in spec.uniques
                if (owner := self.owners.get((u.field, u.normalize(doc[u.field])), key)) != key
            ]
            if lost:
                self.skip(spec.name, key, "duplicate {}: already used by {}".format(*lost[0]))
            else:
                kept.append((key, raw, doc))
        return kept

    async def counter(self, spec: EntitySpec) -> int:
        """The source counter (0 when absent); counter_ok False when one is not an integer."""
        name, self.counter_ok = keys.counter_key(spec.prefix), False
        try:
            src = await _number(self.source, name)
            if not self.in_place:
                await _number(self.ks.client, name)
        except ValueError as exc:
            self.skip(spec.name, str(exc), "counter is not an integer; fix it, then re-run")
            return 0
        self.counter_ok = True
        return src or 0

    async def dry(self, spec: EntitySpec, key: str, doc: dict[str, Any]) -> str | None:
        """What a commit would say, from reads only (``--dry-run``)."""
        doc_id = doc[spec.id_field]
        for ref in spec.references:
            for target_id in ref_ids(doc, ref):
                target = keys.doc_key(self.ks.schema.entity(ref.target).prefix, target_id)
                if target not in self.accepted and (await self.target(target))[0] != JSON_TYPE:
                    return f"{ref.field}: {ref.target} {target_id} does not exist"
        if not self.in_place:
            kind, current = await self.target(key)
            if kind != b"none":
                return _existing(kind, current, doc)
        for claim, name in claims.held(spec, doc).items():  # as the commit's 'free' checks
            owner = await call(self.ks.client, "GET", claim)
            if owner and owner.decode() != doc_id:
                return f"duplicate {name}: already used by {owner.decode()}"
        self.accepted.add(key)
        return None

    async def write(self, spec: EntitySpec, key: str, raw: bytes, doc: dict[str, Any]) -> str:
        if self.dry_run:
            return await self.dry(spec, key, doc) or ""
        legacy = raw if self.in_place else None
        plan = plan_create(
            self.ks.schema, spec, doc[spec.id_field], doc, explicit_id=True, replacing_legacy=legacy
        )
        # A bad counter is left alone; in place the legacy nft_counter already counts NFTs.
        drop = {"floor", "incr"} if not self.counter_ok else {"incr"} if self.in_place else set()
        plan.writes = [op for op in plan.writes if op[0] not in drop]
        result = await self.ks.documents.commit(plan)
        if result.ok:
            return ""
        if result.error == "unique_conflict":
            return f"duplicate {result.field}: already used by {result.value}"
        if result.error == "missing_reference":
            target = next(r.target for r in spec.references if r.field == result.field)
            return f"{result.field}: {target} {result.value} does not exist"
        if result.error == "already_exists" and not self.in_place:
            return _existing(*await self.target(key), doc)
        if result.error == "stale":
            return "changed while importing; re-run to retry"
        return f"refused: {result.error}"

    async def scan(self, spec: EntitySpec, mark: bool = True) -> AsyncIterator[list[str]]:
        batch: list[str] = []
        pattern = keys.doc_match(spec.prefix)
        async for name in self.source.scan_iter(match=pattern, count=self.batch):
            if (key := name.decode()) not in self.done:
                if mark:  # a key SCAN returns again is not counted twice
                    self.done.add(key)
                batch.append(key)
            if len(batch) >= self.batch:
                yield batch
                batch = []
        if batch:
            yield batch

    async def entity(self, spec: EntitySpec) -> None:
        tally = self.tally(spec.name)
        legacy_counter = await self.counter(spec)
        await self.elect(spec)
        with Progress(f"import {spec.collection}", stream=sys.stderr) as progress:
            async for batch in self.scan(spec):
                todo: list[Record] = []
                pairs = zip(batch, await self.read(batch), strict=True)
                for key, (kind, raw) in sorted(pairs, key=lambda pair: pair[0]):
                    if kind == JSON_TYPE and self.in_place:
                        tally["already"] += 1
                    elif kind == b"string":
                        doc = self.convert(spec, key, raw)
                        if isinstance(doc, str):
                            self.skip(spec.name, key, doc)
                        else:
                            todo.append((key, raw, doc))
                    elif kind != b"none":
                        self.skip(spec.name, key, f"not a legacy string value ({kind.decode()})")
                todo = self.dedupe(spec, todo)
                for start in range(0, len(todo), CONCURRENCY):
                    chunk = todo[start : start + CONCURRENCY]
                    outcomes = await asyncio.gather(*(self.write(spec, *item) for item in chunk))
                    for (key, _, _), outcome in zip(chunk, outcomes, strict=True):
                        self.note(spec.name, key, outcome)
                progress.advance(len(batch))
        print(progress.summary("keys"), file=sys.stderr)
        if self.counter_ok and not self.dry_run:  # after the commits' own floor/incr ops
            present = (
                tally["imported"] + tally["already"] if self.in_place and not spec.counted else 0
            )
            plan = Plan()  # never lowers; NFTs minted >= NFTs there are
            plan.write("floor", keys.counter_key(spec.prefix), max(legacy_counter, present))
            await self.ks.documents.commit(plan)

    def summary(self) -> str:
        lines = ["dry run: nothing written; 'imported' = would be imported"] if self.dry_run else []
        lines.append(f"{'':<10} {'imported':>9} {'already':>9} {'skipped':>8}")
        for name, t in self.tallies.items():
            lines.append(f"{name:<10} {t['imported']:>9} {t['already']:>9} {t['skipped']:>8}")
        if self.skips:
            lines.append(f"skipped {len(self.skips)} key(s):")
            lines += [f"  {s['key']}: {s['reason']}" for s in self.skips[:LISTED]]
            if len(self.skips) > LISTED:
                lines.append(f"  ... and {len(self.skips) - LISTED} more (--report FILE)")
        return "\n".join(lines)


async def run(args: argparse.Namespace, ks: Keyspace) -> int:
    source = connect(args.source) if args.source else ks.client
    batch = max(1, args.batch)
    importer = Importer(ks, source, in_place=not args.source, dry_run=args.dry_run, batch=batch)
    try:
        for single in ks.schema.singletons:
            if (outcome := await importer.singleton(single)) is not None:
                importer.note(single.name, single.key, outcome)
        try:
            await ks.setup(index_timeout=600) if not args.dry_run else None
        except ResponseError as exc:  # a skipped singleton still holds its legacy string
            print(f"warning: setup incomplete: {exc}", file=sys.stderr)
        for spec in ks.schema.entities:
            await importer.entity(spec)
    except (asyncio.CancelledError, KeyboardInterrupt):
        print(f"interrupted; converted keys are complete, re-run to finish\n{importer.summary()}")
        raise
    finally:
        if args.source:
            await source.aclose()
    print(importer.summary())
    if args.report:
        counts = {name: dict(t) for name, t in importer.tallies.items()}
        report = {"dry_run": args.dry_run, "counts": counts, "skipped": importer.skips}
        args.report.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return PROBLEMS if importer.skips else OK
