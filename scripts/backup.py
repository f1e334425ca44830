"""``backup``: a portable, checksummed, streamed copy of the service's keyspace (``restore``
reads it back: scripts/restore.py).

Format: gzip JSON Lines: header ``{"format": "multiframe-backup", "version": 2, ...}``, one
``{"k", "t": json|string|set|hash, "v"[, "pxat"]}`` per document, singleton, counter and ``mf:``
key (json ``v`` is the raw ``JSON.GET key .`` text: restores are byte-identical; hash ``v`` is an
object), trailer ``{"records", "sha256"}`` over every line before it. ``pxat`` is the key's expiry
as Unix time in milliseconds (the server's clock). Rate-limit state (``mf:rate:*``), admin locks,
the pause and search projections are not backed up, nor are document locks and operation logs
(their fencing and sequence counters are: verify.coordination) and cached profiles. Unlike the
server's RDB/AOF (crash recovery on the same machine and version) it loads into any Redis with
RedisJSON. SCAN is not a snapshot: for a point-in-time copy stop the writers (``config:system``
maintenance) or copy the RDB after ``BGSAVE``. Backups are written to a unique temporary beside
FILE and renamed over it when complete (:class:`_Writer`).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import os
import stat
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from redis.asyncio import Redis

from keyspace import Keyspace
from keyspace.inventory import patterns
from keyspace.schema import Schema

from .exits import OK, PROBLEMS
from .progress import Progress
from .verify import FORMAT, VERSION, Record, coordination, derived, momentary, profiles

SCAN_COUNT = 1000
KINDS = {b"ReJSON-RL": "json", b"string": "string", b"set": "set", b"hash": "hash"}
READ = {"json": ("JSON.GET", "."), "string": ("GET",), "set": ("SMEMBERS",), "hash": ("HGETALL",)}


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


async def key_batches(
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
            batch = [
                key for key in dict.fromkeys(_names(found, odd)) if key != schema.names.pause_key()
            ]
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
        for key, kind in wanted:
            command, *path = READ[kind]
            pipe.execute_command(command, key, *path)
            # The expiry itself, not now + PTTL: keys that expire together (an expiring
            # document, its claims) keep one millisecond in the file, whenever each was read.
            pipe.execute_command("PEXPIRETIME", key)
        replies = await pipe.execute()
    records: list[Record] = []
    for (key, kind), value, at in zip(wanted, replies[::2], replies[1::2], strict=True):
        if value in (None, set(), {}) or at == -2:  # deleted or expired since TYPE
            continue
        record: Record = {"k": key, "t": kind, "v": _value(kind, value)}
        if at >= 0:
            record["pxat"] = at
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
    """Arguments of ``backup FILE`` (or the seed's ``backup --backup-file FILE``)."""
    parser.add_argument(
        "file", nargs="?", type=backup_target, help="backup file to write (gzip JSON Lines)"
    )
    parser.add_argument(
        "--backup-file", type=backup_target, metavar="FILE", help="the same, as manage_db names it"
    )
    parser.set_defaults(usage=_one_file)


def _one_file(args: argparse.Namespace) -> str | None:
    """Exactly one of FILE and --backup-file; ``args.file`` is then the one given."""
    if (args.file is None) == (args.backup_file is None):
        return "backup: give the file once, as FILE or as --backup-file FILE"
    args.file = args.file or args.backup_file
    return None


async def backup(args: argparse.Namespace, ks: Keyspace) -> int:
    """Stream every service key into ``args.file``; PROBLEMS if some key had an unknown type
    or the file could not be written (then no file is left behind)."""
    version = str((await ks.client.info("server")).get("redis_version", "unknown"))
    created = datetime.now(UTC).isoformat(timespec="seconds")
    header = {"format": FORMAT, "version": VERSION, "created_at": created, "redis_version": version}
    counts: Counter[str] = Counter()
    skipped = transient = projections = 0
    names = ks.schema.names
    # Document locks, operation logs and cached profiles: left out.
    held = coordination(ks.schema) + profiles(ks.schema)
    try:
        writer = _Writer(args.file)
    except CannotWrite as exc:
        return _cannot_write(args.file, exc)
    try:
        writer.line(header)
        with Progress("backup") as progress:
            undecodable: list[bytes] = []
            async for found in key_batches(ks.client, ks.schema, undecodable):
                # The change feed records this deployment's commits: never backed up.
                found = [key for key in found if key != names.changes_key()]
                kept = [key for key in found if not derived(names, key)]
                projections += len(found) - len(kept)
                batch = [
                    key
                    for key in kept
                    if not momentary(names, key) and not any(fnmatchcase(key, p) for p in held)
                ]
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
        f"{projections} search projections and rankings left out (rebuilt on restore)"
    )
    print(f"{progress.summary('keys')} ({kinds_of(counts)}; {left_out}); {size:,} bytes")
    return PROBLEMS if skipped else OK


def _cannot_write(path: Path, exc: CannotWrite) -> int:
    print(
        f"backup: cannot write {path} ({exc}); nothing was written and any earlier {path} is "
        "unchanged: free disk space, fix the permissions or choose another FILE, then run again",
        file=sys.stderr,
    )
    return PROBLEMS


def kinds_of(counts: Counter[str]) -> str:
    return ", ".join(f"{kind} {counts[kind]:,}" for kind in ("json", "string", "set", "hash"))
