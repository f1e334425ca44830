"""The pause: no request and no write while a command rewrites the keyspace wholesale.

``restore`` and ``reset`` take the pause key (:func:`keyspace.keys.pause_key`) with SET NX
before their first write and delete it when done. While it exists ``commit.lua``,
``authorize.lua`` and ``chip_metrics.lua`` refuse everything (the API answers 503
``maintenance`` to everyone, the operator's token included), so a write authorised before
the pause cannot commit after it. The key holds who paused, why and since when; the
command's own wipe leaves it alone.

A command that fails or is interrupted after its first write leaves the pause, marked
``left``: the keyspace is half rewritten, and running the same command again takes it over
and finishes the job. A command killed outright leaves it unmarked; running the command
again takes it over once its process is gone (same host), and ``multiframe-admin resume``
clears it for an operator who decides the data may be served as it is.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import socket
import sys
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import WatchError

from keyspace import Keyspace

from .exits import OK, Busy, Refused


def _holder(raw: bytes | str | None) -> dict[str, Any]:
    try:
        found = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        found = None
    return found if isinstance(found, dict) else {"command": repr(raw)}


def describe(raw: bytes | str | None) -> str:
    """Who holds the pause, for messages."""
    held = _holder(raw)
    text = f"`{held.get('command', '?')}` (pid {held.get('pid', '?')} on {held.get('host', '?')}"
    text += f", since {held.get('since', '?')})"
    if held.get("left"):
        text += f", left paused: {held['left']}"
    return text


def _running(held: dict[str, Any]) -> bool | None:
    """Whether the holder's process still runs; None when it cannot be told (other host)."""
    pid = held.get("pid")
    if held.get("host") != socket.gethostname() or type(pid) is not int or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def abandoned(raw: bytes | str | None) -> bool:
    """A pause no command holds any more: left on purpose, or its process is gone."""
    held = _holder(raw)
    return bool(held.get("left")) or _running(held) is False


async def swap(client: Redis, key: str, old: bytes | str, new: bytes | None) -> bool:
    """Replace (``new`` None: delete) the pause ``key`` only while it still holds ``old``."""
    async with client.pipeline(transaction=True) as pipe:
        try:
            await pipe.watch(key)
            if await pipe.get(key) != old:
                return False
            pipe.multi()  # type: ignore[no-untyped-call]
            if new is None:
                pipe.delete(key)
            else:
                pipe.set(key, new)
            await pipe.execute()
        except WatchError:
            return False
    return True


class Pause:
    """One command's hold on the pause key; :func:`paused` takes and ends it."""

    def __init__(self, ks: Keyspace, command: str) -> None:
        self.client, self.command = ks.client, command
        self.key = ks.schema.names.pause_key()
        self.value = orjson.dumps(self._fields())
        # Set by the command before its first write (or by take, over a left pause): a
        # failure then leaves the pause, since the keyspace is half rewritten.
        self.writing = False

    def _fields(self, **more: str) -> dict[str, Any]:
        return {
            "command": self.command,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
            "nonce": secrets.token_hex(8),
            **more,
        }

    async def take(self) -> None:
        """SET NX, or take over an abandoned pause; Busy while another command holds it."""
        if await self.client.set(self.key, self.value, nx=True):
            return
        current = await self.client.get(self.key)
        if (
            current is not None
            and abandoned(current)
            and await swap(self.client, self.key, current, self.value)
        ):
            print(f"{self.command}: took over the pause of {describe(current)}", file=sys.stderr)
            return
        raise Busy(
            f"the keyspace is paused by {describe(current)}; wait for it to finish. If it is "
            "no longer running, run this command again where it ran, or clear the pause with "
            "`multiframe-admin resume`"
        )

    async def end(self, left: str | None) -> None:
        """Delete our pause, or with ``left`` keep it, marked as left for that reason."""
        marked = None if left is None else orjson.dumps({**_holder(self.value), "left": left})
        await swap(self.client, self.key, self.value, marked)


async def _surely(work: Awaitable[None]) -> None:
    """Finish ``work`` although the caller is being cancelled (Ctrl-C is re-sent until the
    command ends, scripts/cli.py ``interruptible``): a pause must not be left by accident."""
    task = asyncio.ensure_future(work)
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)
    task.result()


@contextlib.asynccontextmanager
async def paused(ks: Keyspace, command: str) -> AsyncIterator[Pause]:
    """Hold the pause for the body; set ``writing`` on the yielded Pause before the first
    write, so a failure after it leaves the pause (the keyspace is half rewritten)."""
    pause = Pause(ks, command)
    await pause.take()
    try:
        yield pause
    except BaseException as exc:
        reason = f"{command} stopped half-way ({type(exc).__name__}); run it again to finish"
        await _surely(pause.end(reason if pause.writing else None))
        if pause.writing:
            print(
                f"\nthe service stays paused: {command} stopped after its first write. "
                f"Run it again to finish (it takes the pause over), or `multiframe-admin "
                "resume` to serve the data as it is",
                file=sys.stderr,
            )
        raise
    await _surely(pause.end(None))


def resume_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``resume [--force]``; the server is not set up (it may be half written)."""
    parser.add_argument(
        "--force",
        action="store_true",
        help="clear the pause even when the command holding it may still be running",
    )
    parser.set_defaults(setup=False)


async def resume(args: argparse.Namespace, ks: Keyspace) -> int:
    """Clear a pause whose command is gone (killed, or stopped half-way)."""
    key = ks.schema.names.pause_key()
    current = await ks.client.get(key)
    if current is None:
        print("resume: the service is not paused")
        return OK
    if not args.force and not abandoned(current):
        running = _running(_holder(current))
        why = "is still running" if running else "may still be running (another host)"
        raise Refused(
            f"the pause is held by {describe(current)}, which {why}; stop it first, or "
            "run `resume --force` if it is gone"
        )
    if not await swap(ks.client, key, current, None):
        raise Refused("the pause changed meanwhile (another command took it); run resume again")
    print(f"resume: cleared the pause of {describe(current)}; requests and writes are served")
    return OK
