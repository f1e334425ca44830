"""``restore``: verify a backup file whole (scripts/verify.py), then write it under the pause
(scripts/pause.py) and check that its records agree with each other.

Restore sets each key's expiry again and leaves out keys whose expiry has passed, the tokens an
older version stored for its operator (see :func:`_operator_token`), and derived keys (search
projections are written with their documents; indexes are rebuilt by ``setup()``). Documents are
written in the form the service stores. It also reads version 1 files (no hashes, no expiries). An
interrupted restore is completed by ``restore --replace`` (idempotent; it takes the pause over).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from fnmatch import fnmatchcase

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from keyspace import Keyspace, feed, keyring, ranks, search
from keyspace.connection import call
from keyspace.keys import Names
from keyspace.projection import projected
from keyspace.reproject import document, expected
from keyspace.schema import Schema
from keyspace.tokens import OPERATOR

from .args import positive_seconds
from .backup import backup_source, key_batches, kinds_of
from .exits import OK, PROBLEMS, Refused
from .inspection import inspect_settled
from .pause import paused
from .progress import Progress
from .report import Report
from .verify import BadBackup, Record, TokenLedger, never_restored, records

WRITE_BATCH, WRITE_BYTES = 500, 8 << 20
SHOWN_PROBLEMS = 20
# Older versions stored the operator's MULTIFRAME_ADMIN_TOKEN as a token of user id OPERATOR
# without a user document; this one never stores it (keyspace/tokens.py).
PARTIAL = "the target is partially filled: `restore --replace` the same file to complete it"


def _operator_token(names: Names, record: Record) -> bool:
    """Whether ``record`` is a token of :data:`OPERATOR` (or their set): in a file without
    the user document :data:`OPERATOR` only an older version's operator token can be one,
    another deployment's admin key, which a restore must not bring along."""
    if record["k"] == names.user_tokens_key(OPERATOR):
        return True
    value = record["v"]
    return (
        fnmatchcase(record["k"], names.token_key("*"))
        and isinstance(value, dict)
        and value.get("user_id") == OPERATOR
    )


def restore_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``restore FILE [--replace]``; the server is not set up beforehand."""
    parser.add_argument("file", type=backup_source, help="backup file written by `backup`")
    parser.add_argument("--replace", action="store_true", help="delete service keys first")
    parser.add_argument(
        "--index-timeout", type=positive_seconds, default=3600.0, help="seconds per index"
    )
    parser.set_defaults(setup=False)


async def _occupant(ks: Keyspace) -> str | None:
    """A service key that makes the target non-empty (a singleton counts only if changed)."""
    singles = {single.key: single for single in ks.schema.singletons}
    undecodable: list[bytes] = []
    async for found in key_batches(ks.client, ks.schema, undecodable):
        if undecodable:
            return repr(undecodable[0])
        for key in found:
            if key == ks.schema.names.changes_key():
                continue  # begun anew by a reset or restore: no data of its own
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
        names = spec.names
        if projected(spec) and fnmatchcase(key, names.doc_match(spec.prefix)):
            want = expected(spec, raw.encode())
            doc_id = names.id_from_key(spec.prefix, key)
            return (names.projection_key(spec.prefix, doc_id), want) if want else None
    return None


def _ranked(schema: Schema, key: str, raw: str) -> list[tuple[str, str, str]]:
    """(set key, score, id) of each ranked field's member a restored document calls for."""
    for spec in schema.entities:
        names = spec.names
        if spec.ranked_fields and fnmatchcase(key, names.doc_match(spec.prefix)):
            doc = document(spec, raw.encode())
            doc_id = names.id_from_key(spec.prefix, key)
            return [] if doc is None else [(k, s, doc_id) for k, s in ranks.members(spec, doc)]
    return []


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
                    if "pxat" in record:  # an expiring document's projection expires with it
                        pipe.pexpireat(shown[0], record["pxat"])
                for rank_key, score, doc_id in _ranked(schema, key, value):
                    pipe.zadd(rank_key, {doc_id: float(score)})
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
    counts["normalized"] += sum(1 for record in live if record.get("normalized"))
    await _write(client, schema, live)
    return len(batch) - len(live)


async def restore(args: argparse.Namespace, ks: Keyspace) -> int:
    """Verify ``args.file``; then, holding the pause, check the target is empty (or
    ``--replace``) and write; then reindex with the service running again."""
    operator_user = False  # whether the file holds the user document OPERATOR
    try:
        with Progress("verify") as progress:
            ledger = TokenLedger(ks.schema, OPERATOR)
            for record, _ in records(args.file, ks.schema):
                operator_user = operator_user or record["k"] == ks.schema.names.doc_key(
                    ks.schema.users.prefix, OPERATOR
                )
                ledger.add(record)
                progress.advance()
            ledger.check()
    except BadBackup as exc:
        print(f"restore: {args.file} rejected, nothing written: {exc}", file=sys.stderr)
        return PROBLEMS
    command = f"restore {args.file}{' --replace' if args.replace else ''}"
    try:
        async with paused(ks, command) as pause:
            occupant = await _occupant(ks)
            if occupant is not None and not args.replace:
                raise Refused(
                    f"the target holds service data ({occupant}); use --replace to overwrite"
                )
            pause.writing = True
            written = await _replace(args, ks, operator_user, progress.done, occupant)
            unsealed = await _keyring_left_behind(ks)
            # Still paused, so only expiries change the data under the check (settled: what
            # both passes find), and what it finds is the file's.
            with Progress("restore: check"):
                report = await inspect_settled(ks, indexes=False)
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
            await search.wait_built(
                ks.client, spec.names.index_alias(spec.prefix), args.index_timeout
            )
    print(f"{written}; indexes ready in {time.perf_counter() - started:.1f}s")
    if unsealed:
        print(
            "restore: the file holds no keyring (a backup taken before encryption): its "
            "sensitive fields are in clear; services holding the key make the keyring again "
            "(at their next write, or start) and seal what they write: then run "
            "`multiframe-admin encrypt`",
            file=sys.stderr,
        )
    return _agreement(report)


async def _keyring_left_behind(ks: Keyspace) -> bool:
    """Whether this process held a key and the file brought no keyring: the keyspace is a
    plaintext one now, checked as such (its values in clear are no disagreement)."""
    if ks.sealer is None or await keyring.read(ks.client, ks.schema.names):
        return False
    await ks.unlock(None, create=False)
    return True


def _agreement(report: Report) -> int:
    """Records are verified one by one; whether they agree with each other (one holder per
    unique value, references to existing documents, claims, counters, tokens) is what
    ``check`` read of the restored keyspace: a file that disagrees with itself exits 1."""
    problems = report.problems
    if not problems:
        return OK
    for problem in problems[:SHOWN_PROBLEMS]:
        print(f"  {problem.kind} {problem.key}: {problem.detail}", file=sys.stderr)
    print(
        f"restore: the file's records disagree with each other ({len(problems)} problems"
        f"{', first shown' if len(problems) > SHOWN_PROBLEMS else ''}); the data is served as "
        "restored: run `multiframe-admin check --repair` for what can be repaired, or restore "
        "another backup",
        file=sys.stderr,
    )
    return PROBLEMS


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
            feed_key = ks.schema.names.changes_key()  # feed.restart begins it anew below
            async for found in key_batches(ks.client, ks.schema, undecodable):
                found = [key for key in found if key != feed_key]
                if found:
                    progress.advance(await ks.client.unlink(*found))
            if undecodable:
                progress.advance(await ks.client.unlink(*set(undecodable)))
    # The data the feed described is gone or replaced: consumers resuming must re-read.
    await feed.restart(ks.client, ks.schema.names.changes_key())
    with Progress("restore", total=total) as progress:
        batch: list[Record] = []
        size = 0
        for record, length in records(args.file, ks.schema):
            if never_restored(ks.schema.names, record["k"]):
                skipped += 1
            elif not operator_user and _operator_token(ks.schema.names, record):
                operator += 1
            else:
                batch.append(record)
                size += length
            if len(batch) >= WRITE_BATCH or size >= WRITE_BYTES:
                expired += await _flush(ks.client, ks.schema, batch, counts)
                batch, size = [], 0
            progress.advance()
        expired += await _flush(ks.client, ks.schema, batch, counts)
    kinds = f"{kinds_of(counts)}; {expired} expired, not restored"
    kinds += f"; {operator} operator-token keys left out"
    if counts["normalized"]:
        kinds += f"; {counts['normalized']} documents rewritten in the form the service stores"
    if skipped:
        kinds += f"; {skipped} derived keys left out (rebuilt)"
    return f"{progress.summary('keys')} ({kinds})"
