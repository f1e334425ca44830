"""Claims of the values a derived id is built from: key names, parsing, and write plans."""

from __future__ import annotations

import dataclasses

import pytest

from keyspace import claims, keys
from keyspace.deletes import DeleteClosure, plan_delete
from keyspace.keys import SEED_NAMES
from keyspace.plan import plan_create, plan_update
from keyspace.systems.multiframe.entities import MULTIFRAME, NFT, USER
from tests.unit.test_plan import decode, loaded

PAIR = "mf:uniq:nft:user_id+chip_id:6:user_1,3:2_c,"


def nft(user_id: str, chip_id: str) -> dict[str, str]:
    return {
        "nft_id": f"nft_{user_id}_{chip_id}",
        "user_id": user_id,
        "chip_id": chip_id,
        "metadata_uri": "ipfs://m",
        "owner": "0x" + "ab" * 20,
    }


def test_pairs_that_derive_one_id_get_distinct_claims() -> None:
    one, other = nft("user_1", "2_c"), nft("user_1_2", "c")
    assert NFT.derive_id is not None and NFT.derive_id(one) == NFT.derive_id(other)
    assert claims.held(SEED_NAMES, NFT, one) == {PAIR: "user_id+chip_id"}
    assert claims.held(SEED_NAMES, NFT, other) == {
        "mf:uniq:nft:user_id+chip_id:8:user_1_2,1:c,": "user_id+chip_id"
    }


@pytest.mark.parametrize(
    "values", [["user_1", "2_c"], ["", ""], ["a,b", "1:c"], ["x" * 300, "é"], [",", ":"]]
)
def test_source_values_invert_the_claim_key(values: list[str]) -> None:
    key = keys.source_claim_key("nft", dict(zip(("user_id", "chip_id"), values, strict=True)))
    assert keys.source_values(key.split(":", 4)[4]) == values
    assert claims.parse(MULTIFRAME, key) == claims.Claim(NFT, "user_id+chip_id")


@pytest.mark.parametrize(
    "key",
    [
        "mf:uniq:nft:user_id+chip_id:6:user_1,",  # one value of two
        "mf:uniq:nft:user_id+chip_id:6:user_1,3:2_c,1:x,",  # three
        "mf:uniq:nft:user_id+chip_id:06:user_1,3:2_c,",  # another spelling of the length
        "mf:uniq:nft:user_id+chip_id:7:user_1,3:2_c,",  # a wrong length
        "mf:uniq:nft:user_id+chip_id:6:user_1,3:2_c",  # no terminator
        "mf:uniq:nft:chip_id+user_id:6:user_1,3:2_c,",  # fields in another order
        "mf:uniq:user:user_id+chip_id:6:user_1,3:2_c,",  # an entity without derived ids
    ],
)
def test_malformed_source_claims_are_unknown(key: str) -> None:
    assert claims.parse(MULTIFRAME, key) is None


def test_unique_claims_still_parse() -> None:
    assert claims.parse(MULTIFRAME, "mf:uniq:user:email:a@b.io") == claims.Claim(USER, "email")
    assert claims.parse(MULTIFRAME, "mf:uniq:user:email:A@b.io") is None  # not normalized


def test_derive_id_needs_its_fields_declared() -> None:
    with pytest.raises(AssertionError, match="derived_from"):
        dataclasses.replace(NFT, derived_from=())
    with pytest.raises(AssertionError, match="derived_from"):
        dataclasses.replace(USER, derived_from=("email",))


def test_nft_plans_claim_hold_and_release_the_pair() -> None:
    doc = nft("user_1", "2_c")
    checks, writes = decode(plan_create(MULTIFRAME, NFT, doc["nft_id"], doc, explicit_id=True))
    assert checks[0] == ("absent", "nft:nft_user_1_2_c")  # the id first: collision or exists
    assert ("free", PAIR, "nft_user_1_2_c", "user_id+chip_id") in checks
    assert ("set", PAIR, "nft_user_1_2_c") in writes
    old = loaded(NFT, doc)
    checks, writes = decode(plan_update(MULTIFRAME, old, {**doc, "metadata_uri": "ipfs://n"}))
    assert all(PAIR not in op for op in (*checks, *writes))  # the pair never changes
    _, writes = decode(plan_delete(MULTIFRAME, DeleteClosure(deleted=[old])))
    assert ("delif", PAIR, "nft_user_1_2_c") in writes
