"""authorize.lua's per-endpoint limits on every backend: a fixed window per user and endpoint
in the seed's two keys, checked beside the per-class GCRA limit in the same script, the
tighter one reported, a refused request counted by neither, admins not limited, and a new
window once the old one expires."""

from __future__ import annotations

import asyncio
import json

from keyspace import EndpointLimit, Keyspace, keys
from keyspace.tokens import Limits, TokenKind, new_token
from tests import factories as f

EP = "GET:/api/drivers/{id}"


def limits(per_window: int, read: int = 0, window_ms: int = 3_600_000) -> Limits:
    return Limits(designer_read=read, endpoint=EndpointLimit(EP, per_window, window_ms))


async def token(ks: Keyspace, name: str, role: str = "designer") -> str:
    user = await f.user(ks, name, role=role)
    user_id = str(user.doc["user_id"])
    return (await ks.tokens.mint(user_id, user.raw, TokenKind.API_KEY)).token


async def test_a_fixed_window_per_user_and_endpoint_in_the_seeds_keys(ks: Keyspace) -> None:
    alice, bob = await token(ks, "Alice"), await token(ks, "Bob")
    seen = [await ks.tokens.authorize(alice, "read", limits(3)) for _ in range(4)]
    assert [d.status for d in seen] == ["ok", "ok", "ok", "limited"]
    assert [d.remaining for d in seen[:3]] == [2, 1, 0]
    assert {d.limit for d in seen} == {3}
    assert 3_500_000 < seen[3].retry_after_ms <= 3_600_000
    count = keys.endpoint_rate_key("user_1", EP)
    assert await ks.client.get(count) == b"3"  # the refused request is not counted
    assert 3_500_000 < await ks.client.pttl(count) <= 3_600_000
    window = keys.endpoint_window_key("user_1", EP)
    raw = await ks.client.get(window)
    assert raw is not None
    state = json.loads(raw)
    assert state["requests"] == 3 and state["limit"] == 3
    assert isinstance(state["window_start"], int) and state["window_start"] > 1_600_000_000_000
    assert 3_500_000 < await ks.client.pttl(window) <= 3_600_000  # expiring with the count
    # Another user, and another endpoint of the same user, have their own windows.
    assert (await ks.tokens.authorize(bob, "read", limits(3))).status == "ok"
    other = Limits(endpoint=EndpointLimit("GET:/api/drivers", 3, 3_600_000))
    assert (await ks.tokens.authorize(alice, "read", other)).status == "ok"
    assert (await ks.tokens.authorize(alice, "read", Limits())).status == "ok"  # no endpoint


async def test_a_new_window_after_the_old_one_expires(ks: Keyspace) -> None:
    alice = await token(ks, "Alice")
    short = limits(1, window_ms=300)
    assert [(await ks.tokens.authorize(alice, "read", short)).status for _ in range(2)] == [
        "ok",
        "limited",
    ]
    await asyncio.sleep(0.4)
    assert (await ks.tokens.authorize(alice, "read", short)).status == "ok"


async def test_the_tighter_limit_is_reported_and_a_refusal_counts_against_neither(
    ks: Keyspace,
) -> None:
    alice = await token(ks, "Alice")
    count = keys.endpoint_rate_key("user_1", EP)
    # GCRA allows 2 a minute, the endpoint 10 an hour: GCRA is tighter and refuses the third.
    loose = limits(10, read=2)
    first = await ks.tokens.authorize(alice, "read", loose)
    assert (first.status, first.limit, first.remaining) == ("ok", 2, 1)
    second = await ks.tokens.authorize(alice, "read", loose)
    assert (second.status, second.limit, second.remaining) == ("ok", 2, 0)
    third = await ks.tokens.authorize(alice, "read", loose)
    assert (third.status, third.limit) == ("limited", 2)
    assert await ks.client.get(count) == b"2"
    # The endpoint is tighter for Bob: it reports and refuses, and GCRA's budget is untouched.
    bob = await token(ks, "Bob")
    tight = limits(1, read=2)
    assert (await ks.tokens.authorize(bob, "read", tight)).limit == 1
    refused = await ks.tokens.authorize(bob, "read", tight)
    assert (refused.status, refused.limit) == ("limited", 1)
    assert (await ks.tokens.authorize(bob, "read", Limits(designer_read=2))).remaining == 0


async def test_admins_are_not_limited_per_endpoint(ks: Keyspace) -> None:
    root = await token(ks, "Root", role="admin")
    operator = new_token()
    ks.tokens.configure_operator(operator)
    for each in (root, operator):
        statuses = [(await ks.tokens.authorize(each, "read", limits(1))).status for _ in range(3)]
        assert statuses == ["ok", "ok", "ok"]
    assert not await ks.client.exists(keys.endpoint_rate_key("user_1", EP))


async def test_the_prefetched_document_follows_the_endpoint_keys(ks: Keyspace) -> None:
    alice = await token(ks, "Alice")
    user_key = keys.doc_key("user", "user_1")
    decision = await ks.tokens.authorize(alice, "read", limits(2), prefetch=user_key)
    assert decision.status == "ok"
    assert decision.prefetched is not None
    assert json.loads(decision.prefetched)["user_id"] == "user_1"
