"""Races on the real server: uniques, merges, membership, cascades."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from redis.asyncio import Redis

from keyspace import COLLAB, DRIVER, USER, Keyspace, KeyspaceError, UniqueConflict
from tests import factories as f

pytestmark = pytest.mark.redis


@pytest.fixture
async def ks(real_client: Redis) -> Keyspace:
    keyspace = Keyspace(real_client)
    await keyspace.setup()
    return keyspace


async def test_concurrent_unique_claims_have_one_winner_each(ks: Keyspace) -> None:
    async def attempt(i: int) -> str:
        name = f"Racer{i % 20}"
        email = f"RACER{i % 20}@x.io" if i % 2 else f"racer{i % 20}@x.io"
        try:
            made = await ks.create(
                USER,
                {"username": name if i < 50 else name.upper(), "email": email, "role": "engineer"},
            )
            return str(made.doc["user_id"])
        except UniqueConflict:
            return "conflict"

    results = await asyncio.gather(*(attempt(i) for i in range(100)))
    winners = [r for r in results if r != "conflict"]
    assert len(winners) == 20
    claims = [k async for k in ks.client.scan_iter(match="mf:uniq:user:*")]
    assert len(claims) == 40
    docs = [k async for k in ks.client.scan_iter(match="user:*")]
    assert sorted(d.decode().split(":")[1] for d in docs) == sorted(winners)


async def test_concurrent_merges_on_disjoint_fields_are_all_kept(ks: Keyspace) -> None:
    await f.user(ks, "A")
    await f.driver(ks, "user_1")
    changes = [
        {"version": "9.9.9"},
        {"chip_id": "chip_z"},
        {"status": "optimized"},
        {"chip_data": {"cores": 512}},
        {"chip_data": {"architecture": "Z"}},
    ]
    await asyncio.gather(*(ks.patch(DRIVER, "driver_1", c) for c in changes))
    doc = (await ks.get(DRIVER, "driver_1")).doc
    assert doc["version"] == "9.9.9" and doc["chip_id"] == "chip_z" and doc["status"] == "optimized"
    assert doc["chip_data"]["cores"] == 512 and doc["chip_data"]["architecture"] == "Z"


async def test_only_one_conditional_write_per_revision_wins(ks: Keyspace) -> None:
    made = await f.user(ks, "A")

    async def attempt(i: int) -> bool:
        try:
            await ks.patch(USER, "user_1", {"username": f"N{i}"}, if_revision=made.revision)
            return True
        except KeyspaceError:
            return False

    assert sum(await asyncio.gather(*(attempt(i) for i in range(20)))) == 1


async def test_concurrent_member_adds_lose_nothing(ks: Keyspace) -> None:
    for i in range(21):
        await f.user(ks, f"U{i}")
    await f.collab(ks, "user_1", [])
    members = [f"user_{i}" for i in range(2, 22)]
    await asyncio.gather(
        *(ks.add_member(COLLAB, "collab_1", "collaborators", m) for m in members + members)
    )
    doc = (await ks.get(COLLAB, "collab_1")).doc
    assert sorted(doc["collaborators"]) == sorted(members)


async def test_deletes_racing_creates_leave_no_dangling_reference(ks: Keyspace) -> None:
    for i in range(10):
        await f.user(ks, f"U{i}")

    async def create(owner: str) -> None:
        with contextlib.suppress(KeyspaceError):
            await f.driver(ks, owner)

    creates = [create(f"user_{i % 10 + 1}") for i in range(40)]
    deletes = [ks.delete(USER, f"user_{i}") for i in range(1, 11, 2)]
    await asyncio.gather(*creates, *deletes)
    async for key in ks.client.scan_iter(match="driver:*"):
        doc = (await ks.get(DRIVER, key.decode().split(":", 1)[1])).doc
        assert await ks.client.exists(f"user:{doc['user_id']}") == 1, doc
        members = await ks.client.smembers(f"mf:ref:user:{doc['user_id']}:driver.user_id")
        assert doc["driver_id"].encode() in members
