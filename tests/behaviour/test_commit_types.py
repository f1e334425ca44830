"""commit.lua never writes half a plan: every write op, run after an earlier write of the
same plan, meets a key of every Redis type (and every near-integer string), and either the
whole plan is applied or the reply is ``wrong_type`` and the keyspace is exactly as before.

A Redis script that raises does not undo what it already wrote, so an op that can raise
must be refused by the type pre-check before the first write. The op list is read from
commit.lua itself: a new write op fails here until it is covered."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import fakeredis
import orjson
import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from keyspace import connect, keys, lua_sources
from keyspace.connection import call
from keyspace.plan import Arg, Plan
from keyspace.scripts import Scripts
from keyspace.server import EmbeddedRedis
from tests.lua_ops import commit_arity, commit_uses_id

CHECK_OPS = {
    "absent",
    "equals",
    "exists",
    "unfenced",
    "free",
    "unclaimed",
    "card",
    "string",
    "gone",
    "hequals",
    "claimed",
}
SENTINEL = "mf:test:sentinel"  # written by the plan before the op under test
VICTIM = "mf:test:victim"  # the key the op under test writes, planted with every kind
COUNTER, ID_PREFIX, KEY_PREFIX = "driver_counter", "driver_", "driver:"


WRITE_OPS = [name for name in commit_arity() if name not in CHECK_OPS]

Plant = Callable[[Redis, str], Awaitable[object]]


def _string(value: str) -> Plant:
    async def plant(client: Redis, key: str) -> object:
        return await client.set(key, value)

    return plant


KINDS: dict[str, Plant | None] = {
    "none": None,
    "text": _string("owner"),
    "integer": _string("7"),
    "negative": _string("-5"),
    "decimal": _string("1.5"),
    "exponent": _string("1e3"),
    "padded": _string("007"),
    "spaced": _string(" 12"),
    "minus-zero": _string("-0"),
    "int64-max": _string("9223372036854775807"),
    "hash": lambda c, k: c.hset(k, "f", "v"),
    "set": lambda c, k: c.sadd(k, "m"),
    "list": lambda c, k: c.rpush(k, "x"),
    "zset": lambda c, k: c.zadd(k, {"m": 1}),
    "json": lambda c, k: call(c, "JSON.SET", k, "$", '{"a":1}'),
    "stream": lambda c, k: c.xadd(k, {"f": "v"}),
}
STRINGS = {"text", "integer", "negative", "decimal", "exponent", "padded", "spaced"}
STRINGS |= {"minus-zero", "int64-max"}
COUNTABLE = {"none", "integer", "negative"}  # strings INCR accepts (and can increment)
EVERY = set(KINDS)

# The kinds of key each op succeeds on; every other kind must be refused with nothing written.
ACCEPTS: dict[str, set[str]] = {
    "jset": {"none", "json"},
    "del": EVERY,
    "set": EVERY,
    "delif": {"none"} | STRINGS,
    "sadd": {"none", "set"},
    "srem": {"none", "set"},
    "floor": COUNTABLE,
    "incr": COUNTABLE,
    "bump": COUNTABLE,
    "hset": {"none", "hash"},
    "hsetx": {"none", "hash"},
    "hdel": {"none", "hash"},
    "pexpire": EVERY,
    "jsetid": EVERY,  # its key is one the draw found free: a planted one is skipped
    "setid": EVERY,
    "saddid": {"none", "set"},
    "jsetat": EVERY,  # as jsetid: an id whose projection key is taken is skipped
    "keepttl": EVERY,  # TTLs only: a key of any type has one
    "ttlof": EVERY,
    "ttlat": EVERY,
    "event": {"none", "stream"},  # the change feed (keyspace.changes)
    "eventid": {"none", "stream"},
    "trim": {"none", "stream"},
    "zadd": {"none", "zset"},  # a ranked field's sorted set (keyspace.ranks)
    "zaddid": {"none", "zset"},
    "zrem": {"none", "zset"},
    "outcome": EVERY,  # an Idempotency-Key's outcome: SET, on a key of any type
}

# Arguments after the key index, and whether the op needs a drawn id.
ARGS: dict[str, tuple[Arg, ...]] = {
    "jset": (b'{"b":2}',),
    "del": (),
    "set": ("v",),
    "delif": ("owner",),
    "sadd": ("m",),
    "srem": ("m",),
    "floor": (5,),
    "incr": (),
    "bump": (7,),
    "hset": ("f", "w"),
    "hsetx": ("f", "w"),
    "hdel": ("f",),
    "pexpire": (60_000,),
    "jsetid": (b'{"driver_id":"', b'"}'),
    "setid": (),
    "saddid": (),
    "jsetat": (b'{"driver_id":"', b'"}'),
    "keepttl": (60_000,),
    "ttlof": (2,),  # KEYS[2]: SENTINEL, whose expiry (none) it copies
    "ttlat": (2,),
    "event": (2, "delete", "drivers", "driver_9"),  # KEYS[2]: the document it names
    "eventid": (4, "create", "drivers"),  # KEYS[4]: the document key the draw completes
    "trim": (10, 60_000),
    "zadd": ("512.0", "driver_9"),
    "zaddid": ("1e+22",),
    "zrem": ("driver_9",),
    "outcome": ("replayed:", 60_000),
}
DRAWS_ID = {"jsetid", "setid", "saddid", "jsetat", "ttlat", "eventid", "zaddid"}
SHOWN_PREFIX = "mf:proj:driver:"


def plan_for(op: str) -> tuple[Plan, str]:
    """A plan that writes SENTINEL, then runs ``op``; and the key ``op`` writes."""
    plan = Plan(keys.pause_key())
    plan.write("set", SENTINEL, "written")
    if op in DRAWS_ID:
        plan.generates(COUNTER, ID_PREFIX, KEY_PREFIX)
    if op == "jsetid":
        plan.write(op, KEY_PREFIX, *ARGS[op])
        return plan, f"{KEY_PREFIX}{ID_PREFIX}1"  # the id the draw tries first
    if op in ("jsetat", "ttlat"):
        plan.write(op, SHOWN_PREFIX, *ARGS[op])
        return plan, f"{SHOWN_PREFIX}{ID_PREFIX}1"
    plan.write(op, VICTIM, *ARGS[op])
    return plan, VICTIM


async def _kind(client: Redis, key: bytes) -> str:
    try:
        reply = await call(client, "TYPE", key)
    except AssertionError:  # fakeredis cannot name the type of a JSON key
        return "json"
    name = reply.decode() if isinstance(reply, bytes) else str(reply)
    return "json" if name in ("ReJSON-RL", "") else name


async def _value(client: Redis, key: bytes) -> object:
    kind = await _kind(client, key)
    if kind == "string":
        return await client.get(key)
    if kind == "hash":
        return sorted((await client.hgetall(key)).items())
    if kind == "set":
        return sorted(await client.smembers(key))
    if kind == "list":
        return await client.lrange(key, 0, -1)
    if kind == "zset":
        return await client.zrange(key, 0, -1, withscores=True)
    if kind == "stream":
        return await client.xrange(key)
    assert kind == "json", kind
    return await call(client, "JSON.GET", key, ".")


async def dump(client: Redis) -> dict[bytes, tuple[str, object, bool]]:
    """Every key: its type, value and whether it expires."""
    out: dict[bytes, tuple[str, object, bool]] = {}
    async for key in client.scan_iter(match="*", count=1000):
        ttl = await client.pttl(key)
        out[key] = (await _kind(client, key), await _value(client, key), ttl > 0)
    return out


@pytest.fixture(
    params=[pytest.param("fake", id="fakeredis"), pytest.param("real", marks=pytest.mark.redis)]
)
async def client(request: pytest.FixtureRequest) -> AsyncIterator[Redis]:
    if request.param == "fake":
        redis: Redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), protocol=2)
    else:
        server: EmbeddedRedis = request.getfixturevalue("redis_server")
        redis = connect(server.url)
    await redis.flushall()
    yield redis
    await redis.aclose()


def test_every_write_op_of_commit_lua_is_covered() -> None:
    assert set(WRITE_OPS) == set(ACCEPTS) == set(ARGS)


@pytest.mark.parametrize("op", WRITE_OPS)
async def test_a_write_op_on_a_wrong_typed_key_writes_nothing(client: Redis, op: str) -> None:
    scripts = Scripts(client)
    real = not isinstance(client, fakeredis.FakeAsyncRedis)
    for kind, plant in KINDS.items():
        await client.flushall()
        plan, target = plan_for(op)
        if plant is not None:
            await plant(client, target)
        await client.set("mf:test:bystander", "unchanged")
        before = await dump(client)
        result = await scripts.commit(plan)  # a script error would raise here
        if kind in ACCEPTS[op]:
            assert result.ok, (op, kind, result)
            assert await client.get(SENTINEL) == b"written", (op, kind)
            continue
        assert (result.error, result.field, result.value) == ("wrong_type", op, target), kind
        assert await dump(client) == before, (op, kind)
        if real and op in ("incr", "bump") and kind in STRINGS:
            with pytest.raises(ResponseError):  # refused exactly where INCR itself would fail
                await client.incr(target)


# A counter an id is drawn from must hold a non-negative integer (int64-max: see
# test_counter_bounds.py, it is exhausted).
@pytest.mark.parametrize("kind", sorted(set(KINDS) - {"none", "integer", "int64-max"}))
async def test_a_drawn_id_from_a_counter_of_another_kind_writes_nothing(
    client: Redis, kind: str
) -> None:
    plant = KINDS[kind]
    assert plant is not None
    await plant(client, COUNTER)
    before = await dump(client)
    plan, _ = plan_for("setid")
    result = await Scripts(client).commit(plan)
    assert (result.error, result.value) == ("wrong_type", COUNTER)
    assert await dump(client) == before


async def test_a_taken_projection_key_makes_the_draw_skip_that_id(client: Redis) -> None:
    planted = f"{SHOWN_PREFIX}{ID_PREFIX}1"
    await client.set(planted, "planted")
    plan = Plan(keys.pause_key())
    plan.generates(COUNTER, ID_PREFIX, KEY_PREFIX)
    plan.write("jsetid", KEY_PREFIX, *ARGS["jsetid"])
    plan.write("jsetat", SHOWN_PREFIX, *ARGS["jsetat"])
    assert (await Scripts(client).commit(plan)).ok
    assert await client.get(planted) == b"planted"
    for key in (f"{KEY_PREFIX}{ID_PREFIX}2", f"{SHOWN_PREFIX}{ID_PREFIX}2"):
        assert orjson.loads(await call(client, "JSON.GET", key, ".")) == {"driver_id": "driver_2"}


# Plans the service never builds, sent as they are: commit.lua's last line of defence. A key
# index outside KEYS, or an op of the drawn id in a plan that draws none, used to raise after
# the plan's earlier writes (review 37); every such plan is now refused whole.
COMMIT_ARITY = commit_arity()
NO_DRAW = ["0", "0", "0", "", "0", ""]  # ARGV[1..6]: no check, no return, no counter


async def _raw_commit(client: Redis, keys_: list[str], argv: list[str]) -> object:
    return await client.eval(lua_sources.source("commit.lua"), len(keys_), *keys_, *argv)


async def _planted(client: Redis) -> dict[bytes, tuple[str, object, bool]]:
    await client.flushall()
    await call(client, "JSON.SET", "doc:1", "$", '{"a":1}')
    await client.set(COUNTER, "5")
    return await dump(client)


@pytest.mark.parametrize("op", sorted(COMMIT_ARITY))
@pytest.mark.parametrize("index", ["9", "0", "x"])
async def test_an_op_naming_no_key_is_refused_before_any_write(
    client: Redis, op: str, index: str
) -> None:
    before = await _planted(client)
    rest = ["1"] * (COMMIT_ARITY[op] - 1)
    if op in CHECK_OPS:  # ARGV[7]: checks come first
        argv, at = ["1", *NO_DRAW[1:], op, index, *rest, "jset", "2", '{"a":2}'], b"7"
    else:  # ARGV[10], after a write
        argv = [*NO_DRAW[:2], "3", ID_PREFIX, "4", "", "jset", "2", '{"a":2}', op, index, *rest]
        at = b"10"
    reply = await _raw_commit(client, [keys.pause_key(), "doc:1", COUNTER, KEY_PREFIX], argv)
    assert reply == [b"err", b"bad_plan", op.encode(), at]
    assert await dump(client) == before


def test_the_ops_of_the_drawn_id_are_the_ones_commit_lua_checks() -> None:
    assert commit_uses_id() == DRAWS_ID


@pytest.mark.parametrize("op", sorted(DRAWS_ID))
async def test_an_op_of_the_drawn_id_in_a_plan_drawing_none_is_refused(
    client: Redis, op: str
) -> None:
    before = await _planted(client)
    rest = ["2"] * (COMMIT_ARITY[op] - 1)
    argv = [*NO_DRAW, "jset", "2", '{"a":2}', op, "2", *rest]
    reply = await _raw_commit(client, [keys.pause_key(), "doc:1"], argv)
    assert reply == [b"err", b"bad_plan", op.encode(), b"10"]
    assert await dump(client) == before


async def test_a_draw_completing_no_key_is_refused_before_the_counter_moves(
    client: Redis,
) -> None:
    before = await _planted(client)
    argv = ["0", "0", "3", ID_PREFIX, "9", "", "jsetid", "2", '{"driver_id":"', '"}']
    reply = await _raw_commit(client, [keys.pause_key(), "doc:1", COUNTER], argv)
    assert reply == [b"err", b"bad_plan", b"draw", b"9"]
    assert await dump(client) == before


@pytest.mark.parametrize("returning", ["9", "x", "-2", ""])
async def test_a_plan_returning_no_key_is_refused_before_any_write(
    client: Redis, returning: str
) -> None:
    before = await _planted(client)
    argv = ["0", returning, *NO_DRAW[2:], "jset", "2", '{"a":2}']
    reply = await _raw_commit(client, [keys.pause_key(), "doc:1"], argv)
    assert reply == [b"err", b"bad_plan", b"return", returning.encode()]
    assert await dump(client) == before


# Redis takes a TTL up to ~2^63 ms past now; at most 15 digits are accepted (review 38: a
# longer one was refused by PEXPIRE or SET PX after the plan's earlier writes).
@pytest.mark.parametrize(
    ("op", "args_", "ms"),
    [("pexpire", ["2"], "9" * 20), ("keepttl", ["2"], "9" * 16), ("outcome", ["3", "h"], "9" * 16)],
)
async def test_a_time_redis_cannot_take_is_refused_before_any_write(
    client: Redis, op: str, args_: list[str], ms: str
) -> None:
    before = await _planted(client)
    argv = [*NO_DRAW, "jset", "2", '{"a":2}', op, *args_, ms]
    reply = await _raw_commit(client, [keys.pause_key(), "doc:1", "mf:test:outcome"], argv)
    assert reply == [b"err", b"bad_plan", op.encode(), ms.encode()]
    assert await dump(client) == before
    argv[-1] = "9" * 15  # the longest taken: the plan applies
    applied = await _raw_commit(client, [keys.pause_key(), "doc:1", "mf:test:outcome"], argv)
    assert isinstance(applied, list) and applied[0] == b"ok"
