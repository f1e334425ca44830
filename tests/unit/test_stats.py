"""keyspace.stats: an index's state from its FT.INFO reply (or the error in its place)."""

from __future__ import annotations

from redis.exceptions import ResponseError

from keyspace.stats import IndexStats, _index


def info(indexing: int, percent: bytes, docs: int = 7, failures: int = 0) -> list[object]:
    return [
        b"index_name", b"mf:idx:user:abc", b"num_docs", docs, b"indexing", indexing,
        b"percent_indexed", percent, b"hash_indexing_failures", failures,
    ]  # fmt: skip


def test_states() -> None:
    assert _index(info(0, b"1"), pending=False) == IndexStats("ready", 7, 1.0, 0)
    assert _index(info(1, b"0.25", 2, 1), pending=False) == IndexStats("building", 2, 0.25, 1)
    # The service is building its current version: the alias still names the old one.
    assert _index(info(0, b"1"), pending=True).state == "building"
    assert _index(ResponseError("no such index"), pending=False) == IndexStats("missing")
    assert _index(ResponseError("no such index"), pending=True) == IndexStats("building")
