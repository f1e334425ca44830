"""NFT ids through HTTP: two (user, chip) pairs deriving one id answer 409 id_collision and
write nothing; the same pair twice answers 409 already_exists."""

from __future__ import annotations

from typing import Any

from app.state import KEYSPACE
from tests.api.test_collections import Client, created, fetch, nft_body, user_body
from tests.behaviour.test_derived_ids import COLLIDING
from tests.redis_state import snapshot_by_reads


async def error_of(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    error: dict[str, Any] = (await resp.json())["error"]
    return error


async def test_colliding_pairs_answer_id_collision_and_write_nothing(api: Client) -> None:
    await created(api, "users", user_body("One"))  # user_1
    await created(api, "users", {**user_body("Two"), "user_id": "user_1_2"})
    first = await created(api, "nfts", nft_body("user_1_2", "c"))
    assert first["nft_id"] == COLLIDING
    redis = api.app[KEYSPACE].client
    before = await snapshot_by_reads(redis)

    error = await error_of(await api.post("/api/nfts", json=nft_body("user_1", "2_c")), 409)

    assert error["code"] == "id_collision"
    assert error["details"] == {
        "field": "nft_id",
        "id": COLLIDING,
        "requested": {"user_id": "user_1", "chip_id": "2_c"},
        "existing": {"user_id": "user_1_2", "chip_id": "c"},
    }
    assert await snapshot_by_reads(redis) == before
    assert (await fetch(api, f"/api/nfts/{COLLIDING}"))[1] == first
    listed = await (await api.get("/api/nfts?user_id=user_1")).json()
    assert listed["total"] == 0


async def test_the_same_pair_twice_answers_already_exists(api: Client) -> None:
    await created(api, "users", user_body("One"))
    await created(api, "users", {**user_body("Two"), "user_id": "user_1_2"})
    first = await created(api, "nfts", nft_body("user_1_2", "c"))
    redis = api.app[KEYSPACE].client
    before = await snapshot_by_reads(redis)
    again = nft_body("user_1_2", "c", owner="0x" + "cd" * 20)
    error = await error_of(await api.post("/api/nfts", json=again), 409)
    assert error["code"] == "already_exists"
    assert error["details"]["id"] == COLLIDING
    assert await snapshot_by_reads(redis) == before
    assert (await fetch(api, f"/api/nfts/{COLLIDING}"))[1] == first
