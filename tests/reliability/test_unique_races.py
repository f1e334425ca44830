"""Scenario 1 of issue 7: unique races through HTTP.

Many clients on two app instances (one Redis, as two server processes would share it) claim
colliding emails and usernames in case variants at the same instant. Exactly one document
holds each value, every loser gets a 409 naming the field, nothing is half-written, and the
claim keys correspond one to one with the documents."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from redis.asyncio import Redis

from keyspace import codec
from keyspace.server import EmbeddedRedis

from .conftest import Figures
from .helpers_races import (
    Reply,
    Session,
    assert_consistent,
    claims,
    counter,
    gather_all,
    raw_documents,
    scan,
    sessions,
)

pytestmark = pytest.mark.redis


def _variants(word: str) -> list[str]:
    return [word, word.upper(), word.lower(), word.swapcase(), word[:1].lower() + word[1:]]


def username_of(group: int, variant: int) -> str:
    # One group races on ß against SS: different code points, equal under casefold.
    word = "Straße" if group == 7 else f"Racer{group}"
    words = ["Straße", "STRASSE", "strasse", "StraSSe", "straße"] if group == 7 else None
    return (words or _variants(word))[variant % 5]


def email_of(group: int, variant: int) -> str:
    return _variants(f"Racer{group}@Race.Example")[variant % 5]


@dataclass(frozen=True)
class Attempt:
    """One create; ``kind`` 0 collides on both values, 1 only on the username, 2 only on the
    email (kinds cycle independently of groups, so each group sees every kind). Kinds 1 and 2
    fail only when their colliding value is held, so every colliding value ends up held by
    exactly one document."""

    number: int
    group: int
    kind: int

    @property
    def body(self) -> dict[str, Any]:
        username = username_of(self.group, self.number)
        email = email_of(self.group, self.number + 1)
        if self.kind == 1:
            email = f"solo{self.number}@solo.example"
        if self.kind == 2:
            username = f"Solo{self.number}"
        return {"username": username, "email": email, "role": "engineer"}


def plan_attempts(clients: int, rounds: int, groups: int) -> list[list[Attempt]]:
    """Attempts per round; in each round client ``c`` makes attempt ``rounds[r][c]``."""
    out = []
    for r in range(rounds):
        row = []
        for c in range(clients):
            number = r * clients + c
            row.append(Attempt(number, number % groups, number % 3))
        out.append(row)
    return out


async def race_rounds(
    clients: list[Session], rounds: list[list[Attempt]]
) -> list[tuple[Attempt, Reply]]:
    """Every client sends its attempt of a round at the same moment (a barrier per round)."""
    barrier = asyncio.Barrier(len(clients))

    async def client(index: int, session: Session) -> list[tuple[Attempt, Reply]]:
        done = []
        for row in rounds:
            await barrier.wait()
            attempt = row[index]
            done.append((attempt, await session.create("user", attempt.body)))
        return done

    per_client = await gather_all(client(i, s) for i, s in enumerate(clients))
    return [pair for done in per_client for pair in done]


def claim_of(field: str, value: str) -> str:
    return f"mf:uniq:user:{field}:{value.casefold()}"


async def _serve_two(redis_server: EmbeddedRedis, live_app: Callable[..., Any]) -> list[str]:
    first, second = await live_app(redis_server.url), await live_app(redis_server.url)
    return [first.base_url, second.base_url]


@pytest.mark.parametrize(
    ("clients", "rounds", "groups"),
    [
        pytest.param(50, 4, 20, id="50-clients"),
        pytest.param(200, 10, 100, id="200-clients", marks=pytest.mark.soak),
    ],
)
async def test_concurrent_creates_have_one_winner_per_value(
    real_client: Redis,
    redis_server: EmbeddedRedis,
    live_app: Callable[..., Any],
    figures: Figures,
    clients: int,
    rounds: int,
    groups: int,
) -> None:
    urls = await _serve_two(redis_server, live_app)
    plan = plan_attempts(clients, rounds, groups)
    started = time.perf_counter()
    async with sessions(urls, clients) as opened:
        results = await race_rounds(opened, plan)
    elapsed = time.perf_counter() - started

    raws = await raw_documents(real_client, "user")
    held = await claims(real_client)
    winners = {r.body["user_id"]: (a, r) for a, r in results if r.status == 201}
    losers = [(a, r) for a, r in results if r.status != 201]

    # Nothing partial: the documents are exactly the 201s, each stored as it was answered.
    assert sorted(raws) == sorted(winners)
    for user_id, (attempt, reply) in winners.items():
        assert (
            reply.body
            == codec.loads(raws[user_id])
            == {
                **attempt.body,
                "user_id": user_id,
                "created_at": reply.body["created_at"],
            }
        )
        assert reply.etag == f'"{codec.revision(raws[user_id])}"'

    # Every loser is a 409 naming a field whose value another document really holds.
    for attempt, reply in losers:
        assert reply.status == 409, reply
        assert reply.code == "unique_conflict", reply
        field = reply.body["error"]["details"]["field"]
        assert field in ("email", "username"), reply
        owner = held.get(claim_of(field, attempt.body[field]))
        assert owner in winners, (attempt, reply, owner)

    # One winner per value: each colliding value (casefolded) held by exactly one document.
    docs = await assert_consistent(real_client)
    for field, make in (("username", username_of), ("email", email_of)):
        holders = Counter(doc[field].casefold() for doc in docs["user"].values())
        for group in range(groups):
            assert holders[make(group, 0).casefold()] == 1, (field, group)
        assert all(n == 1 for n in holders.values())

    # The script draws the id only after the claims passed: refused creates burn no number.
    attempts = clients * rounds
    assert await counter(real_client, "user") == len(winners)
    assert sorted(winners) == sorted(f"user_{n}" for n in range(1, len(winners) + 1))
    assert await scan(real_client, "mf:ref:*") == []

    figures.record(
        f"unique races, creates ({clients} clients, 2 apps)",
        ops=attempts,
        winners=len(winners),
        conflicts=len(losers),
        contested_values=2 * groups,
        claims=len(held),
        losses=0,
        seconds=round(elapsed, 2),
    )


async def test_concurrent_renames_move_claims_exactly(
    real_client: Redis,
    redis_server: EmbeddedRedis,
    live_app: Callable[..., Any],
    figures: Figures,
) -> None:
    """Renames claim a new value and release the old one in one commit: while some users race
    for the same new names, others race for names being released at that moment."""
    urls = await _serve_two(redis_server, live_app)
    users = 35
    async with sessions(urls, users) as opened:
        made = await gather_all(
            s.created(
                "user",
                {"username": f"Old{i}", "email": f"old{i}@rename.example", "role": "designer"},
            )
            for i, s in enumerate(opened)
        )
        ids = [doc["user_id"] for doc in made]
        before = await raw_documents(real_client, "user")

        def change(i: int) -> dict[str, str]:
            if i < 12:  # four users per hot name, in case variants
                return {"username": _variants(f"Hot{i % 3}")[i % 5]}
            if i < 20:  # the names of users 0..7, which they give up only if they win a hot one
                return {"username": f"OLD{i - 12}"}
            if i < 25:  # the emails users 25..29 are giving up right now
                return {"email": f"OLD{i + 5}@Rename.Example"}
            if i < 30:
                return {"email": f"moved{i}@rename.example"}
            return {"email": f"OLD{i - 30}@RENAME.example"}  # never released

        barrier = asyncio.Barrier(users)

        async def rename(i: int, session: Session) -> Reply:
            await barrier.wait()
            return await session.call("PATCH", f"/api/users/{ids[i]}", json=change(i))

        replies = await gather_all(rename(i, s) for i, s in enumerate(opened))

    after = await raw_documents(real_client, "user")
    assert sorted(after) == sorted(ids)
    for i, reply in enumerate(replies):
        if reply.status == 200:
            assert reply.body == codec.loads(after[ids[i]])
            assert {k: reply.body[k] for k in change(i)} == change(i)
        else:  # a refused rename leaves the document byte for byte as it was
            assert (reply.status, reply.code) == (409, "unique_conflict"), reply
            assert reply.body["error"]["details"]["field"] == next(iter(change(i))), reply
            assert after[ids[i]] == before[ids[i]]
    docs = await assert_consistent(real_client)
    ok = [r.status == 200 for r in replies]
    assert sum(ok[:12]) == 3  # one winner per hot name
    for hot in range(3):
        holders = [d for d in docs["user"].values() if d["username"].casefold() == f"hot{hot}"]
        assert len(holders) == 1, hot
    for k in range(8):  # a released name can only have been taken after its release
        assert not ok[12 + k] or ok[k], k
    assert all(ok[25:30]) and not any(ok[30:])
    conflicts = users - sum(ok)
    figures.record(
        "unique races, renames (35 clients, 2 apps)",
        ops=users,
        winners=sum(ok),
        conflicts=conflicts,
        released_then_taken=sum(ok[12:25]),
        claims=len(await claims(real_client)),
        losses=0,
    )
