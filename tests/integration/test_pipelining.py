"""Automatic pipelining (keyspace.pipelining) on the real server: every reply reaches its own
caller, one caller's error or cancel answers no other, and a command is sent at most once."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import BusyLoadingError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from keyspace import USER, Keyspace, connect, pipelining
from keyspace.connection import call, observe_round_trips
from keyspace.pipelining import Pipeliner, _Line, attach, pipeliner, single
from keyspace.server import EmbeddedRedis, free_port
from tests import factories as f

pytestmark = pytest.mark.redis


@pytest.fixture
async def piped(redis_server: EmbeddedRedis, real_client: Redis) -> AsyncIterator[Redis]:
    client = connect(redis_server.url)
    yield client
    await client.aclose()


def lanes(client: Redis) -> Pipeliner:
    found = pipeliner(client)
    assert found is not None
    return found


async def test_concurrent_callers_share_writes_and_each_gets_its_own_reply(piped: Redis) -> None:
    await call(piped, "MSET", *[x for n in range(200) for x in (f"k{n}", f"v{n}")])
    before = lanes(piped).writes
    replies = await asyncio.gather(*(single(piped, "GET", f"k{n}") for n in range(200)))
    assert replies == [f"v{n}".encode() for n in range(200)]
    assert lanes(piped).writes - before < 20  # 200 commands, a handful of writes


async def test_a_write_carries_at_most_sixteen_commands(
    piped: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Redis starts on the first 16 while the process queues the rest (docs/profiling.md,
    # Round 6): one write of 40 would leave the process idle while Redis runs them all.
    lines = lanes(piped)
    await single(piped, "PING")  # an open, idle line: the 40 below queue in one turn
    sizes: list[int] = []
    write = lines._write

    def spy(line: _Line) -> None:
        if line.buffer:
            sizes.append(len(line.buffer))
        write(line)

    monkeypatch.setattr(lines, "_write", spy)
    replies = await asyncio.gather(*(single(piped, "ECHO", f"m{n}") for n in range(40)))
    assert replies == [f"m{n}".encode() for n in range(40)]
    assert sum(sizes) == 40
    assert max(sizes) == 16


async def test_a_turn_s_commands_stay_on_the_line_that_collects_them(piped: Redis) -> None:
    # Written 16 at a time, but on the one idle line: no other line is opened for the rest
    # (which would cost a connection, and fail the rest where Redis accepts no more: review 33).
    lines = lanes(piped)
    await single(piped, "PING")
    replies = await asyncio.gather(*(single(piped, "ECHO", f"m{n}") for n in range(40)))
    assert replies == [f"m{n}".encode() for n in range(40)]
    assert len([line for line in lines._lines if line is not None]) == 1


BUSY_SCRIPT = "local i = 0 while i < tonumber(ARGV[1]) do i = i + 1 end return 1"


async def test_a_line_that_cannot_be_opened_leaves_the_command_on_an_open_one(
    piped: Redis, real_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipelining, "OPEN_BACKOFF", 30.0)  # however slow this host is today
    lines = lanes(piped)
    await single(piped, "PING")
    connected = int((await real_client.info("clients"))["connected_clients"])
    limit = str((await real_client.config_get("maxclients"))["maxclients"])
    opened = 0
    connect = lines._connect

    async def counted(slot: int, closes: int) -> _Line:
        nonlocal opened
        opened += 1
        return await connect(slot, closes)

    await real_client.config_set("maxclients", connected)  # Redis accepts no other connection
    try:
        monkeypatch.setattr(lines, "_connect", counted)
        for _ in range(3):  # busy turns, one after another
            busy = asyncio.ensure_future(lines.execute("EVAL", BUSY_SCRIPT, 0, 2_000_000))
            await asyncio.sleep(0.005)  # written: the one line now has a reply outstanding
            # The line is busy and a slot is free: the first turn tries another line, is
            # refused and goes on the open one; the next turns go there at once (review 34:
            # a refused opening takes ~0.5 s of retries, and every busy turn waited for one).
            echo = asyncio.ensure_future(single(piped, "ECHO", "after"))
            assert await asyncio.wait_for(busy, 10) == 1
            assert await asyncio.wait_for(echo, 10) == b"after"
        assert opened == 1  # one opening at a time, and none again soon after it failed
        pending = [o for o in lines._opening if o is not None and not o.done()]
        if pending:
            await asyncio.wait(pending, timeout=10)  # the refused opening has ended
        busy = asyncio.ensure_future(lines.execute("EVAL", BUSY_SCRIPT, 0, 1_000_000))
        await asyncio.sleep(0.005)
        assert await asyncio.wait_for(single(piped, "ECHO", "again"), 10) == b"again"
        assert await busy == 1
        assert opened == 1  # within the backoff after the refusal: not tried again
    finally:
        await real_client.config_set("maxclients", limit)
    assert len([line for line in lines._lines if line is not None and not line.closed]) == 1


async def test_an_error_reply_answers_only_its_own_caller(piped: Redis) -> None:
    await call(piped, "SET", "text", "abc")
    await call(piped, "RPUSH", "list", "x")
    results = await asyncio.gather(
        single(piped, "GET", "text"),
        single(piped, "GET", "list"),  # WRONGTYPE
        single(piped, "GET", "text"),
        return_exceptions=True,
    )
    assert results[0] == b"abc" and results[2] == b"abc"
    assert isinstance(results[1], ResponseError) and "WRONGTYPE" in str(results[1])


async def test_a_cancelled_caller_leaves_the_order_intact(piped: Redis) -> None:
    await call(piped, "MSET", *[x for n in range(100) for x in (f"c{n}", str(n))])
    tasks = [asyncio.ensure_future(single(piped, "GET", f"c{n}")) for n in range(100)]
    await asyncio.sleep(0)  # queued, maybe written
    for task in tasks[::3]:
        task.cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    for n, outcome in enumerate(done):
        if n % 3:
            assert outcome == str(n).encode()
    # The connection is still in step: later replies are their own.
    assert await asyncio.gather(*(single(piped, "GET", f"c{n}") for n in range(10))) == [
        str(n).encode() for n in range(10)
    ]


async def test_a_command_is_sent_once_when_the_server_stalls(
    redis_server: EmbeddedRedis, real_client: Redis
) -> None:
    client = connect(redis_server.url)
    piped = attach(client, timeout=0.5)
    await single(client, "PING")  # the line is open
    pid = redis_server.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(RedisTimeoutError):
            await piped.execute("INCR", "sent-once")
    finally:
        os.kill(pid, signal.SIGCONT)
    # The stalled INCR ran when the server resumed; nothing sent it again.
    for _ in range(50):
        if await call(real_client, "GET", "sent-once") is not None:
            break
        await asyncio.sleep(0.02)
    assert await piped.execute("GET", "sent-once") == b"1"
    await client.aclose()


async def test_a_dropped_connection_fails_what_waits_and_the_next_command_reconnects(
    piped: Redis, real_client: Redis
) -> None:
    await single(piped, "PING")
    blocked = asyncio.ensure_future(lanes(piped).execute("BLPOP", "never", 5))
    await asyncio.sleep(0.1)
    await call(real_client, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    with pytest.raises(RedisConnectionError):
        await blocked
    assert await single(piped, "PING") == b"PONG"


async def test_a_commit_whose_connection_dropped_is_not_sent_again(
    redis_server: EmbeddedRedis, real_client: Redis
) -> None:
    client = connect(redis_server.url)
    ks = Keyspace(client)
    await ks.setup()
    piped = lanes(client)
    original = piped._deliver
    lost = {"armed": False}

    def losing(line: object, reply: object) -> None:
        if lost["armed"] and isinstance(reply, list):  # the commit's reply: lose it
            lost["armed"] = False
            piped._fail(line, RedisConnectionError("the reply was lost (test)"))  # type: ignore[arg-type]
            return
        original(line, reply)  # type: ignore[arg-type]

    piped._deliver = losing  # type: ignore[method-assign]
    lost["armed"] = True
    with pytest.raises(RedisConnectionError):
        await f.user(ks, "Once")
    users = [k async for k in real_client.scan_iter(match="user:*")]
    assert users == [b"user:user_1"]
    assert await call(real_client, "GET", "user_counter") == b"1"
    await client.aclose()


async def test_scripts_reload_after_a_script_flush(piped: Redis, real_client: Redis) -> None:
    ks = Keyspace(piped)
    await ks.setup()
    await f.user(ks, "Before")
    await call(real_client, "SCRIPT", "FLUSH")
    created = await ks.create(
        USER, {"username": "after", "email": "after@example.com", "role": "designer"}
    )
    assert created.doc["username"] == "after"


async def test_round_trips_are_observed(piped: Redis) -> None:
    seen: list[float] = []
    observe_round_trips(piped, seen.append)
    await asyncio.gather(*(single(piped, "PING") for _ in range(10)))
    assert seen and all(0 <= s < 5 for s in seen)


async def test_off_sends_through_the_pool(redis_server: EmbeddedRedis) -> None:
    client = connect(redis_server.url, pipelining=False)
    assert pipeliner(client) is None
    assert await single(client, "PING") is True  # redis-py's reply callback: the pool path
    await client.aclose()


# Review 19 (review-findings19), each a regression test --------------------------------------


async def test_the_pipeline_takes_no_connection_from_a_pool_of_one(
    redis_server: EmbeddedRedis, real_client: Redis
) -> None:
    client = connect(redis_server.url, max_connections=1, timeout=2)
    await call(real_client, "SET", "k", "v")
    piped, pooled = await asyncio.wait_for(
        asyncio.gather(single(client, "GET", "k"), call(client, "GET", "k")), 1.5
    )
    assert piped == pooled == b"v"
    await client.aclose()


def test_a_client_used_from_one_event_loop_after_another_keeps_working(
    redis_server: EmbeddedRedis,
) -> None:
    client = connect(redis_server.url, max_connections=3)
    for _ in range(6):  # twice the pool: a line left behind per loop would exhaust it
        loop = asyncio.new_event_loop()
        try:
            assert loop.run_until_complete(single(client, "PING")) == b"PONG"
        finally:
            loop.close()
    assert not client.connection_pool._in_use_connections
    asyncio.run(client.aclose())


async def test_a_caller_cancelled_while_its_line_opens_strands_no_later_caller(
    redis_server: EmbeddedRedis, real_client: Redis
) -> None:
    client = connect(redis_server.url, timeout=1.0)
    first = asyncio.ensure_future(lanes(client).execute("PING"))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0.3)  # the shielded opening finishes by itself
    await call(real_client, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    await asyncio.sleep(0.3)  # its reader saw the end: the line is closed
    assert await asyncio.wait_for(lanes(client).execute("PING"), 5) == b"PONG"
    await client.aclose()


async def test_a_stall_leaks_no_connection(redis_server: EmbeddedRedis) -> None:
    client = connect(redis_server.url, timeout=0.5)
    await single(client, "PING")
    pid = redis_server.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        big = "x" * (1 << 20)  # unsent bytes left in the transport when the line fails
        outcomes = await asyncio.gather(
            *(lanes(client).execute("SET", f"big{n}", big) for n in range(4)),
            return_exceptions=True,
        )
    finally:
        os.kill(pid, signal.SIGCONT)
    assert all(isinstance(o, RedisTimeoutError) for o in outcomes)
    assert not client.connection_pool._in_use_connections
    assert await single(client, "PING") == b"PONG"
    await client.aclose()


async def test_nested_error_replies_get_redis_py_classes(piped: Redis) -> None:
    script = "return {redis.error_reply('NOSCRIPT z'), redis.error_reply('READONLY y'), 1}"
    pooled = await call(piped, "EVAL", script, 0)
    pipelined = await single(piped, "EVAL", script, 0)
    assert [type(e) for e in pipelined[:2]] == [type(e) for e in pooled[:2]]
    assert [str(e) for e in pipelined[:2]] == [str(e) for e in pooled[:2]]
    assert pipelined[2] == pooled[2] == 1


async def test_an_error_redis_py_does_not_class_as_a_response_error_is_raised(
    piped: Redis,
) -> None:
    """LOADING is a BusyLoadingError (a ConnectionError in redis-py): it was handed back as
    a reply, and authorization read it as one (500s while a restarted server loaded)."""
    with pytest.raises(BusyLoadingError):
        await lanes(piped).execute("EVAL", "return redis.error_reply('LOADING busy')", 0)
    assert await lanes(piped).execute("PING") == b"PONG"


async def test_a_line_opening_while_the_client_closes_does_not_outlive_it(
    redis_server: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = connect(redis_server.url)
    lines = lanes(client)
    await single(client, "PING")
    gate = asyncio.Event()
    make = lines.pool.make_connection

    def held() -> Any:
        connection = make()  # type: ignore[no-untyped-call]
        opened = connection.connect

        async def later() -> None:
            await gate.wait()
            await opened()

        connection.connect = later
        return connection

    monkeypatch.setattr(lines.pool, "make_connection", held)
    busy = asyncio.ensure_future(lines.execute("EVAL", BUSY_SCRIPT, 0, 1_000_000))
    await asyncio.sleep(0.005)
    echo = asyncio.ensure_future(lines.execute("ECHO", "x"))  # waits for another line
    await asyncio.sleep(0.01)
    opening = [o for o in lines._opening if o is not None and not o.done()]
    assert len(opening) == 1
    assert await busy == 1
    await lines.close()
    gate.set()
    with pytest.raises(RedisConnectionError):
        await opening[0]
    with pytest.raises(RedisConnectionError):
        await echo
    assert all(line is None for line in lines._lines)
    await client.aclose()


async def test_a_line_asked_for_just_before_aclose_does_not_outlive_it(
    redis_server: EmbeddedRedis,
) -> None:
    # Review 35: the close came before the opening's first step, which took the count then.
    client = connect(redis_server.url)
    lines = lanes(client)
    await lines.execute("PING")
    a = asyncio.ensure_future(lines.execute("ECHO", "a"))
    for _ in range(3):
        await asyncio.sleep(0)  # "a" is written: the line is busy
    b = asyncio.ensure_future(lines.execute("ECHO", "b"))
    await asyncio.sleep(0)  # b found the line busy: another is asked for
    opening = [o for o in lines._opening if o is not None and not o.done()]
    assert len(opening) == 1
    await client.aclose()
    for outcome in await asyncio.gather(a, b, return_exceptions=True):
        assert isinstance(outcome, RedisConnectionError)
    with pytest.raises(RedisConnectionError):
        await opening[0]
    assert all(line is None or line.closed for line in lines._lines)


def test_a_line_opening_when_its_loop_ends_is_dropped_quietly(
    redis_server: EmbeddedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    # Review 35: with the loop-per-call pattern, an opening nobody awaited was left pending.
    client = connect(redis_server.url, max_connections=3)

    async def request() -> None:
        await single(client, "PING")
        first = asyncio.ensure_future(single(client, "ECHO", "a"))
        for _ in range(3):
            await asyncio.sleep(0)  # "a" is written: the line is busy
        assert await single(client, "ECHO", "b") == b"b"  # another line opens for it
        assert await first == b"a"

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        for _ in range(6):
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(request())
            finally:
                loop.close()
        gc.collect()
    asyncio.run(client.aclose())
    assert not [r for r in caplog.records if "destroyed but it is pending" in r.getMessage()]


def _open_lines(lines: Pipeliner) -> int:
    return sum(1 for line in lines._lines if line is not None and not line.closed)


async def test_lines_grow_again_soon_after_a_short_outage(redis_server: EmbeddedRedis) -> None:
    # Review 36: refusals while no line was open had pushed the backoff to 16-30 s, which the
    # first successful opening did not clear: one line for half a minute after the outage.
    client = connect(redis_server.url, timeout=2.0, max_connections=8)
    lines = lanes(client)
    assert await single(client, "PING") == b"PONG"
    kwargs = client.connection_pool.connection_kwargs
    port = kwargs["port"]
    lines._fail(lines._lines[0], RedisConnectionError("server restarted"))  # type: ignore[arg-type]
    kwargs["port"] = free_port()  # nothing listens: every opening is refused, as in a restart
    try:
        for _ in range(5):  # requests during the outage, while no line is open
            await asyncio.gather(single(client, "PING"), return_exceptions=True)
    finally:
        kwargs["port"] = port  # the server is back
    most = 0

    async def worker(k: int) -> None:
        nonlocal most
        end = time.monotonic() + 2.0
        while time.monotonic() < end and most < 2:
            await single(client, "SET", f"grow:{k}", "x" * 2000)
            most = max(most, _open_lines(lines))

    await asyncio.gather(*(worker(k) for k in range(32)))
    await client.aclose()
    assert most > 1


def test_a_loop_that_ends_with_a_command_queued_leaves_the_next_loop_working(
    redis_server: EmbeddedRedis,
) -> None:
    # Review 36: the ended loop's line stayed the collecting one, and every later command
    # failed with "got Future attached to a different loop".
    client = connect(redis_server.url, timeout=2.0)

    left: list[asyncio.Future[Any]] = []

    async def fire_and_return() -> None:
        task = asyncio.ensure_future(single(client, "PING"))
        task._log_destroy_pending = False  # type: ignore[attr-defined]  # left with its loop on purpose
        left.append(task)

    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(single(client, "PING")) == b"PONG"
        loop.run_until_complete(fire_and_return())  # its command is queued as the loop stops
    finally:
        loop.close()
    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(asyncio.wait_for(single(client, "PING"), 3)) == b"PONG"
        loop.run_until_complete(client.aclose())
    finally:
        loop.close()
