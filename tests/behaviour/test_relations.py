"""References: existence checks, cascades, pulls and collab membership."""

from __future__ import annotations

import pytest

from keyspace import (
    COLLAB,
    DRIVER,
    NFT,
    PROCESS,
    QUEST,
    USER,
    Keyspace,
    MissingReference,
    NotFound,
    keys,
)
from keyspace.deletes import plan_fence
from keyspace.keys import SEED_NAMES
from tests import factories as f


async def test_deleting_a_user_cascades_and_pulls(ks: Keyspace) -> None:
    await f.user(ks, "Owner")
    await f.user(ks, "Member")
    await f.driver(ks, "user_1")
    await f.process(ks, "user_1")
    await f.nft(ks, "user_1")
    await f.quest(ks, "user_1", "Quantum Chip Design")
    await f.collab(ks, "user_1", ["user_2"])
    await f.collab(ks, "user_2", ["user_1"])
    deleted = await ks.delete(USER, "user_1")
    assert deleted == 6
    for key in ("user:user_1", "driver:driver_1", "process:process_1", "collab:collab_1"):
        assert await ks.client.exists(key) == 0, key
    assert await ks.client.exists("nft:nft_user_1_chip_quantum_1", "quest:quest_1") == 0
    remaining = await ks.get(COLLAB, "collab_2")
    assert remaining.doc["collaborators"] == []
    leftovers = [k async for k in ks.client.scan_iter(match="mf:ref:user:user_1:*")]
    assert leftovers == []
    assert await ks.client.smembers("mf:ref:user:user_2:collab.user_id") == {b"collab_2"}
    assert await ks.client.smembers("mf:ref:user:user_2:collab.collaborators") == set()


async def test_reference_sets_follow_updates(ks: Keyspace) -> None:
    await f.user(ks, "A")
    await f.user(ks, "B")
    await f.driver(ks, "user_1")
    await ks.patch(DRIVER, "driver_1", {"user_id": "user_2"})
    assert await ks.client.smembers("mf:ref:user:user_1:driver.user_id") == set()
    assert await ks.client.smembers("mf:ref:user:user_2:driver.user_id") == {b"driver_1"}
    with pytest.raises(MissingReference):
        await ks.patch(DRIVER, "driver_1", {"user_id": "user_9"})
    await ks.delete(USER, "user_2")
    assert await ks.client.exists("driver:driver_1") == 0


async def test_collab_membership_is_atomic_and_never_duplicates(ks: Keyspace) -> None:
    for name in ("A", "B", "C"):
        await f.user(ks, name)
    await f.collab(ks, "user_1", ["user_2"])
    await ks.add_member(COLLAB, "collab_1", "collaborators", "user_3")
    again = await ks.add_member(COLLAB, "collab_1", "collaborators", "user_3")
    assert again.doc["collaborators"] == ["user_2", "user_3"]
    assert await ks.client.smembers("mf:ref:user:user_3:collab.collaborators") == {b"collab_1"}
    with pytest.raises(MissingReference):
        await ks.add_member(COLLAB, "collab_1", "collaborators", "user_99")
    removed = await ks.remove_member(COLLAB, "collab_1", "collaborators", "user_2")
    assert removed.doc["collaborators"] == ["user_3"]
    assert await ks.client.smembers("mf:ref:user:user_2:collab.collaborators") == set()
    with pytest.raises(NotFound):
        await ks.remove_member(COLLAB, "collab_1", "collaborators", "user_2")


async def test_every_entity_refers_to_an_existing_owner(ks: Keyspace) -> None:
    await f.user(ks, "A")
    for spec, data in (
        (PROCESS, {"user_id": "user_2", "chip_data": f.chip()}),
        (QUEST, {"user_id": "user_2", "title": "t", "reward": "r"}),
        (NFT, {"user_id": "user_2", "chip_id": "c", "owner": "0x" + "a" * 40}),
    ):
        with pytest.raises(MissingReference):
            await ks.create(spec, data)
    assert [k async for k in ks.client.scan_iter(match="process:*")] == []


async def test_a_delete_fence_refuses_new_references_until_lowered(ks: Keyspace) -> None:
    owner = await f.user(ks, "Owner")
    fence = plan_fence(SEED_NAMES, ["user:user_1"], 30_000, up=True)
    assert (await ks.commit(fence)).ok
    with pytest.raises(MissingReference):
        await f.driver(ks, owner.doc["user_id"])
    assert 0 < await ks.client.pttl(keys.delete_fence("user:user_1")) <= 30_000
    await ks.commit(plan_fence(SEED_NAMES, ["user:user_1"], 30_000, up=False))
    assert (await f.driver(ks, owner.doc["user_id"])).doc["driver_id"] == "driver_1"
    assert await ks.delete(USER, "user_1") == 2
    assert await ks.client.exists(keys.delete_fence("user:user_1")) == 0
