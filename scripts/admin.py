"""``load-demo``, ``reindex`` and ``reset``: small commands over the keyspace."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path

import orjson
from redis.exceptions import ResponseError

from keyspace import Keyspace, NotFound, demo, feed, search
from keyspace.capabilities import probe
from keyspace.connection import call
from keyspace.inventory import service_keys
from keyspace.schema import EntitySpec

from .args import positive_seconds
from .exits import OK, PROBLEMS, Refused
from .locks import Lock, settled
from .pause import paused
from .progress import Progress


def demo_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--file",
        type=Path,
        default=None,
        help="demo data file (default demo_data/<system>/demo.json)",
    )


async def load_demo(args: argparse.Namespace, ks: Keyspace) -> int:
    """Create every demo record through the keyspace; records already present are left alone."""
    path = args.file or demo.demo_file(args.system)
    with Progress("load-demo") as progress:
        loaded = await demo.load(ks, orjson.loads(path.read_bytes()), progress.advance)
    print(
        f"load-demo: {loaded.created} created, {loaded.present} already present, "
        f"{len(loaded.differing)} differing"
    )
    for key in loaded.differing:
        print(f"  left as is (differs from the demo record): {key}")
    return OK if not loaded.differing else PROBLEMS


def reindex_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout", type=positive_seconds, default=3600.0, help="seconds to wait per index"
    )


async def reindex(args: argparse.Namespace, ks: Keyspace) -> int:
    """Build a fresh version of every index beside the live one; switch each alias once built.

    Queries keep using the old version until the switch, so they never see a
    half-built index; the old version is dropped (its documents are kept). One run at
    a time (``locks.Lock``); a half-built version is dropped again when the run fails or
    is interrupted, so it never keeps indexing every write.
    """
    if not ks.capabilities.search:
        raise Refused("this server has no RediSearch; there is no index to rebuild")
    lock = Lock(ks, "reindex")
    await lock.take()
    try:
        for spec in ks.schema.entities:
            if (code := await _reindex_one(args, ks, spec, lock)) != OK:
                return code
        return OK
    finally:
        await settled(lock.release)


async def _reindex_one(args: argparse.Namespace, ks: Keyspace, spec: EntitySpec, lock: Lock) -> int:
    fixed = await ks.reproject(spec)
    if fixed.changed:
        print(f"reindex {spec.collection}: {fixed.changed} search projection(s) rewritten")
    name = search.rebuild_name(spec)
    try:
        await search.rebuild(ks.client, spec, name)
        problem = await _wait_built(args, ks, spec, name, lock)
    except BaseException:  # Ctrl-C (a cancel), a lost connection, ...: drop what was begun
        await settled(lambda: _drop(ks, name))
        print(f"reindex {spec.collection}: stopped; dropped the unfinished {name}, old index kept")
        raise
    if problem:
        await _drop(ks, name)
        print(f"reindex {spec.collection}: {problem}; old index kept")
        return PROBLEMS
    info = search.parse_info(await call(ks.client, "FT.INFO", name))
    # Not cut short by Ctrl-C: the alias moves and the old versions go, or neither.
    dropped = await settled(lambda: search.switch(ks.client, spec, name))
    print(
        f"reindex {spec.collection}: now {name} ({info.get('num_docs', b'?')!r} documents), "
        f"dropped {len(dropped)} old version(s)"
    )
    return OK


async def _wait_built(
    args: argparse.Namespace, ks: Keyspace, spec: EntitySpec, name: str, lock: Lock
) -> str:
    """Wait until ``name`` is built, with progress; "" when built, else why not."""
    with Progress(f"reindex {spec.collection}", total=100) as progress:
        while True:
            info = search.parse_info(await call(ks.client, "FT.INFO", name))
            done = int(float(info.get("percent_indexed", 1)) * 100)
            progress.advance(done - progress.done)
            if not search.is_building(info):
                return ""
            if progress.elapsed > args.timeout:
                return f"not built in {args.timeout}s"
            if not await lock.renew():
                return f"lost the lock {lock.key} (it expired or was deleted)"
            await asyncio.sleep(0.1)


async def _drop(ks: Keyspace, name: str) -> None:
    try:
        await call(ks.client, "FT.DROPINDEX", name)  # the documents are kept
    except ResponseError as exc:
        if "unknown index" not in str(exc).lower() and "no such index" not in str(exc).lower():
            raise


def reset_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--yes-really",
        action="store_true",
        required=True,
        help="required: deletes every document, counter and service key",
    )
    parser.set_defaults(setup=False)  # a reset left half-way must be able to run again


def clear_args(parser: argparse.ArgumentParser) -> None:
    """``clear --force``: the seed's name of ``reset``, ``--force`` for ``--yes-really``."""
    parser.add_argument(
        "--force",
        action="store_true",
        required=True,
        help="required: deletes every document, counter and service key",
    )
    parser.set_defaults(setup=False)


async def reset(args: argparse.Namespace, ks: Keyspace) -> int:
    """Delete every service key and index, then recreate the defaults (development only).
    The service is paused meanwhile (scripts/pause.py); the pause itself is kept."""
    async with paused(ks, "reset") as pause:
        # Read under the pause: no one can switch the mode between this check and the wipe.
        # A config already wiped (by a reset stopped half-way) no longer protects anything;
        # a system without MultiFrame's config:system has no mode to protect it.
        mode = None
        with contextlib.suppress(NotFound):
            mode = (await ks.get_settings()).doc["system"]["mode"]
        if mode == "production":
            where = ks.settings_spec.key
            route = "/api/config/system" if ks.settings_spec.name == "config" else "/api/settings"
            raise Refused(
                f"{where} system.mode is 'production'; set it to 'development' first "
                f"(PATCH {route}) if you really mean to wipe this keyspace"
            )
        pause.writing = True
        deleted = await _wipe(ks)
        await feed.restart(ks.client, ks.schema.names.changes_key())
    await ks.setup()
    print(f"reset: deleted {deleted} keys; defaults and indexes recreated")
    return OK


async def _wipe(ks: Keyspace) -> int:
    """Unlink every service key but the pause and the change feed (feed.restart begins it
    anew, past every id it gave), and drop every index of the service."""
    deleted = 0
    kept = {ks.schema.names.pause_key().encode(), ks.schema.names.changes_key().encode()}
    with Progress("reset") as progress:
        batch: list[bytes] = []
        async for key in service_keys(ks.client, ks.schema):
            if key in kept:
                continue
            batch.append(key)
            if len(batch) >= 500:
                deleted += await ks.client.unlink(*batch)
                progress.advance(len(batch))
                batch = []
        if batch:
            deleted += await ks.client.unlink(*batch)
            progress.advance(len(batch))
    if (await probe(ks.client, ks.schema.names.probe_key())).search:
        for name in await search.list_indexes(ks.client):
            if name.startswith(ks.schema.names.reserved + "idx:"):
                await call(ks.client, "FT.DROPINDEX", name)
    return deleted
