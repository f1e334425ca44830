"""Tokens on every backend: per-user rate budgets, the operator's token recognised in process
and never stored, a token's owner re-resolved when the cached one is wrong, and the removal of
operator tokens older versions stored."""

from __future__ import annotations

import pytest

from keyspace import USER, Keyspace, keys
from keyspace.tokens import OPERATOR, Limits, TokenKind, new_token, token_hash
from tests import factories as f

LIMITS = Limits(designer_read=3, engineer_read=3, admin_read=2, designer_mint=1)


async def minted(ks: Keyspace, name: str, count: int, role: str = "designer") -> list[str]:
    user = await f.user(ks, name, role=role)
    user_id = str(user.doc["user_id"])
    return [
        (await ks.tokens.mint(user_id, user.raw, TokenKind.API_KEY)).token for _ in range(count)
    ]


async def statuses(ks: Keyspace, tokens: list[str], route_class: str = "read") -> list[str]:
    return [(await ks.tokens.authorize(t, route_class, LIMITS)).status for t in tokens]


async def test_every_token_of_a_user_draws_on_one_budget(ks: Keyspace) -> None:
    alice = await minted(ks, "Alice", 4)
    bob = await minted(ks, "Bob", 1)
    assert await statuses(ks, alice) == ["ok", "ok", "ok", "limited"]
    assert await statuses(ks, alice[:1]) == ["limited"]
    assert await statuses(ks, bob) == ["ok"]
    assert await ks.client.exists(keys.rate_key("user_1", "read"))
    assert not await ks.client.exists(keys.rate_key(token_hash(alice[0]), "read"))


async def test_minting_has_its_own_budget(ks: Keyspace) -> None:
    alice = await minted(ks, "Alice", 2)
    assert await statuses(ks, alice, "mint") == ["ok", "limited"]
    assert await statuses(ks, alice, "read") == ["ok", "ok"]  # untouched by the mints
    decision = await ks.tokens.authorize(alice[0], "mint", LIMITS)
    assert (decision.limit, decision.remaining) == (1, 0)
    assert decision.retry_after_ms > 0


async def test_the_operator_token_is_an_admin_only_while_configured(ks: Keyspace) -> None:
    operator, rotated = new_token(), new_token()
    assert (await ks.tokens.authorize(operator, "write", LIMITS)).status == "unknown"
    ks.tokens.configure_operator(operator)
    decision = await ks.tokens.authorize(operator, "write", LIMITS)
    assert (decision.status, decision.user_id, decision.role) == ("ok", OPERATOR, "admin")
    assert ks.tokens.is_operator(token_hash(operator))
    assert not await ks.client.exists(keys.token_key(token_hash(operator)))
    ks.tokens.configure_operator(rotated)
    assert (await ks.tokens.authorize(operator, "read", LIMITS)).status == "unknown"
    assert (await ks.tokens.authorize(rotated, "read", LIMITS)).status == "ok"
    ks.tokens.configure_operator(None)
    assert (await ks.tokens.authorize(rotated, "read", LIMITS)).status == "unknown"


async def test_a_user_named_admin_shares_the_operators_budget_but_not_its_role(
    ks: Keyspace,
) -> None:
    operator = new_token()
    ks.tokens.configure_operator(operator)
    user = await ks.create(
        USER, {"user_id": OPERATOR, "username": "Root", "email": "r@x.io", "role": "engineer"}
    )
    own = (await ks.tokens.mint(OPERATOR, user.raw)).token
    assert (await ks.tokens.authorize(own, "read", LIMITS)).role == "engineer"
    assert (await ks.tokens.authorize(operator, "read", LIMITS)).role == "admin"
    # One GCRA state for user id "admin": a third of a period used by the engineer's read,
    # half by the admin's (limits 3 and 2), so neither has room for another.
    assert await statuses(ks, [operator, own]) == ["limited", "limited"]


async def test_a_token_found_under_another_user_is_counted_for_that_user(ks: Keyspace) -> None:
    (token,) = await minted(ks, "Alice", 1)
    await minted(ks, "Bob", 0)
    assert (await ks.tokens.authorize(token, "read", LIMITS)).user_id == "user_1"  # cached
    # The owner the client cached is no longer the token's: the script says so ('moved'),
    # nothing is counted on the wrong user, and the client asks again with the right key.
    await ks.client.hset(keys.token_key(token_hash(token)), "user_id", "user_2")
    decision = await ks.tokens.authorize(token, "read", LIMITS)
    assert (decision.status, decision.user_id, decision.remaining) == ("ok", "user_2", 2)
    assert (await ks.tokens.authorize(token, "read", LIMITS)).remaining == 1
    alice_state = await ks.client.get(keys.rate_key("user_1", "read"))
    await ks.client.hset(keys.token_key(token_hash(token)), "user_id", "user_1")
    assert (await ks.tokens.authorize(token, "read", LIMITS)).remaining == 1
    assert await ks.client.get(keys.rate_key("user_1", "read")) != alice_state


async def test_a_revoked_token_is_unknown_although_its_owner_was_cached(ks: Keyspace) -> None:
    (token,) = await minted(ks, "Alice", 1)
    assert (await ks.tokens.authorize(token, "read", LIMITS)).status == "ok"
    await ks.client.delete(keys.token_key(token_hash(token)))  # revoked by another process
    assert (await ks.tokens.authorize(token, "read", LIMITS)).status == "unknown"


async def legacy_grant(ks: Keyspace, token: str) -> str:
    """What an older version stored for the operator's token at start-up."""
    key = keys.token_key(token_hash(token))
    await ks.client.hset(key, mapping={"user_id": OPERATOR, "role": "admin", "kind": "api_key"})
    await ks.client.sadd(keys.user_tokens_key(OPERATOR), token_hash(token))
    return key


@pytest.mark.parametrize("configured", [None, "other"])
async def test_stored_operator_tokens_without_a_user_admin_are_retired(
    ks: Keyspace, configured: str | None
) -> None:
    old = [new_token(), new_token()]
    stored = [await legacy_grant(ks, token) for token in old]
    assert (await ks.tokens.authorize(old[0], "read", LIMITS)).status == "ok"  # before
    assert await ks.tokens.retire_operator_tokens(configured) == 2
    assert not await ks.client.exists(*stored, keys.user_tokens_key(OPERATOR))
    assert await statuses(ks, old) == ["unknown", "unknown"]
    assert await ks.tokens.retire_operator_tokens(configured) == 0


async def test_with_a_user_admin_only_the_configured_value_is_retired(ks: Keyspace) -> None:
    user = await ks.create(
        USER, {"user_id": OPERATOR, "username": "Root", "email": "r@x.io", "role": "admin"}
    )
    own = (await ks.tokens.mint(OPERATOR, user.raw, TokenKind.API_KEY)).token
    configured = new_token()
    await legacy_grant(ks, configured)
    assert await ks.tokens.retire_operator_tokens(configured) == 1
    assert await statuses(ks, [configured, own]) == ["unknown", "ok"]
    assert await ks.client.smembers(keys.user_tokens_key(OPERATOR)) == {token_hash(own).encode()}
