"""A delete writes its whole closure in one script: set-null and pull edits count toward the
bound as deletes do, so no delete blocks a Redis server shared by several systems (review
finding: an event log's set-null was unbounded)."""

from __future__ import annotations

import pytest

from keyspace import Conflict, Keyspace, closures, systems
from tests.redis_state import snapshot_by_reads

ND = systems.load("normaldance")


async def test_set_null_edits_count_toward_the_delete_bound(
    ks: Keyspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    nd = Keyspace(ks.client, ND.schema, use_search=False)
    await nd.setup()
    user = (await nd.create(ND.schema.entity("user"), {"username": "Ada"})).doc["id"]
    collection = await nd.create(
        ND.schema.entity("nft_collection"),
        {"name": "Waves", "creatorId": user, "contractAddress": "0xC0"},
    )
    for n in range(4):
        await nd.create(
            ND.schema.entity("nft"),
            {
                "tokenId": str(n),
                "contractAddress": "0xC0",
                "name": f"#{n}",
                "owner": user,
                "creatorId": user,
                "collectionId": collection.doc["id"],
            },
        )
    monkeypatch.setattr(closures, "MAX_CASCADE", 3)
    before = await snapshot_by_reads(ks.client)
    with pytest.raises(Conflict, match="more than 3 documents"):
        await nd.delete(ND.schema.entity("nft_collection"), collection.doc["id"])
    assert await snapshot_by_reads(ks.client) == before
    monkeypatch.setattr(closures, "MAX_CASCADE", 5)
    assert await nd.delete(ND.schema.entity("nft_collection"), collection.doc["id"]) == 1
