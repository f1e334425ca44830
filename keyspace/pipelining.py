"""Automatic pipelining: the commands of concurrent requests share one write and one read.

A request-per-connection client pays, for every command, a connection lease, a write
system call, an event-loop wake-up for the reply and a read system call, and Redis pays a
read and a write per command too. Under concurrency that is most of what a one-command
request costs the process (docs/profiling.md, "Round 2"). A :class:`Pipeliner` keeps a few
connections and queues each command's bytes; the commands queued during one turn of the
event loop go out on one of them, in writes of up to 16 (Redis starts on the first while
the process queues the rest), and one reader task a connection hands the replies back, in
order, to the futures that wait for them. Redis answers the commands of one
connection in the order it received them, so matching replies to requests is a queue.

Properties the keyspace relies on:

* A command is written at most once. A connection that drops fails every command waiting
  on it with ``ConnectionError`` (those already written may have run: a commit then answers
  503, as on the pool); nothing is resent here. Callers that may safely run twice retry.
* A caller cancelled while waiting leaves its future behind; its reply is read and dropped,
  so the next reply still reaches the right caller (no connection is abandoned mid-reply).
* A server that stops answering for ``timeout`` seconds fails the connection and everything
  waiting on it (TimeoutError), as a socket timeout does on the pool.

Only commands that never block go through it (scripts, JSON.GET): one slow command delays
the replies queued behind it, as it delays every other connection's on a single-threaded
server. WAIT, blocking reads and transactions keep their own pooled connections.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

import hiredis
from redis._parsers.base import BaseParser
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .connection import Pool

Arg = str | bytes | int | float

_READ_SIZE = 1 << 16
# Seconds after a refused opening before a caller waits for another, doubling per refusal.
OPEN_BACKOFF, OPEN_BACKOFF_MOST = 1.0, 30.0
# The most commands one write carries. Without a bound, 32 requests in step send 32 scripts
# in one write and the process idles while Redis runs them all (~9% of the time at 32
# concurrent reads); written 16 at a time, Redis runs the first while the process prepares
# the rest (docs/profiling.md, "Round 6"). The turn's later commands stay on the same line.
_MOST_PER_WRITE = 16


class _Line:
    """One connection and the futures waiting on it, oldest first."""

    def __init__(self, connection: AbstractConnection, loop: asyncio.AbstractEventLoop) -> None:
        self.connection = connection
        self.loop = loop
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.buffer: list[bytes] = []
        self.flush_due = False
        self.closed = False
        self.progress = time.monotonic()  # last reply read, or last write to an idle line
        self.flushed_at = 0.0  # a write not yet followed by a reply (for observe)
        self.reader: asyncio.Task[None] | None = None


class Pipeliner:
    """Sends single commands of concurrent callers together on up to ``width`` connections.

    The connections are made by ``pool`` (its URL, credentials, TLS and handshake) but are
    the pipeliner's own: they never take a connection the pool's other users need, and
    :meth:`close` (called by the pool's ``disconnect``, so by ``client.aclose()``) ends them.
    ``execute(*args)`` returns the raw reply (bytes, ints, lists: RESP2 as hiredis parses
    it) or raises the error reply as redis-py would (NoScriptError, ResponseError...).
    ``observe(seconds)`` is told each round trip: from a write to the first reply after it.
    """

    def __init__(self, pool: Pool, *, timeout: float, width: int = 4) -> None:
        self.pool = pool
        self.timeout = timeout
        self.observe: Callable[[float], None] | None = None
        self.writes = 0  # one per round trip; the benchmarks price requests in them
        self._lines: list[_Line | None] = [None] * width
        self._opening: list[asyncio.Future[_Line] | None] = [None] * width
        self._collecting: _Line | None = None  # the line whose write this loop turn fills
        self._open_again_at = 0.0  # no caller waits for another opening before then
        self._refusals = 0  # openings refused in a row
        self._closes = 0

    async def execute(self, *args: Arg) -> Any:
        line = self._collecting
        if line is None or line.closed or line.loop is not asyncio.get_running_loop():
            # (A loop that ended before its turn's flush left its line collecting: review 36.)
            line = await self._choose()
            if line.closed:  # closed by the server while it opened: fail now, never hang
                raise RedisConnectionError("the connection to Redis was closed")
        future: asyncio.Future[Any] = line.loop.create_future()
        line.buffer.append(hiredis.pack_command(args))  # type: ignore[arg-type]
        line.waiting.append(future)
        if len(line.buffer) >= _MOST_PER_WRITE:
            self._write(line)  # the line still collects the rest of this turn's commands
        elif not line.flush_due:
            line.flush_due = True
            self._collecting = line
            line.loop.call_soon(self._flush, line)
        return await future

    async def _choose(self) -> _Line:
        # The least busy open line; another line while every open one is busy, so that Redis
        # works on one write while the process prepares the next (one line alone would make
        # them take turns).
        loop = asyncio.get_running_loop()
        best: _Line | None = None
        free = -1
        for slot, line in enumerate(self._lines):
            if line is not None and not line.closed and line.loop is not loop:
                _abandon(line)  # a previous event loop's (a test's): unusable here
                self._lines[slot] = None
                line = None
            if line is None or line.closed:
                free = slot if free < 0 else free
            elif best is None or len(line.waiting) < len(best.waiting):
                best = line
        if best is not None and (
            not best.waiting or free < 0 or time.monotonic() < self._open_again_at
        ):
            return best
        try:
            return await self._open(free)
        except (RedisConnectionError, RedisTimeoutError):
            if best is None or best.closed:
                raise
            # Refused (maxclients...): the open line carries it, and no caller waits for
            # another opening until the backoff has passed (review 34: a refused opening takes
            # ~0.5 s of the pool's retries, and every busy turn waited for one).
            return best

    async def _open(self, slot: int) -> _Line:
        # Concurrent callers share one opening: the first caller's, shielded from its cancel.
        # A finished opening is never reused: its line may have closed since.
        opening = self._opening[slot]
        if (
            opening is None
            or opening.done()
            or opening.get_loop() is not asyncio.get_running_loop()
        ):
            opening = self._opening[slot] = asyncio.ensure_future(self._connect(slot, self._closes))
            opening.add_done_callback(self._opened)
        return await asyncio.shield(opening)

    def _opened(self, opening: asyncio.Future[_Line]) -> None:
        # Once per opening, however many callers shared it: each refusal in a row doubles the
        # wait before the next try (OPEN_BACKOFF up to OPEN_BACKOFF_MOST); a success resets it.
        if opening.cancelled():
            return
        error = opening.exception()
        if error is None:  # the server takes connections again: lines may grow at once
            self._refusals, self._open_again_at = 0, 0.0
        elif not isinstance(error, _Closed):
            wait = min(OPEN_BACKOFF * 2**self._refusals, OPEN_BACKOFF_MOST)
            self._refusals += 1
            self._open_again_at = time.monotonic() + wait

    async def _connect(self, slot: int, closes: int) -> _Line:
        # closes: the count of close() calls when the opening was asked for, taken then (not
        # at this coroutine's first step, which a close can precede: review 35).
        connection: AbstractConnection = self.pool.make_connection()  # type: ignore[no-untyped-call]
        try:
            await connection.connect()  # type: ignore[no-untyped-call]  # AUTH, SELECT, TLS: the pool's own handshake
        except (Exception, asyncio.CancelledError):  # refused or cancelled: no socket left
            # Not GeneratorExit (a loop that ended with this pending): nothing may be awaited.
            await connection.disconnect(nowait=True)
            raise
        if closes != self._closes:  # close() ran meanwhile: this line would outlive it
            await connection.disconnect(nowait=True)
            raise _Closed("the client was closed")
        loop = asyncio.get_running_loop()
        line = _Line(connection, loop)
        line.reader = loop.create_task(self._read(line), name="keyspace-pipeliner-reader")
        # A client may outlive the event loop that opened its line (a loop per test): the
        # reader is then let go with its loop (_abandon) and destroyed pending, as intended.
        line.reader._log_destroy_pending = False  # type: ignore[attr-defined]
        loop.call_later(self.timeout / 2, self._watch, line)
        self._lines[slot] = line
        return line

    def _flush(self, line: _Line) -> None:
        # The end of the turn: what the line collected goes out, and the next command
        # chooses a line again.
        line.flush_due = False
        if self._collecting is line:
            self._collecting = None
        self._write(line)

    def _write(self, line: _Line) -> None:
        if line.closed or not line.buffer:
            return
        writer = line.connection._writer
        if writer is None:
            self._fail(line, RedisConnectionError("the connection to Redis was closed"))
            return
        data = b"".join(line.buffer)
        now = time.monotonic()
        if len(line.waiting) == len(line.buffer):
            line.progress = now  # nothing older is outstanding: the wait starts with this write
        if not line.flushed_at:
            line.flushed_at = now
        line.buffer.clear()
        self.writes += 1
        try:
            writer.write(data)
        except Exception as exc:  # a transport closed under us
            self._fail(line, RedisConnectionError(f"writing to Redis failed: {exc}"))

    async def _read(self, line: _Line) -> None:
        # Error replies, nested ones included, become redis-py's classes (NoScriptError...).
        reader = hiredis.Reader(replyError=BaseParser.parse_error)
        stream = line.connection._reader
        try:
            while stream is not None:
                data = await stream.read(_READ_SIZE)
                if not data:
                    raise RedisConnectionError("Connection closed by server.")
                reader.feed(data)
                line.progress = time.monotonic()
                if line.flushed_at and self.observe is not None:
                    self.observe(line.progress - line.flushed_at)
                line.flushed_at = 0.0
                reply = reader.gets()
                while reply is not False:
                    self._deliver(line, reply)
                    reply = reader.gets()
        except asyncio.CancelledError:
            self._fail(line, RedisConnectionError("the connection to Redis was closed"))
            raise
        except Exception as exc:
            error = exc if isinstance(exc, RedisConnectionError) else RedisConnectionError(exc)
            self._fail(line, error)

    def _deliver(self, line: _Line, reply: Any) -> None:
        if not line.waiting:
            self._fail(line, RedisConnectionError("Redis sent a reply nobody asked for"))
            return
        future = line.waiting.popleft()
        if future.done():  # its caller was cancelled: the reply is dropped, the order kept
            return
        # Every error reply, including those redis-py does not class as ResponseError
        # (LOADING is a BusyLoadingError, a ConnectionError): raised, never returned.
        if isinstance(reply, Exception):
            future.set_exception(reply)
        else:
            future.set_result(reply)

    def _watch(self, line: _Line) -> None:
        if line.closed:
            return
        if line.waiting and time.monotonic() - line.progress > self.timeout:
            self._fail(line, RedisTimeoutError("Timeout reading from Redis"))
            return
        line.loop.call_later(self.timeout / 4, self._watch, line)

    def _fail(self, line: _Line, error: Exception) -> None:
        """Close ``line`` and fail everything waiting on it; the next command opens another."""
        if line.closed:
            return
        line.closed = True
        if self._collecting is line:
            self._collecting = None
        while line.waiting:
            future = line.waiting.popleft()
            if not future.done():
                future.set_exception(error)
        line.buffer.clear()
        if line.reader is not None and line.reader is not asyncio.current_task():
            line.reader.cancel()
        _abort(line)

    async def close(self) -> None:
        """Close every line; commands waiting on them fail with ConnectionError."""
        self._closes += 1  # a line opening now is closed as it opens (_connect)
        self._refusals, self._open_again_at = 0, 0.0  # a client used again starts afresh
        self._opening = [None] * len(self._opening)
        for slot, line in enumerate(self._lines):
            self._lines[slot] = None
            if line is None:
                continue
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if line.loop is running:
                self._fail(line, RedisConnectionError("the client was closed"))
                if line.reader is not None:
                    await asyncio.gather(line.reader, return_exceptions=True)
            else:
                _abandon(line)


class _Closed(RedisConnectionError):
    """An opening that finished after :meth:`Pipeliner.close`: no reason to wait before the
    next one."""


def _abort(line: _Line) -> None:
    # Abort, not close: a server that stalls must not hold the close (or anything) up.
    writer = line.connection._writer
    if writer is not None:
        writer.transport.abort()


def _abandon(line: _Line) -> None:
    """Let go of a line of another (perhaps closed) event loop without touching that loop."""
    line.closed = True
    line.waiting.clear()
    line.buffer.clear()
    try:
        _abort(line)
        if line.reader is not None:
            line.reader.cancel()
    except Exception:
        pass


_PIPELINERS: weakref.WeakKeyDictionary[Redis, Pipeliner] = weakref.WeakKeyDictionary()


def attach(client: Redis, *, timeout: float, width: int = 4) -> Pipeliner:
    """Pipeline ``client``'s single commands from now on, on up to ``width`` connections
    (its pool must be a :class:`Pool`)."""
    pool = client.connection_pool
    assert isinstance(pool, Pool), "automatic pipelining needs keyspace.connect's pool"
    pipeliner = _PIPELINERS[client] = Pipeliner(pool, timeout=timeout, width=width)
    pool.on_disconnect = pipeliner.close
    return pipeliner


def pipeliner(client: Redis) -> Pipeliner | None:
    """``client``'s :class:`Pipeliner`, or None (fakeredis, Sentinel, or pipelining off)."""
    return _PIPELINERS.get(client)


async def single(client: Redis, *args: Arg) -> Any:
    """One read whose raw reply the caller reads, pipelined when ``client`` pipelines.

    Only for reads that never block and that redis-py gives no reply callback (the caller
    gets what hiredis parsed either way): JSON.GET, JSON.MGET, FT.SEARCH. A dropped
    connection or a timeout is retried once through the pool, with its retry policy."""
    pipelined = _PIPELINERS.get(client)
    if pipelined is not None:
        try:
            return await pipelined.execute(*args)
        except (RedisConnectionError, RedisTimeoutError):
            pass
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]
