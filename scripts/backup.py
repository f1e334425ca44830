"""``backup``/``restore``: a portable, checksummed, streamed copy of the service's keyspace.

Format: gzip JSON Lines: header ``{"format": "multiframe-backup", "version": 1, ...}``, one
``{"k", "t": json|string|set, "v"}`` per document, singleton, counter and ``mf:`` key (json ``v`` is
the raw ``JSON.GET key .`` text: restores are byte-identical), trailer ``{"records", "sha256"}``
over every line before it. Indexes are rebuilt by ``setup()``. Unlike the server's RDB/AOF (crash
recovery on the same machine and version) it loads into any Redis with RedisJSON. SCAN is not a
snapshot: for a point-in-time copy stop the writers (``config:system`` maintenance) or copy the RDB
after ``BGSAVE``. Backups are renamed from ``FILE.tmp`` when complete; restore verifies the file
before writing, and an interrupted restore is completed by ``restore --replace`` (idempotent).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import hashlib
import os
import sys
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from keyspace import Keyspace, keys, search
from keyspace.connection import call
from keyspace.inventory import patterns
from keyspace.schema import Schema

from .cli import OK, PROBLEMS, Refused
from .progress import Progress

FORMAT, VERSION = "multiframe-backup", 1
SCAN_COUNT = 1000
WRITE_BATCH, WRITE_BYTES = 500, 8 << 20
KINDS = {b"ReJSON-RL": "json", b"string": "string", b"set": "set"}
READ = {"json": ("JSON.GET", "."), "string": ("GET",), "set": ("SMEMBERS",)}
Record = dict[str, Any]
PARTIAL = "the target is partially filled: `restore --replace` the same file to complete it"


class BadBackup(Exception):
    """The file is not a complete, intact backup in a format this version reads."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def _key_batches(client: Redis, schema: Schema) -> AsyncIterator[list[str]]:
    """Service keys in batches: SCAN (never KEYS) per pattern, EXISTS for fixed names."""
    for pattern in patterns(schema):
        if "*" not in pattern:
            if await client.exists(pattern):
                yield [pattern]
            continue
        cursor: int | None = None
        while cursor != 0:
            cursor, found = await client.scan(cursor or 0, match=pattern, count=SCAN_COUNT)
            if found:
                yield list(dict.fromkeys(_text(k) for k in found))  # restore is idempotent


async def _read(client: Redis, batch: list[str]) -> tuple[list[Record], list[str]]:
    """Records for ``batch`` (two pipelined round trips) and the keys that cannot be backed up."""
    async with client.pipeline(transaction=False) as pipe:
        for key in batch:
            pipe.type(key)
        typed = list(zip(batch, await pipe.execute(), strict=True))
    skipped = [f"{k} ({t.decode()})" for k, t in typed if t not in KINDS and t != b"none"]
    wanted = [(key, KINDS[kind]) for key, kind in typed if kind in KINDS]
    async with client.pipeline(transaction=False) as pipe:
        for key, kind in wanted:
            command, *path = READ[kind]
            pipe.execute_command(command, key, *path)
        values = await pipe.execute()
    records: list[Record] = []
    for (key, kind), value in zip(wanted, values, strict=True):
        if value is not None and value != set():  # else deleted between TYPE and the read
            v = sorted(m.decode() for m in value) if kind == "set" else value.decode()
            records.append({"k": key, "t": kind, "v": v})
    return records, skipped


class _Writer:
    """Streams lines into ``FILE.tmp`` (hashing them) and renames it to ``FILE`` when complete."""

    def __init__(self, path: Path) -> None:
        self.path, self.tmp, self.sha = path, path.with_name(path.name + ".tmp"), hashlib.sha256()
        self.raw: BinaryIO = self.tmp.open("wb")
        self.gz = gzip.GzipFile(fileobj=self.raw, mode="wb", compresslevel=6)

    def line(self, obj: Record) -> None:
        data = orjson.dumps(obj) + b"\n"
        self.sha.update(data)
        self.gz.write(data)

    def commit(self, records: int) -> None:
        self.gz.write(orjson.dumps({"records": records, "sha256": self.sha.hexdigest()}) + b"\n")
        self.gz.close()
        self.raw.flush()
        os.fsync(self.raw.fileno())  # the rename must never expose a file still in the cache
        self.raw.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.gz.close()
        self.raw.close()
        self.tmp.unlink(missing_ok=True)


def backup_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``backup FILE``."""
    parser.add_argument("file", type=Path, help="backup file to write (gzip JSON Lines)")


async def backup(args: argparse.Namespace, ks: Keyspace) -> int:
    """Stream every service key into ``args.file``; PROBLEMS if some key had an unknown type."""
    version = str((await ks.client.info("server")).get("redis_version", "unknown"))
    created = datetime.now(UTC).isoformat(timespec="seconds")
    header = {"format": FORMAT, "version": VERSION, "created_at": created, "redis_version": version}
    counts: Counter[str] = Counter()
    skipped = 0
    writer = _Writer(args.file)
    try:
        writer.line(header)
        with Progress("backup") as progress:
            async for batch in _key_batches(ks.client, ks.schema):
                records, odd = await _read(ks.client, batch)
                for key in odd:
                    print(f"\nbackup: skipped {key}: unsupported type", file=sys.stderr)
                skipped += len(odd)
                for record in records:
                    writer.line(record)
                    counts[record["t"]] += 1
                progress.advance(len(records))
        writer.commit(progress.done)
    except BaseException:  # Ctrl-C (CancelledError/KeyboardInterrupt) or failure: no FILE
        writer.abort()
        raise
    size = args.file.stat().st_size
    print(f"{progress.summary('keys')} ({_kinds(counts)}, {skipped} skipped); {size:,} bytes")
    return PROBLEMS if skipped else OK


def _kinds(counts: Counter[str]) -> str:
    return ", ".join(f"{kind} {counts[kind]:,}" for kind in ("json", "string", "set"))


def _check(record: Any, service: list[str]) -> Record:
    """A well-formed record of a service key, else BadBackup."""
    if not isinstance(record, dict) or set(record) != {"k", "t", "v"}:
        raise BadBackup("a record must have exactly the fields k, t, v")
    key, kind, value = record["k"], record["t"], record["v"]
    if not isinstance(key, str) or not any(fnmatchcase(key, p) for p in service):
        raise BadBackup(f"record key {key!r} is not a service key")
    if kind == "set":
        ok = isinstance(value, list) and bool(value) and all(isinstance(m, str) for m in value)
    else:
        ok = kind in ("json", "string") and isinstance(value, str)
    if ok and kind == "json":  # JSON.SET must not fail half-way through pass 2
        try:
            orjson.loads(value)
        except orjson.JSONDecodeError:
            ok = False
    if not ok:
        raise BadBackup(f"record {key!r} has a bad type or value")
    return record


def _records(path: Path, schema: Schema) -> Iterator[tuple[Record, int]]:
    """Validated records of ``path`` and their sizes; BadBackup at the end on a bad trailer."""
    service = patterns(schema)
    sha, count, trailer = hashlib.sha256(), 0, None
    try:
        with gzip.open(path, "rb") as lines:
            for number, line in enumerate(lines, 1):
                if trailer is not None:
                    raise BadBackup(f"line {number}: data after the trailer")
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError:
                    raise BadBackup(f"line {number} is not JSON (damaged file?)") from None
                if number == 1:
                    head = obj if isinstance(obj, dict) else {}
                    if [head.get("format"), head.get("version")] != [FORMAT, VERSION]:
                        raise BadBackup(f"not a {FORMAT} file of version {VERSION}")
                elif isinstance(obj, dict) and "sha256" in obj and "k" not in obj:
                    trailer = obj
                    continue
                else:
                    count += 1
                    yield _check(obj, service), len(line)
                sha.update(line)
    except (OSError, EOFError, zlib.error) as exc:
        raise BadBackup(f"cannot read {path}: {exc}") from None
    if trailer is None:
        raise BadBackup("no trailer: the file is truncated")
    if trailer.get("records") != count:
        raise BadBackup(f"trailer says {trailer.get('records')} records, file has {count}")
    if trailer.get("sha256") != sha.hexdigest():
        raise BadBackup("checksum mismatch: the file is damaged or was modified")


def restore_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``restore FILE [--replace]``; the server is not set up beforehand."""
    parser.add_argument("file", type=Path, help="backup file written by `backup`")
    parser.add_argument("--replace", action="store_true", help="delete service keys first")
    parser.add_argument("--index-timeout", type=float, default=3600.0, help="seconds per index")
    parser.set_defaults(setup=False)


async def _occupant(ks: Keyspace) -> str | None:
    """A service key that makes the target non-empty (a singleton counts only if changed)."""
    singles = {single.key: single for single in ks.schema.singletons}
    async for found in _key_batches(ks.client, ks.schema):
        for key in found:
            if key not in singles:
                return key
            try:
                raw = await call(ks.client, "JSON.GET", key, ".")
            except ResponseError:
                return key  # not JSON at all
            if raw is not None and orjson.loads(raw) != singles[key].default:
                return key
    return None


async def _write(client: Redis, batch: list[Record]) -> None:
    """One pipelined batch; every command overwrites, so a batch can be sent again."""
    async with client.pipeline(transaction=False) as pipe:
        for record in batch:
            key, kind, value = record["k"], record["t"], record["v"]
            if kind == "json":
                pipe.execute_command("JSON.SET", key, "$", value)
            elif kind == "string":
                pipe.set(key, value)
            else:
                pipe.delete(key)
                pipe.sadd(key, *value)
        await pipe.execute()


async def restore(args: argparse.Namespace, ks: Keyspace) -> int:
    """Verify ``args.file``, check the target is empty (or ``--replace``), write, reindex."""
    try:
        with Progress("verify") as progress:
            for _ in _records(args.file, ks.schema):
                progress.advance()
    except BadBackup as exc:
        print(f"restore: {args.file} rejected, nothing written: {exc}", file=sys.stderr)
        return PROBLEMS
    total = progress.done
    occupant = await _occupant(ks)
    if occupant is not None and not args.replace:
        raise Refused(f"the target holds service data ({occupant}); use --replace to overwrite")
    counts: Counter[str] = Counter()
    try:
        if occupant is not None:
            with Progress("replace: delete") as progress:
                async for found in _key_batches(ks.client, ks.schema):
                    progress.advance(await ks.client.unlink(*found))
        with Progress("restore", total=total) as progress:
            batch: list[Record] = []
            size = 0
            for record, length in _records(args.file, ks.schema):
                batch.append(record)
                size += length
                counts[record["t"]] += 1
                if len(batch) >= WRITE_BATCH or size >= WRITE_BYTES:
                    await _write(ks.client, batch)
                    progress.advance(len(batch))
                    batch, size = [], 0
            await _write(ks.client, batch)
            progress.advance(len(batch))
    except BadBackup as exc:  # the file changed between the two passes
        print(f"restore: {args.file} changed: {exc}; {PARTIAL}", file=sys.stderr)
        return PROBLEMS
    except (asyncio.CancelledError, KeyboardInterrupt):
        print(f"\nrestore interrupted; {PARTIAL}", file=sys.stderr)
        raise
    written = progress.summary("keys")
    started = time.perf_counter()
    await ks.setup(index_timeout=args.index_timeout)
    if ks.capabilities.search:
        for spec in ks.schema.entities:
            await search.wait_built(ks.client, keys.index_alias(spec.prefix), args.index_timeout)
    print(f"{written} ({_kinds(counts)}); indexes ready in {time.perf_counter() - started:.1f}s")
    return OK
