"""``multiframe-admin``: one CLI for operations on the keyspace.

Exit codes scripts can trust: 0 done, 1 finished but found problems (``check``)
or failed, 2 bad usage, 3 refused (non-empty target without ``--replace``,
production reset), 75 try again later (another command holds the pause, the reindex
or the migrate lock: wait, or ``resume`` a pause whose command is gone; ``check`` and
``health`` while indexes are still building), 130 interrupted by Ctrl-C (no document is
half-written: every write is its own atomic commit; re-running the command finishes the
job).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from redis.exceptions import BusyLoadingError, NoPermissionError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from keyspace import Durability, Keyspace, connect, systems
from keyspace.capabilities import probe
from keyspace.changes import ChangeCap
from keyspace.errors import Contention, Held, NoAccess, NotDurable, Paused
from keyspace.keyring import KeyringError, configured
from keyspace.server import EmbeddedRedis, EmbeddedRedisError
from keyspace.system import System, parse_ttls

from . import (
    admin,
    backup,
    check,
    encrypt,
    generate,
    ha,
    legacy,
    migrate,
    pause,
    quarantine,
    restore,
)
from .args import default_data_dir, redis_url
from .exits import BUSY, INTERRUPTED, PROBLEMS, REFUSED, USAGE, Busy, Refused, Stopped

URL_FILE = "redis.url"

Command = Callable[[argparse.Namespace, Keyspace], Awaitable[int]]


# The service's supervisor restarts a dead embedded server within about a second, which then
# loads its data: meanwhile redis.url is not stale, and starting a second server on the same
# directory would fight the supervisor for it.
DOWN_GRACE_S, LOADING_WAIT_S = 5.0, 600.0


async def _serving(url: str) -> bool:
    """Whether the server ``url`` names answers: waited for while it loads its data, and for
    DOWN_GRACE_S while it does not answer at all (a supervised restart)."""
    started, said = time.monotonic(), ""
    while True:
        probe = connect(url, timeout=1.0)
        try:
            await probe.ping()
            return True
        except BusyLoadingError:
            state, limit = "is loading its data", LOADING_WAIT_S
        except (RedisError, OSError):
            state, limit = "does not answer (restarting?)", DOWN_GRACE_S
        finally:
            await probe.aclose()
        if time.monotonic() - started > limit:
            return False
        if state != said:
            print(f"the server in {URL_FILE} {state}; waiting", file=sys.stderr, flush=True)
            said = state
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def open_keyspace(
    url: str | None,
    data_dir: Path,
    *,
    setup: bool = True,
    system: System | None = None,
    durability: Durability | None = None,
    key: bytes | None = None,
    changes_cap: ChangeCap | None = None,
) -> AsyncIterator[Keyspace]:
    """The keyspace of ``system`` (default MultiFrame) on ``url``; else on the running
    ``make run`` server; else on an embedded server started here on ``data_dir`` (stopped
    again afterwards). ``durability``: its commits wait for replicas as the service's do;
    ``changes_cap``: they trim the change feed as the service's do."""
    system = system or systems.load()
    embedded: EmbeddedRedis | None = None
    recorded = data_dir / URL_FILE
    if url is None and recorded.exists():
        url = recorded.read_text().strip()
        if not await _serving(url):
            url = None  # stale file from a server that is gone
    if url is None:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before any I/O
        embedded = EmbeddedRedis(data_dir, schema=system.schema)
        url = embedded.start()
    client = connect(url)
    try:
        ks = Keyspace(client, system.schema, durability=durability, changes_cap=changes_cap)
        if setup:
            await ks.setup(index_timeout=600)
        # Sensitive fields (docs/encryption.md): what a command writes is sealed, and a missing
        # or wrong key is refused before its first write. One that must see the server
        # untouched (restore, check) makes no keyring: it writes the stored forms it reads.
        if not setup:  # a user without the system's keys is told so first, as setup does
            await probe(client, system.schema.names.probe_key())
        try:
            await ks.unlock(key, create=setup)
        except KeyringError as exc:
            raise Refused(str(exc)) from None
        yield ks
    finally:
        try:
            await client.aclose()  # a repeated Ctrl-C may cancel this too
        finally:
            if embedded is not None:
                embedded.stop()  # synchronous: no cancel skips it, so no server is left behind


def _commands() -> dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Command]]:
    return {
        "load-demo": (
            "load demo_data/ through the keyspace (idempotent)",
            admin.demo_args,
            admin.load_demo,
        ),
        "generate": (
            "generate realistic data at scale, deterministically",
            generate.add_args,
            generate.run,
        ),
        "backup": (
            "write a checksummed backup of the whole keyspace",
            backup.backup_args,
            backup.backup,
        ),
        "restore": (
            "restore a backup (refuses a non-empty server without --replace)",
            restore.restore_args,
            restore.restore,
        ),
        "import-legacy": ("convert a MultiFrame 11.0 string keyspace", legacy.add_args, legacy.run),
        "quarantine": (
            "list, show, restore or drop legacy records import-legacy could not convert",
            quarantine.add_args,
            quarantine.run,
        ),
        "check": ("report (and --repair) integrity problems", check.add_args, check.run),
        "reindex": (
            "build new index versions and switch aliases when complete",
            admin.reindex_args,
            admin.reindex,
        ),
        "reset": ("delete every service key (development only)", admin.reset_args, admin.reset),
        "resume": (
            "clear the pause left by a restore or reset that was killed or stopped half-way",
            pause.resume_args,
            pause.resume,
        ),
        # The seed's manage_db verbs (docs/migrations.md): new commands, or existing ones
        # under the seed's name.
        "migrate": (
            "apply the pending migrations in version order (--to VERSION: up to it)",
            migrate.migrate_args,
            migrate.run_migrate,
        ),
        "status": (
            "list applied migrations (with time) and pending ones",
            migrate.status_args,
            migrate.run_status,
        ),
        "validate": (
            "the integrity check (= check; --verbose lists every problem)",
            check.validate_args,
            check.run,
        ),
        "seed": ("load the demo data (= load-demo)", admin.demo_args, admin.load_demo),
        "clear": (
            "delete every service key (= reset; refused in production mode)",
            admin.clear_args,
            admin.reset,
        ),
        "health": (
            "server reachable, modules, indexes ready, no pending migration",
            migrate.health_args,
            migrate.run_health,
        ),
        "encrypt": (
            "seal every plaintext sensitive field under the configured key (resumable)",
            encrypt.encrypt_args,
            encrypt.run_encrypt,
        ),
        "rotate-key": (
            "re-seal every sensitive field under a new key while the service runs",
            encrypt.rotate_args,
            encrypt.run_rotate,
        ),
    }


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="multiframe-admin",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument(
        "--redis-url",
        type=redis_url,
        default=os.environ.get("REDIS_URL") or None,
        help="server to work on (default: REDIS_URL, else the running embedded server, "
        "else an embedded server started on --data-dir)",
    )
    top.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        help="embedded server data directory (MULTIFRAME_DATA_DIR, default var/redis)",
    )
    top.add_argument(
        "--system",
        default=os.environ.get("MULTIFRAME_SYSTEM") or systems.DEFAULT,
        choices=systems.names(),
        help="the system whose keys to work on (MULTIFRAME_SYSTEM, default multiframe); "
        "MULTIFRAME_NAMESPACE moves its keys as for the service",
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_args, func) in _commands().items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        add_args(cmd)
        cmd.set_defaults(func=func)
    ha.add_args(sub.add_parser("ha", help=ha.HELP, description=ha.HELP))  # no keyspace (direct)
    return top


def _prepare(argv: list[str]) -> argparse.Namespace | int:
    """The parsed arguments with their system loaded, or the exit code of a usage error."""
    top = parser()
    args = top.parse_args(argv)
    if (usage := getattr(args, "usage", None)) is not None and (problem := usage(args)):
        top.error(problem)  # exits 2, as argparse does for every usage error
    try:
        # The service's TTLs, so documents the CLI writes (load-demo) expire as the API's do.
        ttls = parse_ttls(os.environ.get("MULTIFRAME_TTL_SECONDS", ""))
        system = systems.load(args.system, os.environ.get("MULTIFRAME_NAMESPACE"), ttls)
    except ValueError as exc:
        print(f"error: MULTIFRAME_NAMESPACE / MULTIFRAME_TTL_SECONDS: {exc}", file=sys.stderr)
        return USAGE
    try:
        # The service's durability: a commit of a command is confirmed as the API's are.
        args.durability = Durability.from_env(os.environ)
        # The service's feed cap: a command's commits trim the change feed as the API's do.
        args.changes_cap = ChangeCap.from_env(os.environ)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE
    try:
        args.encryption_key = configured(os.environ)  # docs/encryption.md
    except KeyringError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE
    args.system = system
    return args


def _direct(args: argparse.Namespace) -> Callable[[argparse.Namespace], int] | None:
    """The synchronous function of a command that needs no keyspace (``ha``), else None."""
    direct: Callable[[argparse.Namespace], int] | None = getattr(args, "direct", None)
    return direct


async def run_cli(argv: list[str]) -> int:
    """Run one command in the current event loop and return its exit code (tests use this)."""
    args = _prepare(argv)
    if isinstance(args, int):
        return args
    if (direct := _direct(args)) is not None:
        return direct(args)
    return await _run(args)


async def _run(args: argparse.Namespace) -> int:
    try:
        # A command that must see the server untouched (restore) sets ``setup=False``.
        async with open_keyspace(
            args.redis_url,
            args.data_dir,
            setup=getattr(args, "setup", True),
            system=args.system,
            durability=args.durability,
            key=args.encryption_key,
            changes_cap=args.changes_cap,
        ) as ks:
            code: int = await args.func(args, ks)
            return code
    except Refused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return REFUSED
    except (Busy, Held) as exc:
        print(f"busy: {exc}", file=sys.stderr)
        return BUSY
    except Paused as exc:  # a write of this command met another command's pause
        print(f"busy: {exc}", file=sys.stderr)
        return BUSY
    except (Contention, Stopped) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return PROBLEMS
    except NotDurable as exc:  # MULTIFRAME_MIN_REPLICAS: the replicas did not confirm a commit
        print(f"error: {exc}; re-run the command once the replicas are back", file=sys.stderr)
        return PROBLEMS
    except EmbeddedRedisError as exc:
        print(f"error: could not start the embedded Redis: {exc}", file=sys.stderr)
        return PROBLEMS
    except (NoAccess, NoPermissionError) as exc:
        print(
            f"error: {exc}; a running service's redis.url holds its own system's user, so "
            "another system needs --redis-url with a user allowed its keys",
            file=sys.stderr,
        )
        return USAGE
    except (RedisConnectionError, RedisTimeoutError) as exc:
        print(
            f"error: Redis is unreachable ({exc}); check --redis-url / REDIS_URL, "
            "or run the command without them to use the service's own server",
            file=sys.stderr,
        )
        return PROBLEMS
    except ResponseError as exc:  # OOM, a script error: every write sent is whole or absent
        print(
            f"error: Redis refused a command ({type(exc).__name__}: {exc}); what was written "
            "is whole (each write is one atomic commit): fix the cause (for OOM, maxmemory "
            "or free memory), then run `multiframe-admin check`",
            file=sys.stderr,
        )
        return PROBLEMS


RECANCEL_S = 0.05


async def interruptible(work: Coroutine[Any, Any, int]) -> int:
    """Run ``work``; Ctrl-C cancels it and raises KeyboardInterrupt. asyncio.run cancels
    once, and on Python 3.11 redis-py can swallow that cancel (its wait_for returns a reply
    that completed in the same loop turn), so a Ctrl-C was sometimes ignored: cancel again
    until the work ends."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    interrupted = False

    def cancel() -> None:
        nonlocal interrupted
        interrupted = True
        if not task.done():
            task.cancel()
            loop.call_later(RECANCEL_S, cancel)

    loop.add_signal_handler(signal.SIGINT, cancel)
    try:
        return await task
    except asyncio.CancelledError:
        if interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def main(argv: list[str] | None = None) -> int:
    try:
        args = _prepare(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:  # during start-up (imports, the parser): nothing written yet
        print("\ninterrupted before any write", file=sys.stderr)
        return INTERRUPTED
    if isinstance(args, int):
        return args
    if (direct := _direct(args)) is not None:
        try:
            return direct(args)  # outside any event loop: Ctrl-C interrupts it at once
        except KeyboardInterrupt:
            print("\ninterrupted", file=sys.stderr)
            return INTERRUPTED
    try:
        return asyncio.run(interruptible(_run(args)))
    except KeyboardInterrupt:
        print(
            "\ninterrupted: every write already sent is a whole atomic commit; "
            "re-run the command to finish (restore: with --replace; generate: on an empty "
            "keyspace, or with another --seed, since the same seed draws the same unique "
            "values again)",
            file=sys.stderr,
        )
        return INTERRUPTED


if __name__ == "__main__":
    # ``python -m scripts.cli`` runs this file as ``__main__``, a second copy of it; the
    # exceptions it catches live in scripts/exits.py, one module for both copies.
    sys.exit(main())
