"""fields= and expand= with MULTIFRAME_ENCRYPTION_KEY set: a sensitive field asked for is
opened as on a full read, on a list through the index and the scan path, and embedded."""

from __future__ import annotations

from redis.asyncio import Redis

from keyspace import crypto
from tests.api.test_encryption_api import (  # noqa: F401 (fixtures)
    EMAIL,
    OWNER,
    Start,
    raw,
    redis,
    start,
)


async def test_sealed_fields_are_opened_in_sparse_and_expanded_answers(
    start: Start,  # noqa: F811
    redis: Redis,  # noqa: F811
) -> None:
    api = await start()
    made = await api.post(
        "/api/users", json={"username": "HoloMisha", "email": EMAIL, "role": "designer"}
    )
    assert made.status == 201
    assert str((await raw(redis, "user:user_1"))["email"]).startswith(crypto.PREFIX)
    got = await api.get("/api/users/user_1", params={"fields": "email"})
    assert await got.json() == {"user_id": "user_1", "email": EMAIL}
    page = await (
        await api.get("/api/users", params={"fields": "email", "email": EMAIL.lower()})
    ).json()
    assert page["items"] == [{"user_id": "user_1", "email": EMAIL}]
    nft = await api.post(
        "/api/nfts", json={"user_id": "user_1", "chip_id": "chip_1", "owner": OWNER}
    )
    assert nft.status == 201
    owned = await (
        await api.get("/api/nfts", params={"fields": "owner", "expand": "user_id"})
    ).json()
    (item,) = owned["items"]
    assert item["owner"] == OWNER and item["_expanded"]["user_id"]["email"] == EMAIL
    assert set(item) == {"nft_id", "owner", "user_id", "_expanded"}
