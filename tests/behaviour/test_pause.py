"""The pause key (issue 21, item 5): while it exists every write script and every
authorization is refused, whoever asks and whenever the request was authorized, and
nothing is written."""

from __future__ import annotations

import pytest

from keyspace import DRIVER, USER, Keyspace, keys
from keyspace.errors import Paused
from keyspace.tokens import Limits, TokenKind
from tests import factories as f
from tests.redis_state import snapshot_by_reads

OPERATOR_TOKEN = "pause-test-operator-token-0123456789abcdef"


async def pause(ks: Keyspace) -> None:
    await ks.client.set(keys.pause_key(), '{"command": "test"}')


async def test_every_write_is_refused_while_paused_and_writes_nothing(ks: Keyspace) -> None:
    user = await f.user(ks, "Ada")
    driver = await f.driver(ks, "user_1")
    minted = await ks.tokens.mint("user_1", user.raw, TokenKind.API_KEY)
    await pause(ks)
    before = await snapshot_by_reads(ks.client)
    writes = [
        ks.create(USER, {"username": "Bob", "email": "bob@x.io", "role": "designer"}),
        ks.create(
            USER, {"user_id": "user_9", "username": "Eve", "email": "e@x.io", "role": "admin"}
        ),
        ks.patch(DRIVER, "driver_1", {"version": "9.9"}),
        ks.replace(DRIVER, "driver_1", {**driver.doc, "version": "9.8"}),
        ks.delete(USER, "user_1"),
        ks.patch_config({"subscription_price": 1}),
        ks.set_chip_metrics("chip_x", {"performance": 1, "efficiency": 1, "temperature": 1}),
        ks.tokens.mint("user_1", user.raw),
        ks.tokens.revoke(minted.token, "user_1"),
    ]
    for write in writes:
        with pytest.raises(Paused):
            await write
    assert await snapshot_by_reads(ks.client) == before
    await ks.client.delete(keys.pause_key())
    await ks.patch(DRIVER, "driver_1", {"version": "9.9"})  # served again


async def test_a_write_prepared_before_the_pause_does_not_commit_after_it(ks: Keyspace) -> None:
    await f.user(ks, "Ada")
    body = {"user_id": "user_1", "chip_id": "c", "chip_data": f.chip(), "version": "1"}
    prepared = ks.prepare_create(DRIVER, body)
    await pause(ks)
    with pytest.raises(Paused):
        await ks.commit(prepared.plan)
    assert not await ks.client.exists("driver:driver_1", "driver_counter")


async def test_every_caller_is_refused_while_paused(ks: Keyspace) -> None:
    """Known tokens, unknown tokens (a keyspace being restored may have lost them) and the
    operator's token alike: the decision is 'paused', and no rate state is counted."""
    user = await f.user(ks, "Ada", role="admin")
    minted = await ks.tokens.mint("user_1", user.raw, TokenKind.API_KEY)
    ks.tokens.configure_operator(OPERATOR_TOKEN)
    limits = Limits(admin_read=100, admin_write=100)
    assert (await ks.tokens.authorize(minted.token, "read", limits)).status == "ok"
    await pause(ks)
    before = await snapshot_by_reads(ks.client)
    for token in (minted.token, "mf_no_such_token", OPERATOR_TOKEN):
        for route_class in ("read", "write", "mint"):
            decision = await ks.tokens.authorize(token, route_class, limits)
            assert decision.status == "paused", (token, route_class)
    assert await snapshot_by_reads(ks.client) == before
    await ks.client.delete(keys.pause_key())
    assert (await ks.tokens.authorize("mf_no_such_token", "read", limits)).status == "unknown"
    assert (await ks.tokens.authorize(minted.token, "write", limits)).status == "ok"
