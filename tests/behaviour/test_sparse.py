"""Sparse lists and embedded references in the keyspace: the index path reads only the paths
asked for (and those its filters need) and answers what the scan path answers once shaped;
targets come in one pipeline, a missing one as None."""

from __future__ import annotations

from typing import Any

from keyspace import COLLAB, DRIVER, QUEST, USER, Keyspace, parse
from keyspace.embedding import fetch
from keyspace.sparse import Shape, parse_expand, parse_fields, project
from tests import factories as f


def keys_of(doc: dict[str, Any]) -> set[str]:
    """Every dotted path a document holds, down to its leaves."""
    out: set[str] = set()
    for name, value in doc.items():
        if isinstance(value, dict):
            out |= {f"{name}.{k}" for k in keys_of(value)}
        else:
            out.add(name)
    return out


async def test_a_sparse_page_is_the_same_on_every_path(ks: Keyspace) -> None:
    await f.user(ks, "A")
    for cores in (64, 128, 256):
        await f.driver(ks, "user_1", cores, status="generated")
    await ks.patch(DRIVER, "driver_2", {"status": "optimized"})
    paths = parse_fields(DRIVER, ["status"])
    assert paths is not None
    query = parse(DRIVER, {"cores_min": ["100"], "sort": ["-cores"]})
    page = await ks.list(DRIVER, query, paths=paths)
    assert [project(d, paths) for d in page.items] == [
        {"driver_id": "driver_3", "status": "generated"},
        {"driver_id": "driver_2", "status": "optimized"},
    ]
    assert page.total == 2
    if ks.capabilities.search:  # the server sent the asked and the filtered paths only
        assert all(keys_of(d) == {"driver_id", "status", "chip_data.cores"} for d in page.items)


async def test_a_sparse_text_search_reads_the_text_it_matches(ks: Keyspace) -> None:
    await f.user(ks, "A")
    await f.quest(ks, "user_1", "Quantum Chip Design")
    await f.quest(ks, "user_1", "Neural Net Layout")
    paths = parse_fields(QUEST, ["status"])
    assert paths is not None
    page = await ks.list(QUEST, parse(QUEST, {"q": ["neural"]}), paths=paths)
    assert [project(d, paths) for d in page.items] == [{"quest_id": "quest_2", "status": "active"}]


async def test_targets_come_by_entity_with_none_for_the_missing(ks: Keyspace) -> None:
    for name in ("A", "B", "C"):
        await f.user(ks, name)
    await f.collab(ks, "user_1", ["user_3", "user_2"])
    await ks.client.delete(USER.key("user_2"))  # written around the service
    collab = (await ks.get(COLLAB, "collab_1")).doc
    shape = Shape(None, parse_expand(COLLAB, ["collaborators,user_id"]))
    wanted = shape.wanted([collab])
    assert wanted == {"user": ["user_3", "user_2", "user_1"]}
    found = await fetch(
        ks.client,
        ks.schema,
        {**wanted, "user": [*wanted["user"], "no such id!"]},
        ks.documents.open_doc,
    )
    one, three = (await ks.get(USER, "user_1")).doc, (await ks.get(USER, "user_3")).doc
    assert found == {"user": {"user_1": one, "user_2": None, "user_3": three, "no such id!": None}}
    assert shape.apply(collab, found)["_expanded"] == {
        "collaborators": [three, None],
        "user_id": one,
    }
    assert await fetch(ks.client, ks.schema, {}, ks.documents.open_doc) == {}
