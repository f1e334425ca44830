"""``backup``/``restore``: a portable, checksummed, streamed copy of the service's keyspace.

Format: gzip JSON Lines: header ``{"format": "multiframe-backup", "version": 2, ...}``, one
``{"k", "t": json|string|set|hash, "v"[, "pxat"]}`` per document, singleton, counter and ``mf:``
key (json ``v`` is the raw ``JSON.GET key .`` text: restores are byte-identical; hash ``v`` is an
object), trailer ``{"records", "sha256"}`` over every line before it. ``pxat`` is the key's expiry
as Unix time in milliseconds (the server's clock): restore sets it again and leaves out keys whose
expiry has passed. Rate-limit state (``mf:rate:*``) is not backed up. Restore leaves out the tokens
an older version stored for its operator (see :func:`_operator_token`). Restore also reads version 1
files (no hashes, no expiries). Indexes are rebuilt by ``setup()``. Unlike the server's RDB/AOF
(crash recovery on the same machine and version) it loads into any Redis with RedisJSON. SCAN is
not a snapshot: for a point-in-time copy stop the writers (``config:system`` maintenance) or copy
the RDB after ``BGSAVE``. Backups are written to a unique temporary beside FILE and renamed over it
when complete (:class:`_Writer`). Restore verifies the whole file (scripts/verify.py) before
writing, writes under the pause (scripts/pause.py), and an interrupted restore is completed by
``restore --replace`` (idempotent; it takes the pause over).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import hashlib
import os
import stat
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from keyspace import USER, Keyspace, keys, search
from keyspace.connection import call
from keyspace.inventory import patterns
from keyspace.projection import projected
from keyspace.reproject import expected
from keyspace.schema import Schema
from keyspace.tokens import OPERATOR

from .cli import OK, PROBLEMS, Refused
from .pause import PAUSE, paused
from .progress import Progress
from .verify import (
    DERIVED,
    FORMAT,
    VERSION,
    BadBackup,
    Record,
    momentary,
    never_restored,
    records,
)

SCAN_COUNT = 1000
WRITE_BATCH, WRITE_BYTES = 500, 8 << 20
KINDS = {b"ReJSON-RL": "json", b"string": "string", b"set": "set", b"hash": "hash"}
READ = {"json": ("JSON.GET", "."), "string": ("GET",), "set": ("SMEMBERS",), "hash": ("HGETALL",)}
# Older versions stored the operator's MULTIFRAME_ADMIN_TOKEN as a token of user id OPERATOR
# without a user document; this one never stores it (keyspace/tokens.py).
OPERATOR_USER = keys.doc_key(USER.prefix, OPERATOR)
OPERATOR_TOKENS = keys.user_tokens_key(OPERATOR)
TOKENS = keys.token_key("*")


PARTIAL = "the target is partially filled: `restore --replace` the same file to complete it"


class CannotWrite(Exception):
    """The backup file could not be written (missing directory, permissions, disk full...)."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _names(found: list[bytes | str], odd: list[bytes]) -> list[str]:
    """Decoded key names; names that are not UTF-8 (no service key's) go to ``odd``."""
    out: list[str] = []
    for name in found:
        try:
            out.append(_text(name))
        except UnicodeDecodeError:
            odd.append(name if isinstance(name, bytes) else name.encode())
    return out


async def _key_batches(
    client: Redis, schema: Schema, odd: list[bytes] | None = None
) -> AsyncIterator[list[str]]:
    """Service keys in batches: SCAN (never KEYS) per pattern, EXISTS for fixed names. Names
    under a service pattern that are not UTF-8 are collected in ``odd`` (one run may meet
    such a name more than once)."""
    odd = [] if odd is None else odd
    for pattern in patterns(schema):
        if "*" not in pattern:
            if await client.exists(pattern):
                yield [pattern]
            continue
        cursor: int | None = None
        while cursor != 0:
            cursor, found = await client.scan(cursor or 0, match=pattern, count=SCAN_COUNT)
            # The pause is never backed up, and the wipe of its own holder leaves it.
            batch = [key for key in dict.fromkeys(_names(found, odd)) if key != PAUSE]
            if batch:
                yield batch  # deduplicated: restore is idempotent


async def _read(client: Redis, batch: list[str]) -> tuple[list[Record], list[str]]:
    """Records for ``batch`` (two pipelined round trips) and the keys that cannot be backed up."""
    async with client.pipeline(transaction=False) as pipe:
        for key in batch:
            pipe.type(key)
        typed = list(zip(batch, await pipe.execute(), strict=True))
    skipped = [f"{k} ({t.decode()})" for k, t in typed if t not in KINDS and t != b"none"]
    wanted = [(key, KINDS[kind]) for key, kind in typed if kind in KINDS]
    async with client.pipeline(transaction=False) as pipe:
        pipe.time()  # before the PTTLs, so an expiry is never placed later than the real one
        for key, kind in wanted:
            command, *path = READ[kind]
            pipe.execute_command(command, key, *path)
            pipe.pttl(key)
        (seconds, micros), *replies = await pipe.execute()
    now = seconds * 1000 + micros // 1000
    records: list[Record] = []
    for (key, kind), value, ttl in zip(wanted, replies[::2], replies[1::2], strict=True):
        if value in (None, set(), {}) or ttl == -2:  # deleted or expired since TYPE
            continue
        record: Record = {"k": key, "t": kind, "v": _value(kind, value)}
        if ttl >= 0:
            record["pxat"] = now + ttl
        records.append(record)
    return records, skipped


def _value(kind: str, value: Any) -> Any:
    if kind == "set":
        return sorted(m.decode() for m in value)
    if kind == "hash":
        return {f.decode(): v.decode() for f, v in sorted(value.items())}
    return value.decode()


@contextlib.contextmanager
def _writing() -> Iterator[None]:
    """OSError of the file only: a Redis failure must not be reported as a file problem."""
    try:
        yield
    except OSError as exc:
        raise CannotWrite(str(exc)) from exc


def not_regular(path: Path) -> str | None:
    """Why ``path`` may not be replaced by a backup (None: missing, or a regular file).
    Symbolic links are refused too, also to a regular file: replacing the link would
    surprise, writing through it would let a planted link choose what gets overwritten."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot be inspected ({exc.strerror})"
    if stat.S_ISLNK(mode):
        return "is a symbolic link; name the file itself (e.g. its `realpath`)"
    if stat.S_ISDIR(mode):
        return "is a directory; name the file to write, e.g. " + str(path / "keyspace.jsonl.gz")
    if not stat.S_ISREG(mode):
        return "is not a regular file (a FIFO, socket or device); choose a file name"
    return None


class _Writer:
    """Streams lines into a temporary file of its own (hashing them) and renames it over
    ``FILE`` when complete. The temporary is created with a unique name in FILE's directory
    (``mkstemp``: O_EXCL, O_NOFOLLOW, mode 0600), so overlapping backups to one FILE never
    share it and a link planted beside FILE is never followed; the last rename wins whole."""

    def __init__(self, path: Path) -> None:
        self.path, self.sha = path, hashlib.sha256()
        with _writing():
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            self.tmp = Path(name)
            self.raw: BinaryIO = os.fdopen(fd, "wb")
        self.gz = gzip.GzipFile(fileobj=self.raw, mode="wb", compresslevel=6)

    def line(self, obj: Record) -> None:
        data = orjson.dumps(obj) + b"\n"
        self.sha.update(data)
        with _writing():
            self.gz.write(data)

    def commit(self, records: int) -> None:
        with _writing():
            trailer = {"records": records, "sha256": self.sha.hexdigest()}
            self.gz.write(orjson.dumps(trailer) + b"\n")
            self.gz.close()
            self.raw.flush()
            os.fsync(self.raw.fileno())  # the rename must never expose a file still in the cache
            self.raw.close()
            reason = not_regular(self.path)  # it may have changed since the command started
            if reason is not None:
                raise CannotWrite(f"{self.path} {reason}")
            os.replace(self.tmp, self.path)  # replaces the name: never writes through a link
            folder = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(folder)  # the rename itself survives a crash
            finally:
                os.close(folder)

    def abort(self) -> None:
        for close in (self.gz.close, self.raw.close):  # a full disk can fail the final flush
            with contextlib.suppress(Exception):
                close()
        self.tmp.unlink(missing_ok=True)


def backup_target(text: str) -> Path:
    """argparse type of ``backup FILE``: a new or regular file in an existing directory,
    checked before the server is touched (a late failure still leaves no file, see
    :class:`CannotWrite`)."""
    path = Path(text)
    folder = path.parent
    if not folder.exists():
        raise argparse.ArgumentTypeError(
            f"directory {folder} does not exist; create it first (mkdir -p {folder})"
        )
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{folder} is not a directory; choose a path inside one")
    reason = not_regular(path)
    if reason is not None:
        raise argparse.ArgumentTypeError(f"{text} {reason}")
    return path


def backup_source(text: str) -> Path:
    """argparse type of ``restore FILE``: an existing file (its content is verified later)."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory; give a file written by `backup`")
    if not path.exists():
        raise argparse.ArgumentTypeError(
            f"{text} does not exist; give the path of a file written by `backup`"
        )
    return path


def backup_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``backup FILE``."""
    parser.add_argument("file", type=backup_target, help="backup file to write (gzip JSON Lines)")


async def backup(args: argparse.Namespace, ks: Keyspace) -> int:
    """Stream every service key into ``args.file``; PROBLEMS if some key had an unknown type
    or the file could not be written (then no file is left behind)."""
    version = str((await ks.client.info("server")).get("redis_version", "unknown"))
    created = datetime.now(UTC).isoformat(timespec="seconds")
    header = {"format": FORMAT, "version": VERSION, "created_at": created, "redis_version": version}
    counts: Counter[str] = Counter()
    skipped = transient = derived = 0
    try:
        writer = _Writer(args.file)
    except CannotWrite as exc:
        return _cannot_write(args.file, exc)
    try:
        writer.line(header)
        with Progress("backup") as progress:
            undecodable: list[bytes] = []
            async for found in _key_batches(ks.client, ks.schema, undecodable):
                kept = [key for key in found if not fnmatchcase(key, DERIVED)]
                derived += len(found) - len(kept)
                batch = [key for key in kept if not momentary(key)]
                transient += len(kept) - len(batch)
                if not batch:
                    continue
                records, odd = await _read(ks.client, batch)
                for key in odd:
                    print(f"\nbackup: skipped {key}: unsupported type", file=sys.stderr)
                skipped += len(odd)
                for record in records:
                    writer.line(record)
                    counts[record["t"]] += 1
                progress.advance(len(records))
            for name in dict.fromkeys(undecodable):
                print(
                    f"\nbackup: skipped {name!r}: the key name is not UTF-8 (no service key's "
                    "is); RENAME or delete it",
                    file=sys.stderr,
                )
            skipped += len(set(undecodable))
        writer.commit(progress.done)
    except CannotWrite as exc:
        writer.abort()
        return _cannot_write(args.file, exc)
    except BaseException:  # Ctrl-C (CancelledError/KeyboardInterrupt) or failure: no FILE
        writer.abort()
        raise
    size = args.file.stat().st_size
    left_out = (
        f"{skipped} skipped, {transient} rate-limit and lock keys left out, "
        f"{derived} search projections left out (rebuilt on restore)"
    )
    print(f"{progress.summary('keys')} ({_kinds(counts)}; {left_out}); {size:,} bytes")
    return PROBLEMS if skipped else OK


def _cannot_write(path: Path, exc: CannotWrite) -> int:
    print(
        f"backup: cannot write {path} ({exc}); nothing was written and any earlier {path} is "
        "unchanged: free disk space, fix the permissions or choose another FILE, then run again",
        file=sys.stderr,
    )
    return PROBLEMS


def _kinds(counts: Counter[str]) -> str:
    return ", ".join(f"{kind} {counts[kind]:,}" for kind in ("json", "string", "set", "hash"))


def _operator_token(record: Record) -> bool:
    """Whether ``record`` is a token of :data:`OPERATOR` (or their set): in a file without
    the user document :data:`OPERATOR` only an older version's operator token can be one,
    another deployment's admin key, which a restore must not bring along."""
    if record["k"] == OPERATOR_TOKENS:
        return True
    value = record["v"]
    return (
        fnmatchcase(record["k"], TOKENS)
        and isinstance(value, dict)
        and value.get("user_id") == OPERATOR
    )


def restore_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``restore FILE [--replace]``; the server is not set up beforehand."""
    parser.add_argument("file", type=backup_source, help="backup file written by `backup`")
    parser.add_argument("--replace", action="store_true", help="delete service keys first")
    parser.add_argument("--index-timeout", type=float, default=3600.0, help="seconds per index")
    parser.set_defaults(setup=False)


async def _occupant(ks: Keyspace) -> str | None:
    """A service key that makes the target non-empty (a singleton counts only if changed)."""
    singles = {single.key: single for single in ks.schema.singletons}
    undecodable: list[bytes] = []
    async for found in _key_batches(ks.client, ks.schema, undecodable):
        if undecodable:
            return repr(undecodable[0])
        for key in found:
            if key not in singles:
                return key
            try:
                raw = await call(ks.client, "JSON.GET", key, ".")
            except ResponseError:
                return key  # not JSON at all
            if raw is not None and orjson.loads(raw) != singles[key].default:
                return key
    return repr(undecodable[0]) if undecodable else None


def _shown(schema: Schema, key: str, raw: str) -> tuple[str, bytes] | None:
    """The search projection a restored document calls for (key, bytes), or None."""
    for spec in schema.entities:
        if projected(spec) and fnmatchcase(key, keys.doc_match(spec.prefix)):
            want = expected(spec, raw.encode())
            doc_id = keys.id_from_key(spec.prefix, key)
            return (keys.projection_key(spec.prefix, doc_id), want) if want else None
    return None


async def _write(client: Redis, schema: Schema, batch: list[Record]) -> None:
    """One pipelined batch, documents with their search projections (so the keyspace is
    whole when the pause ends); every command overwrites, so a batch can be sent again."""
    async with client.pipeline(transaction=False) as pipe:
        for record in batch:
            key, kind, value = record["k"], record["t"], record["v"]
            if kind == "json":
                pipe.execute_command("JSON.SET", key, "$", value)
                if (shown := _shown(schema, key, value)) is not None:
                    pipe.execute_command("JSON.SET", shown[0], "$", shown[1])
            elif kind == "string":
                pipe.set(key, value)
            elif kind == "set":
                pipe.delete(key)
                pipe.sadd(key, *value)
            else:
                pipe.delete(key)
                pipe.hset(key, mapping=value)
            if "pxat" in record:
                pipe.pexpireat(key, record["pxat"])
        await pipe.execute()


async def _flush(client: Redis, schema: Schema, batch: list[Record], counts: Counter[str]) -> int:
    """Write the records of ``batch`` still alive on the target's clock; the number expired.
    A key that expires between this check and its PEXPIREAT is deleted by Redis itself."""
    live = batch
    if any("pxat" in record for record in batch):
        seconds, micros = await client.time()
        now = seconds * 1000 + micros // 1000
        live = [record for record in batch if record.get("pxat", now + 1) > now]
    counts.update(record["t"] for record in live)
    await _write(client, schema, live)
    return len(batch) - len(live)


async def restore(args: argparse.Namespace, ks: Keyspace) -> int:
    """Verify ``args.file``; then, holding the pause, check the target is empty (or
    ``--replace``) and write; then reindex with the service running again."""
    operator_user = False  # whether the file holds the user document OPERATOR
    try:
        with Progress("verify") as progress:
            for record, _ in records(args.file, ks.schema):
                operator_user = operator_user or record["k"] == OPERATOR_USER
                progress.advance()
    except BadBackup as exc:
        print(f"restore: {args.file} rejected, nothing written: {exc}", file=sys.stderr)
        return PROBLEMS
    command = f"restore {args.file}{' --replace' if args.replace else ''}"
    try:
        async with paused(ks.client, command) as pause:
            occupant = await _occupant(ks)
            if occupant is not None and not args.replace:
                raise Refused(
                    f"the target holds service data ({occupant}); use --replace to overwrite"
                )
            pause.writing = True
            written = await _replace(args, ks, operator_user, progress.done, occupant)
    except BadBackup as exc:  # the file changed between the two passes
        print(f"restore: {args.file} changed: {exc}; {PARTIAL}", file=sys.stderr)
        return PROBLEMS
    except (asyncio.CancelledError, KeyboardInterrupt):
        print(f"\nrestore interrupted; {PARTIAL}", file=sys.stderr)
        raise
    started = time.perf_counter()
    await ks.setup(index_timeout=args.index_timeout)
    if ks.capabilities.search:
        for spec in ks.schema.entities:
            await search.wait_built(ks.client, keys.index_alias(spec.prefix), args.index_timeout)
    print(f"{written}; indexes ready in {time.perf_counter() - started:.1f}s")
    return OK


async def _replace(
    args: argparse.Namespace, ks: Keyspace, operator_user: bool, total: int, occupant: str | None
) -> str:
    """Delete the service keys (when ``occupant`` says there are any), then write the
    file's records; the summary line."""
    counts: Counter[str] = Counter()
    expired = operator = skipped = 0
    if occupant is not None:
        with Progress("replace: delete") as progress:
            undecodable: list[bytes] = []
            async for found in _key_batches(ks.client, ks.schema, undecodable):
                if found:
                    progress.advance(await ks.client.unlink(*found))
            if undecodable:
                progress.advance(await ks.client.unlink(*set(undecodable)))
    with Progress("restore", total=total) as progress:
        batch: list[Record] = []
        size = 0
        for record, length in records(args.file, ks.schema):
            if never_restored(record["k"]):
                skipped += 1
            elif not operator_user and _operator_token(record):
                operator += 1
            else:
                batch.append(record)
                size += length
            if len(batch) >= WRITE_BATCH or size >= WRITE_BYTES:
                expired += await _flush(ks.client, ks.schema, batch, counts)
                batch, size = [], 0
            progress.advance()
        expired += await _flush(ks.client, ks.schema, batch, counts)
    kinds = f"{_kinds(counts)}; {expired} expired, not restored"
    kinds += f"; {operator} operator-token keys left out"
    if skipped:
        kinds += f"; {skipped} derived keys left out (rebuilt)"
    return f"{progress.summary('keys')} ({kinds})"
