"""The Lua scripts, registered once and called by SHA as typed methods.

Each is registered with redis-py's ``register_script``; a server that restarted
empty (or ran SCRIPT FLUSH) needs nothing from us, since a NOSCRIPT reply loads the
script and runs it again (it did not run). redis-py's own script call path adds
~14 µs of client CPU to every call and its pool ~18 µs more (docs/profiling.md), so
EVALSHA goes out directly, on a connection leased from ``keyspace.connect``'s pool
(keyspace.evalsha). The one exception is ``bulk_commit.lua``, whose batches are pipelined
and sent by EVAL: a batch whose calls met NOSCRIPT could not be sent again in its place.

Scripts that write documents are sent once. The client retries a command after a
timeout or a dropped connection, and a commit whose reply was lost may have run: run
again, a create would be stored twice. Such a failure reaches the caller instead (the
API answers 503; the write may or may not have happened).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import idempotency
from .bulk import BULK, PackedBatch, bulk_args, layout
from .changes import ChangeCap
from .durability import Durability, written
from .errors import Paused
from .evalsha import Sent, Wait, give_back, lease, send_pooled
from .lua_sources import (
    authorized_commit_source,
    batch_commit_source,
    bulk_commit_source,
    source,
)
from .pipelining import pipeliner
from .plan import Arg, Plan
from .schema import EntitySpec


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


BATCH_TIMEOUT = 60.0
"""Seconds to wait for each reply of a batch, not the client's socket timeout: one reply
answers for BULK plans, and a loaded host was seen holding one call 2 s (SLOWLOG)."""

APPLIED = CommitResult()


NOSCRIPT_TRIES = 5  # sends of a script meeting NOSCRIPT (each reloads it; it did not run)

AuthReply = list[bytes | int]
"""authorize.lua's reply: status, user id, role, limit, remaining, reset and retry-after."""


def _lua_of(client: Redis) -> None:
    """fakeredis's Lua lacks ``redis.sha1hex``, with which commit.lua names revisions in the
    change feed: a team's own fakeredis client (not only the testing kit's) is given it."""
    if type(client).__module__.partition(".")[0] == "fakeredis":
        from .testing.fakes import give_sha1hex

        give_sha1hex()


class Scripts:
    """Typed wrappers around ``lua/*.lua`` for one client. With ``durability`` on, the
    scripts that write what a client is told about (documents, singletons, tokens, locks,
    operation logs, chip metrics) are followed by WAIT on their connection, and a write the
    replicas did not confirm raises NotDurable (keyspace.durability)."""

    def __init__(
        self,
        client: Redis,
        durability: Durability | None = None,
        changes_cap: ChangeCap | None = None,
    ) -> None:
        _lua_of(client)
        self.client = client
        self.durability = durability or Durability()
        # What every commit that appends to the change feed trims it to (keyspace.changes).
        self.changes_cap = changes_cap or ChangeCap()
        # WAIT needs the connection that wrote: durable writes keep to the pool.
        self._pipeliner = pipeliner(client)
        self._commit = client.register_script(source("commit.lua"))
        self._authorize = client.register_script(source("authorize.lua"))
        self._chip_metrics = client.register_script(source("chip_metrics.lua"))
        self._authorized_commit = client.register_script(authorized_commit_source())
        # Sent by EVAL, body and all, never by EVALSHA (pack_batch says why).
        self._bulk_body = bulk_commit_source()
        self._bulk_commit = client.register_script(self._bulk_body)
        self._batch_commit = client.register_script(batch_commit_source())
        self._lock = client.register_script(source("lock.lua"))
        self._oplog = client.register_script(source("oplog.lua"))
        self._cache = client.register_script(source("cache.lua"))
        self._profile = client.register_script(source("profile.lua"))
        self._rank_walk = client.register_script(source("rank_walk.lua"))
        self._packing: AbstractConnection | None = None

    async def _run(
        self, script: AsyncScript, keys: list[str], args: list[Arg], *, retry: bool, wait: bool
    ) -> Sent:
        """EVALSHA. ``retry`` (for scripts that may safely run twice) applies the client's
        retry policy; otherwise the script is sent at most once. ``wait``: WAIT follows it
        when durability is on. A NOSCRIPT reply (the server lost its scripts) loads the
        script and sends it again: it did not run."""
        after = self.durability.wait if wait else None
        for _ in range(NOSCRIPT_TRIES - 1):
            try:
                return await self._send(
                    script.sha, len(keys), *keys, *args, retry=retry, wait=after
                )
            except NoScriptError:  # another SCRIPT FLUSH may come between the load and the send
                await self.client.script_load(script.script)
        return await self._send(script.sha, len(keys), *keys, *args, retry=retry, wait=after)

    async def _send(self, *args: Arg, retry: bool, wait: Wait) -> Sent:
        if wait is None and self._pipeliner is not None:
            try:
                return Sent(await self._pipeliner.execute("EVALSHA", *args))
            except (RedisConnectionError, RedisTimeoutError):
                if not retry:
                    raise  # it may have run: sent once
            # A script that may run twice gets the pool's retry policy (backoff, reconnect).
        return await send_pooled(self.client, *args, retry=retry, wait=wait)

    def _confirm(self, sent: Sent, wrote: bool, about: Callable[[], Mapping[str, Any]]) -> None:
        """NotDurable when the script ``wrote`` and fewer replicas than required confirmed
        it; ``about()`` names what was written."""
        if wrote and sent.confirmed is not None and sent.confirmed < self.durability.replicas:
            raise self.durability.unconfirmed(sent.confirmed, about())

    async def commit(
        self,
        plan: Plan,
        *,
        spec: EntitySpec | None = None,
        doc_id: str | None = None,
        durable: bool = True,
    ) -> CommitResult:
        """Apply ``plan`` atomically (``commit.lua``); Paused while the keyspace is paused.
        NotDurable (naming ``spec``'s document ``doc_id``, else the one returned) when it wrote
        and the replicas did not confirm it; ``durable=False`` for bookkeeping no client is
        told about (a delete's fence). A durable commit carries the Idempotency-Key claim of
        the request making it, if any (keyspace.idempotency)."""
        plan = idempotency.attach(plan) if durable else plan
        args = plan.args(self.changes_cap)
        sent = await self._run(self._commit, plan.keys, args, retry=False, wait=durable)
        result = _commit_result(sent.reply)
        if durable:
            idempotency.carried(result.ok, result.error, result.value)
        self._confirm(sent, result.ok, lambda: written(result.raw, spec, doc_id))
        return result

    async def commit_batch(self, plans: Sequence[Plan]) -> list[CommitResult]:
        """Apply each of ``plans`` atomically, all sent in one pipeline (bulk loading); the
        results in order, without documents (``raw`` None). Each plan is its own commit: a
        refused one does not stop the rest. Paused (after the batch) when any met the pause;
        NotDurable when the replicas did not confirm the batch."""
        return await (await self.send_batch(plans))

    async def send_batch(self, plans: Sequence[Plan]) -> Awaitable[list[CommitResult]]:
        """:meth:`commit_batch` in two steps: returns once the batch is written to the
        server, with what reads its results, so that the caller prepares its next batch
        while the server applies this one. Await what it returns: the connection stays
        leased until its replies are read. A batch sent while another's replies are unread
        goes on another connection and may interleave with it: send a batch whose plans
        refer to another's documents once that one's results are read (generate does)."""
        return await self.send_packed(await self.pack_batch(plans))

    async def pack_batch(self, plans: Sequence[Plan]) -> PackedBatch:
        """The bytes :meth:`send_packed` writes for ``plans``: the client's work of a batch
        (~10 us a plan), done while another batch is in flight, where it would otherwise
        leave the server idle between batches. The event loop turns between bulk calls, so
        a batch being written meanwhile keeps moving to the socket."""
        commands: list[tuple[Arg, ...]] = []
        packed: list[bytes] = []
        # EVAL, not EVALSHA: a SCRIPT FLUSH between a batch's send and its reply left some
        # calls refused NOSCRIPT, to be sent again after the next batch already ran on the
        # line, whose documents referring to theirs were then refused (review 30). The
        # body (~28 kB a call of 100 plans) costs the server well under 1 us a plan.
        body = self._bulk_body
        for first in range(0, len(plans), BULK):
            command = ("EVAL", body, *bulk_args(plans[first : first + BULK], self.changes_cap))
            commands.append(command)
            packed += self._packer().pack_command(*command)
            await asyncio.sleep(0)
        wait = self.durability.wait
        if wait is not None:
            commands.append(wait)
            packed += self._packer().pack_command(*wait)
        return PackedBatch(commands, packed, len(plans), wait is not None)

    async def send_packed(
        self, batch: PackedBatch, line: AbstractConnection | None = None
    ) -> Awaitable[list[CommitResult]]:
        """Write ``batch`` (:meth:`pack_batch`); returns what reads its results, as
        :meth:`send_batch` does. On a leased connection of its own, or on ``line``
        (:meth:`bulk_line`), where batches written back to back run in that order: await
        each one's results in the order they were written."""
        if line is not None and not line.is_connected:
            # redis-py would connect it again, silently: a batch written there would be read
            # as the reply of one written before the loss.
            raise RedisConnectionError("the bulk line was lost; its batches were not all read")
        connection = line or await lease(self.client)
        try:
            # A failed or cancelled send disconnects it (redis-py): nothing half-sent stays.
            # No health check on a line: its PING would read an earlier batch's reply.
            await connection.send_packed_command(batch.packed, check_health=line is None)
        except BaseException:
            if line is None:
                await give_back(self.client, connection)
            raise
        return self._batch_results(connection, batch, owned=line is None)

    @asynccontextmanager
    async def bulk_line(self) -> AsyncIterator[AbstractConnection]:
        """A connection of its own (outside the pool, whose connections the caller may still
        need, a pool of one included) for :meth:`send_packed`'s ``line``; disconnected on
        exit, so no reply left unread by an error or a cancel is read by anyone."""
        connection: AbstractConnection = self.client.connection_pool.make_connection()  # type: ignore[no-untyped-call]
        try:
            await connection.connect()  # type: ignore[no-untyped-call]
            yield connection
        finally:
            await connection.disconnect()

    def _packer(self) -> AbstractConnection:
        # A connection object never connected: it only encodes, as the pool's connections
        # would (same encoder, same protocol).
        if self._packing is None:
            self._packing = self.client.connection_pool.make_connection()  # type: ignore[no-untyped-call]
        return self._packing

    async def _batch_results(
        self, connection: AbstractConnection, batch: PackedBatch, *, owned: bool
    ) -> list[CommitResult]:
        n_plans, commands, waited = batch.n_plans, batch.commands, batch.waited
        replies: list[Any] = []
        try:
            for _ in commands:
                try:
                    reply = await connection.read_response(timeout=BATCH_TIMEOUT)
                except ResponseError as exc:  # read whole: the next replies follow it
                    reply = exc
                if reply is None:  # what read_response answers when the timeout passed
                    raise RedisTimeoutError(f"no reply to a batch in {BATCH_TIMEOUT:.0f} s")
                replies.append(reply)
        except BaseException:
            # Replies left unread must never be read as another command's.
            await connection.disconnect()
            raise
        finally:
            if owned:
                await give_back(self.client, connection)
        sent = Sent(None, replies.pop() if waited else None)
        if errors := [r for r in replies if isinstance(r, ResponseError)]:
            raise errors[0]
        results = [APPLIED] * n_plans
        for n, reply in enumerate(replies):
            for at in range(1, len(reply), 4):
                refused = _commit_result([b"err", *reply[at + 1 : at + 4]])
                results[n * BULK + int(reply[at]) - 1] = refused
        written_ok = sum(int(reply[0]) for reply in replies)
        self._confirm(sent, written_ok > 0, lambda: {"commits": written_ok})
        return results

    async def batch_commit(
        self, plans: Sequence[Plan], positions: Sequence[int] | None = None
    ) -> list[CommitResult]:
        """Apply all of ``plans`` or none, in one call (``batch_commit.lua``): the results
        in order, each with its document when all were applied; else each refused plan's
        error, the others without one (nothing was written). Paused while paused;
        NotDurable when it wrote and the replicas did not confirm it. ``positions``: where
        each plan's document stands in the request's answer (default: in order), for the
        outcome an Idempotency-Key claim of the request stores; KeyInFlight when the claim
        was lost."""
        keys, args = layout(plans, self.changes_cap)
        claim = idempotency.current.get()
        if claim is not None and not claim.committed:
            keys.append(claim.key)
            head = idempotency.done_head(claim.fingerprint, 201, "docs")
            args += [claim.held(), head, claim.done_ms]
            args += [n + 1 for n in positions] if positions else range(1, len(plans) + 1)
        sent = await self._run(self._batch_commit, keys, args, retry=False, wait=True)
        status = _text(sent.reply[0])
        if status == "lost":
            idempotency.carried(False, idempotency.LOST, claim.key if claim else "")
        if status == "ok":
            idempotency.carried(True, None, "")
        if status == "broken":
            raise RuntimeError(f"batch_commit.lua refused a plan after a dry run: {sent.reply!r}")
        if status == "ok":
            self._confirm(sent, True, lambda: {"commits": len(plans)})
            return [CommitResult(raw=raw or None) for raw in sent.reply[1:]]
        results = [APPLIED] * len(plans)
        for at in range(1, len(sent.reply), 4):
            refused = _commit_result([b"err", *sent.reply[at + 1 : at + 4]])
            results[int(sent.reply[at]) - 1] = refused
        return results

    async def authorize(self, keys: list[str], args: list[Arg]) -> AuthReply:
        """Token, maintenance and rate-limit check (``authorize.lua``)."""
        reply: AuthReply = (
            await self._run(self._authorize, keys, args, retry=True, wait=False)
        ).reply
        return reply

    async def authorized_commit(
        self,
        keys: list[str],
        args: list[Arg],
        allowed: str,
        window: int,
        plan: Plan,
        *,
        spec: EntitySpec | None = None,
        doc_id: str | None = None,
    ) -> tuple[AuthReply, CommitResult | None]:
        """``authorize`` and, when it allows the request and the caller is an admin or
        ``allowed``, ``commit`` in one trip (``authorized_commit.lua``). The result is
        None when the plan did not run; its error is ``forbidden`` for another caller.
        For a non-admin the plan runs with ``window`` as its import window. NotDurable as
        :meth:`commit`, whose Idempotency-Key claim it carries too."""
        plan = idempotency.attach(plan)
        sent = await self._run(
            self._authorized_commit,
            [*keys, *plan.keys],
            [len(args), *args, allowed, window, *plan.args(self.changes_cap)],
            retry=False,
            wait=True,
        )
        decision: AuthReply = sent.reply[0]
        result = _commit_result(sent.reply[1]) if sent.reply[1] else None
        if result is not None:
            idempotency.carried(result.ok, result.error, result.value)
        wrote = result is not None and result.ok
        self._confirm(sent, wrote, lambda: written(result.raw if result else None, spec, doc_id))
        return decision, result

    async def set_chip_metrics(
        self, key: str, pause: str, path: str, metrics: bytes, empty: bytes
    ) -> bytes:
        """Write one chip's entry of the analytics document (``chip_metrics.lua``); it sets
        a value, so running it twice is harmless and it keeps the client's retries.
        Paused while the keyspace is paused; NotDurable as :meth:`commit`."""
        try:
            sent = await self._run(
                self._chip_metrics, [key, pause], [path, metrics, empty], retry=True, wait=True
            )
        except ResponseError as exc:
            if str(exc).startswith("PAUSED"):
                raise Paused(PAUSED) from None
            raise
        self._confirm(sent, True, lambda: {"key": key, "path": path})
        reply: bytes = sent.reply
        return reply

    async def lock(
        self,
        keys: list[str],
        args: list[Arg],
        *,
        retry: bool,
        writes: bool,
        about: Mapping[str, Any] | None = None,
    ) -> list[Any]:
        """One call of ``lock.lua`` (keyspace.locks builds the keys and arguments); ``retry``
        for the calls that may safely run twice (read, refresh). Paused while paused. A call
        that ``writes`` (acquire, refresh, release) and succeeded is NotDurable, naming
        ``about``, when the replicas did not confirm it."""
        sent = await self._run(self._lock, keys, args, retry=retry, wait=writes)
        reply = _unpaused(sent.reply)
        self._confirm(sent, writes and _text(reply[0]) == "ok", lambda: about or {})
        return reply

    async def oplog(
        self,
        keys: list[str],
        args: list[Arg],
        *,
        retry: bool,
        about: Mapping[str, Any] | None = None,
    ) -> list[Any]:
        """One call of ``oplog.lua`` (keyspace.oplog builds the keys and arguments); ``retry``
        for reads only: an append run twice would append twice. Paused while paused. An
        append (``retry`` False) that succeeded is NotDurable, naming ``about``, when the
        replicas did not confirm it."""
        appends = not retry
        sent = await self._run(self._oplog, keys, args, retry=retry, wait=appends)
        reply = _unpaused(sent.reply)
        self._confirm(sent, appends and _text(reply[0]) == "ok", lambda: about or {})
        return reply

    async def cache(self, keys: list[str], args: list[Arg]) -> list[Any]:
        """One call of ``cache.lua`` (keyspace.cache builds the keys and arguments): a read,
        or a store that is harmless twice, so it keeps the client's retries. Paused while
        paused. Never waits for replicas: a cached answer lost in a failover is computed
        again."""
        return _unpaused((await self._run(self._cache, keys, args, retry=True, wait=False)).reply)

    async def profile(self, keys: list[str], args: list[Arg]) -> list[Any]:
        """One call of ``profile.lua`` (keyspace.profiles builds the keys and arguments): a
        read, or a store that is harmless twice (and, as the cache, never waited for).
        Paused while paused."""
        sent = await self._run(self._profile, keys, args, retry=True, wait=False)
        return _unpaused(sent.reply)

    async def rank_walk(self, client: Redis, key: str, args: list[Arg]) -> list[Any]:
        """One call of ``rank_walk.lua`` (keyspace.ranking builds the arguments) on
        ``client``, the primary (through the keyspace's runner) or a replica: a read, so it
        keeps the client's retries, and is loaded where the server answers NOSCRIPT."""
        if client is self.client:
            return list(
                (await self._run(self._rank_walk, [key], args, retry=True, wait=False)).reply
            )
        reply: list[Any] = await self._rank_walk(keys=[key], args=args, client=client)
        return reply


def _unpaused(reply: list[Any]) -> list[Any]:
    if _text(reply[0]) == "paused":
        raise Paused(PAUSED)
    return reply
