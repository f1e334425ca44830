"""Derived ids (NFTs: ``nft_<user_id>_<chip_id>``): one document per (user, chip) pair, and
two pairs that derive one id are refused as an id collision, never as "already exists"."""

from __future__ import annotations

import pytest

from keyspace import NFT, USER, Conflict, Keyspace
from keyspace.connection import call
from tests import factories as f
from tests.redis_state import snapshot_by_reads

COLLIDING = "nft_user_1_2_c"  # user_1 + 2_c and user_1_2 + c both derive it
FIRST = "mf:uniq:nft:user_id+chip_id:8:user_1_2,1:c,"
SECOND = "mf:uniq:nft:user_id+chip_id:6:user_1,3:2_c,"


async def two_users(ks: Keyspace) -> None:
    await f.user(ks, "One")  # user_1
    await f.user(ks, "Two", user_id="user_1_2")


async def test_a_colliding_pair_is_an_id_collision_and_writes_nothing(ks: Keyspace) -> None:
    await two_users(ks)
    minted = await f.nft(ks, "user_1_2", chip_id="c")
    assert minted.doc["nft_id"] == COLLIDING
    assert await ks.client.get(FIRST) == COLLIDING.encode()
    before = await snapshot_by_reads(ks.client)
    assert {f"nft:{COLLIDING}".encode(), FIRST.encode(), b"nft_counter"} <= before.keys()

    with pytest.raises(Conflict) as err:
        await f.nft(ks, "user_1", chip_id="2_c")

    assert err.value.code == "id_collision"
    assert err.value.details == {
        "field": "nft_id",
        "id": COLLIDING,
        "requested": {"user_id": "user_1", "chip_id": "2_c"},
        "existing": {"user_id": "user_1_2", "chip_id": "c"},
    }
    assert "user_1_2" in err.value.message and "'2_c'" in err.value.message
    assert await snapshot_by_reads(ks.client) == before  # no document, claim, ref or counter change
    assert (await ks.get(NFT, COLLIDING)).doc == minted.doc


async def test_the_same_pair_twice_already_exists(ks: Keyspace) -> None:
    await two_users(ks)
    minted = await f.nft(ks, "user_1", chip_id="2_c")
    before = await snapshot_by_reads(ks.client)
    with pytest.raises(Conflict) as err:
        await f.nft(ks, "user_1", chip_id="2_c")
    assert err.value.code == "already_exists"
    assert err.value.details == {
        "field": "nft_id",
        "id": COLLIDING,
        "requested": {"user_id": "user_1", "chip_id": "2_c"},
    }
    assert await snapshot_by_reads(ks.client) == before
    assert (await ks.get(NFT, COLLIDING)).doc == minted.doc


async def test_the_pair_is_claimed_for_the_life_of_its_nft(ks: Keyspace) -> None:
    """The claim names the pair unambiguously: the colliding pairs get distinct claims,
    the claim lives and dies with its NFT, and a freed id serves the other pair."""
    await two_users(ks)
    await f.nft(ks, "user_1_2", chip_id="c")
    assert await ks.client.get(FIRST) == COLLIDING.encode()
    assert await ks.client.exists(SECOND) == 0
    await ks.patch(NFT, COLLIDING, {"metadata_uri": "ipfs://elsewhere"})  # claims untouched
    assert await ks.client.get(FIRST) == COLLIDING.encode()

    assert await ks.delete(NFT, COLLIDING) == 1
    assert await ks.client.exists(FIRST) == 0
    other = await f.nft(ks, "user_1", chip_id="2_c")
    assert (other.doc["nft_id"], other.doc["user_id"], other.doc["chip_id"]) == (
        COLLIDING,
        "user_1",
        "2_c",
    )
    assert await ks.client.get(SECOND) == COLLIDING.encode()
    assert await ks.client.exists(FIRST) == 0
    with pytest.raises(Conflict) as err:  # and now the first pair is the one refused
        await f.nft(ks, "user_1_2", chip_id="c")
    assert err.value.code == "id_collision"

    assert await ks.delete(USER, "user_1") == 2  # the cascade releases the pair claim too
    assert await ks.client.exists(SECOND) == 0


async def test_a_pair_held_under_another_id_is_refused(ks: Keyspace) -> None:
    """One NFT per pair holds on the pair itself, not only through the id built from it."""
    await two_users(ks)
    await ks.client.set(SECOND, "nft_elsewhere")  # e.g. an NFT of an older id scheme
    before = await snapshot_by_reads(ks.client)
    with pytest.raises(Conflict) as err:
        await f.nft(ks, "user_1", chip_id="2_c")
    assert (err.value.code, err.value.details["id"]) == ("already_exists", "nft_elsewhere")
    assert await snapshot_by_reads(ks.client) == before


async def test_an_nft_from_before_the_pair_claims_still_answers_right(ks: Keyspace) -> None:
    """Without its claim (stored before this release, until ``check --repair`` adds it),
    the id's holder is read: the same pair is already_exists, another pair a collision."""
    await two_users(ks)
    await f.nft(ks, "user_1_2", chip_id="c")
    await ks.client.delete(FIRST)
    with pytest.raises(Conflict) as err:
        await f.nft(ks, "user_1", chip_id="2_c")
    assert err.value.code == "id_collision"
    with pytest.raises(Conflict) as err:
        await f.nft(ks, "user_1_2", chip_id="c")
    assert err.value.code == "already_exists"
    assert await call(ks.client, "JSON.GET", f"nft:{COLLIDING}", "$.user_id") == b'["user_1_2"]'
    assert await ks.client.exists(FIRST, SECOND) == 0


async def test_the_codes_are_their_own_exception_types(ks: Keyspace) -> None:
    from keyspace import AlreadyExists, IdCollision  # new in this change: imported here so
    # that the tests above run (and fail) against the code before it

    await two_users(ks)
    await f.nft(ks, "user_1_2", chip_id="c")
    with pytest.raises(IdCollision):
        await f.nft(ks, "user_1", chip_id="2_c")
    with pytest.raises(AlreadyExists) as err:
        await f.nft(ks, "user_1_2", chip_id="c")
    assert not isinstance(err.value, IdCollision)
