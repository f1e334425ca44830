"""The Lua scripts, registered once and called by SHA as typed methods.

Each is registered with redis-py's ``register_script``; a server that restarted
empty (or ran SCRIPT FLUSH) needs nothing from us, since a NOSCRIPT reply loads the
script and runs it again (it did not run). redis-py's own script call path adds
~14 µs of client CPU to every call and its pool ~18 µs more (docs/profiling.md), so
EVALSHA goes out directly, on a connection leased from ``keyspace.connect``'s pool.

Scripts that write documents are sent once. The client retries a command after a
timeout or a dropped connection, and a commit whose reply was lost may have run: run
again, a create would be stored twice. Such a failure reaches the caller instead (the
API answers 503; the write may or may not have happened).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError

from .connection import Pool
from .errors import Paused
from .plan import Arg, Plan


def _source(name: str) -> str:
    return resources.files("keyspace").joinpath("lua", name).read_text(encoding="utf-8")


def _as_function(name: str, source: str) -> str:
    # A script's KEYS and ARGV become the function's parameters: the file runs unchanged.
    return f"local function {name}(KEYS, ARGV)\n{source}\nend\n"


def authorized_commit_source() -> str:
    """authorize.lua and commit.lua as functions, then ``authorized_commit.lua`` calling both."""
    return (
        _as_function("authorize", _source("authorize.lua"))
        + _as_function("commit", _source("commit.lua"))
        + _source("authorized_commit.lua")
    )


@dataclass(frozen=True)
class CommitResult:
    """Outcome of one plan: the returned document, or which check failed."""

    raw: bytes | None = None
    error: str | None = None
    field: str = ""
    value: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


PAUSED = (
    "the keyspace is paused while a command rewrites it (restore, reset); nothing was "
    "written: retry later. A pause left by a killed command is cleared by an operator with "
    "`multiframe-admin resume`"
)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _commit_result(reply: list[bytes]) -> CommitResult:
    status = _text(reply[0])
    if status == "ok":
        return CommitResult(raw=reply[1] or None)
    if status == "err" and _text(reply[1]) == "bad_plan":
        raise RuntimeError(f"commit.lua rejected a malformed plan: {reply!r}")
    if status == "err" and _text(reply[1]) == "paused":
        raise Paused(PAUSED)
    return CommitResult(error=_text(reply[1]), field=_text(reply[2]), value=_text(reply[3]))


async def _round_trip(connection: AbstractConnection, args: tuple[Arg, ...]) -> Any:
    await connection.send_command("EVALSHA", *args)
    return await connection.read_response()


async def _exchange(connection: AbstractConnection, args: tuple[Arg, ...], retry: bool) -> Any:
    """EVALSHA on ``connection``; ``retry`` applies the client's retry policy."""
    if not retry:
        # An error or a cancel while sending or reading disconnects the connection
        # (redis-py), so a late reply can never be read as another command's.
        return await _round_trip(connection, args)
    return await connection.retry.call_with_retry(
        lambda: _round_trip(connection, args), lambda _: connection.disconnect()
    )


AuthReply = list[bytes | int]
"""authorize.lua's reply: status, user id, role, limit, remaining, reset and retry-after."""


class Scripts:
    """Typed wrappers around ``lua/*.lua`` for one client."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self._commit = client.register_script(_source("commit.lua"))
        self._authorize = client.register_script(_source("authorize.lua"))
        self._chip_metrics = client.register_script(_source("chip_metrics.lua"))
        self._authorized_commit = client.register_script(authorized_commit_source())
        self._lock = client.register_script(_source("lock.lua"))
        self._oplog = client.register_script(_source("oplog.lua"))
        self._cache = client.register_script(_source("cache.lua"))
        self._profile = client.register_script(_source("profile.lua"))

    async def _run(
        self, script: AsyncScript, keys: list[str], args: list[Arg], *, retry: bool
    ) -> Any:
        """EVALSHA. ``retry`` (for scripts that may safely run twice) applies the client's
        retry policy; otherwise the script is sent at most once. A NOSCRIPT reply (the
        server lost its scripts) loads the script and sends it again: it did not run."""
        try:
            return await self._send(script.sha, len(keys), *keys, *args, retry=retry)
        except NoScriptError:
            await self.client.script_load(script.script)
            return await self._send(script.sha, len(keys), *keys, *args, retry=retry)

    async def _send(self, *args: Arg, retry: bool) -> Any:
        # One pooled connection, as execute_command uses, without its per-call layers
        # (argument filtering, metrics, option parsing) and, from keyspace.connect's
        # pool, without the pool's own (docs/profiling.md).
        pool = self.client.connection_pool
        if isinstance(pool, Pool):
            leased = await pool.lease()
            try:
                return await _exchange(leased, args, retry)
            finally:
                await pool.give_back(leased)
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            return await _exchange(connection, args, retry)
        finally:
            await pool.release(connection)

    async def commit(self, plan: Plan) -> CommitResult:
        """Apply ``plan`` atomically (``commit.lua``); Paused while the keyspace is paused."""
        return _commit_result(await self._run(self._commit, plan.keys, plan.args(), retry=False))

    async def commit_batch(self, plans: Sequence[Plan]) -> list[CommitResult]:
        """Apply each of ``plans`` atomically, all sent in one pipeline (bulk loading); the
        results in order. Each plan is its own commit: a refused one does not stop the rest.
        Paused (after the batch) when any met the pause."""
        # EVALSHA in a pipeline cannot recover from NOSCRIPT: load the script first.
        await self.client.script_load(self._commit.script)
        async with self.client.pipeline(transaction=False) as pipe:
            for plan in plans:
                pipe.evalsha(self._commit.sha, len(plan.keys), *plan.keys, *plan.args())
            replies = await pipe.execute()
        return [_commit_result(reply) for reply in replies]

    async def authorize(self, keys: list[str], args: list[Arg]) -> AuthReply:
        """Token, maintenance and rate-limit check (``authorize.lua``)."""
        reply: AuthReply = await self._run(self._authorize, keys, args, retry=True)
        return reply

    async def authorized_commit(
        self, keys: list[str], args: list[Arg], allowed: str, window: int, plan: Plan
    ) -> tuple[AuthReply, CommitResult | None]:
        """``authorize`` and, when it allows the request and the caller is an admin or
        ``allowed``, ``commit`` in one trip (``authorized_commit.lua``). The result is
        None when the plan did not run; its error is ``forbidden`` for another caller.
        For a non-admin the plan runs with ``window`` as its import window."""
        reply = await self._run(
            self._authorized_commit,
            [*keys, *plan.keys],
            [len(args), *args, allowed, window, *plan.args()],
            retry=False,
        )
        decision: AuthReply = reply[0]
        return decision, _commit_result(reply[1]) if reply[1] else None

    async def set_chip_metrics(
        self, key: str, pause: str, path: str, metrics: bytes, empty: bytes
    ) -> bytes:
        """Write one chip's entry of the analytics document (``chip_metrics.lua``); it sets
        a value, so running it twice is harmless and it keeps the client's retries.
        Paused while the keyspace is paused."""
        try:
            reply: bytes = await self._run(
                self._chip_metrics, [key, pause], [path, metrics, empty], retry=True
            )
        except ResponseError as exc:
            if str(exc).startswith("PAUSED"):
                raise Paused(PAUSED) from None
            raise
        return reply

    async def lock(self, keys: list[str], args: list[Arg], *, retry: bool) -> list[Any]:
        """One call of ``lock.lua`` (keyspace.locks builds the keys and arguments); ``retry``
        for the calls that may safely run twice (read, refresh). Paused while paused."""
        return _unpaused(await self._run(self._lock, keys, args, retry=retry))

    async def oplog(self, keys: list[str], args: list[Arg], *, retry: bool) -> list[Any]:
        """One call of ``oplog.lua`` (keyspace.oplog builds the keys and arguments); ``retry``
        for reads only: an append run twice would append twice. Paused while paused."""
        return _unpaused(await self._run(self._oplog, keys, args, retry=retry))

    async def cache(self, keys: list[str], args: list[Arg]) -> list[Any]:
        """One call of ``cache.lua`` (keyspace.cache builds the keys and arguments): a read,
        or a store that is harmless twice, so it keeps the client's retries. Paused while
        paused."""
        return _unpaused(await self._run(self._cache, keys, args, retry=True))

    async def profile(self, keys: list[str], args: list[Arg]) -> list[Any]:
        """One call of ``profile.lua`` (keyspace.profiles builds the keys and arguments): a
        read, or a store that is harmless twice. Paused while paused."""
        return _unpaused(await self._run(self._profile, keys, args, retry=True))


def _unpaused(reply: list[Any]) -> list[Any]:
    if _text(reply[0]) == "paused":
        raise Paused(PAUSED)
    return reply
