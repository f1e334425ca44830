"""A write whose reply is lost is not sent again: the client's retries (on a timeout or a
dropped connection) are for reads; a commit that ran must not run twice."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from keyspace import USER, Keyspace, connect
from keyspace.pipelining import pipeliner
from keyspace.server import EmbeddedRedis
from keyspace.tokens import Limits, TokenKind
from tests import factories as f

pytestmark = pytest.mark.redis


@dataclass
class Lossy:
    """A keyspace whose client loses the reply of the next script after :meth:`arm`."""

    ks: Keyspace
    arm: Callable[[], None]


def _lose_on_the_pool(client: Redis) -> Callable[[], None]:
    fast = client.connection_pool.connection_class

    class Losing(fast):  # type: ignore[valid-type,misc]
        armed: ClassVar[bool] = False

        async def read_response(self, *args: Any, **kwargs: Any) -> Any:
            reply = await super().read_response(*args, **kwargs)
            if Losing.armed and isinstance(reply, list):  # a script's reply
                Losing.armed = False
                await self.disconnect()
                raise RedisConnectionError("the reply was lost (test)")
            return reply

    client.connection_pool.connection_class = Losing
    return lambda: setattr(Losing, "armed", True)


def _lose_on_the_pipeline(client: Redis) -> Callable[[], None]:
    piped = pipeliner(client)
    assert piped is not None
    deliver = piped._deliver
    armed = [False]

    def losing(line: Any, reply: Any) -> None:
        if armed[0] and isinstance(reply, list):  # a script's reply: the connection drops
            armed[0] = False
            piped._fail(line, RedisConnectionError("the reply was lost (test)"))
            return
        deliver(line, reply)

    piped._deliver = losing  # type: ignore[method-assign]
    return lambda: armed.__setitem__(0, True)


@pytest.fixture(params=["pool", "pipelined"])
async def losing(
    request: pytest.FixtureRequest, redis_server: EmbeddedRedis, real_client: Redis
) -> AsyncIterator[Lossy]:
    """Both transports: one command per pooled connection, and automatic pipelining."""
    pipelined = request.param == "pipelined"
    client = connect(redis_server.url, pipelining=pipelined)
    arm = (_lose_on_the_pipeline if pipelined else _lose_on_the_pool)(client)
    ks = Keyspace(client)
    await ks.setup()
    yield Lossy(ks, arm)
    await client.aclose()


async def test_a_create_whose_reply_was_lost_is_stored_once(losing: Lossy) -> None:
    ks = losing.ks
    owner = (await f.user(ks, "Owner")).doc["user_id"]
    losing.arm()
    with pytest.raises(RedisConnectionError):
        await f.driver(ks, owner)
    drivers = [k async for k in ks.client.scan_iter(match="driver:*")]
    assert drivers == [b"driver:driver_1"]
    assert await ks.client.get("driver_counter") == b"1"
    assert (await f.driver(ks, owner)).doc["driver_id"] == "driver_2"


async def test_a_pinned_update_whose_reply_was_lost_is_not_refused_by_itself(
    losing: Lossy,
) -> None:
    ks = losing.ks
    user = await f.user(ks, "Pinned")
    losing.arm()
    with pytest.raises(RedisConnectionError):  # not StaleRevision: it ran once, unseen
        await ks.patch(USER, "user_1", {"username": "Renamed"}, if_revision=user.revision)
    assert (await ks.get(USER, "user_1")).doc["username"] == "Renamed"


async def test_an_authorization_whose_reply_was_lost_is_retried(losing: Lossy) -> None:
    """Authorization may run twice (it counts one more request at worst): the client's
    retry policy applies, and the caller gets its answer instead of an error."""
    ks = losing.ks
    user = await f.user(ks, "Reader")
    minted = await ks.tokens.mint(user.doc["user_id"], user.raw, TokenKind.API_KEY)
    limits = Limits(designer_read=100)
    first = await ks.tokens.authorize(minted.token, "read", limits)  # the script is loaded now
    assert (first.status, first.remaining) == ("ok", 99)
    losing.arm()
    decision = await ks.tokens.authorize(minted.token, "read", limits, "user:user_1")
    assert (decision.status, decision.user_id, decision.prefetched) == ("ok", "user_1", user.raw)
    assert decision.remaining == 97  # the lost attempt was counted too
