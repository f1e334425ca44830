"""A delete writes its whole closure in one script: set-null and pull edits count toward the
bound as deletes do, so no delete blocks a Redis server shared by several systems (review
finding: an event log's set-null was unbounded)."""

from __future__ import annotations

from typing import Any

import pytest

from keyspace import Conflict, Keyspace, StaleRevision, Stored, closures, systems
from tests.redis_state import snapshot_by_reads

ND = systems.load("normaldance")


async def _collection(nd: Keyspace) -> tuple[str, Stored]:
    """A user and a collection of four NFTs: a delete of it set-nulls four referrers."""
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
    return user, collection


async def test_set_null_edits_count_toward_the_delete_bound(
    ks: Keyspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    nd = Keyspace(ks.client, ND.schema, use_search=False)
    await nd.setup()
    _, collection = await _collection(nd)
    monkeypatch.setattr(closures, "MAX_CASCADE", 3)
    before = await snapshot_by_reads(ks.client)
    with pytest.raises(Conflict, match="more than 3 documents"):
        await nd.delete(ND.schema.entity("nft_collection"), collection.doc["id"])
    assert await snapshot_by_reads(ks.client) == before
    monkeypatch.setattr(closures, "MAX_CASCADE", 5)
    assert await nd.delete(ND.schema.entity("nft_collection"), collection.doc["id"]) == 1


async def test_a_stale_if_match_is_refused_before_the_cascade_is_read(
    ks: Keyspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review 42: once the guard ran before the revision (review 41), a stale If-Match was
    compared only after the whole cascade was read and bounded (a 409 for a 412, and up to
    MAX_CASCADE documents read for nothing). The document alone decides it again."""
    nd = Keyspace(ks.client, ND.schema, use_search=False)
    await nd.setup()
    _, collection = await _collection(nd)
    monkeypatch.setattr(closures, "MAX_CASCADE", 3)  # the cascade would be refused: 409
    read: list[int] = []
    load = closures._load_many

    async def counted(*args: Any) -> Any:
        read.append(len(args[3]))
        return await load(*args)

    monkeypatch.setattr(closures, "_load_many", counted)
    spec = ND.schema.entity("nft_collection")
    with pytest.raises(StaleRevision):
        await nd.delete(spec, collection.doc["id"], if_revision="0" * 40)
    assert read == [1]

    def refuse(doc: dict[str, Any]) -> None:
        raise PermissionError(doc["id"])

    with pytest.raises(PermissionError):  # the guard first, on the document alone too
        await nd.delete(spec, collection.doc["id"], if_revision="0" * 40, guard=refuse)
    assert read == [1, 1]
