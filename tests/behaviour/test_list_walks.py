"""Cursor walks under writes that land between a page's index read and its document fetch
(issue 21, item 4), on every backend: a walk returns every document that matched throughout
exactly once, nothing that does not match when returned, and ends only when nothing more
matches. The writes run from a hook on the list's ``JSON.MGET`` (tests/list_walks.py)."""

from __future__ import annotations

from keyspace import DRIVER, Keyspace, parse
from tests import factories as f
from tests.list_walks import before_fetch, each_once, walk


async def _drivers(ks: Keyspace, count: int, status: str = "generated") -> list[str]:
    await f.user(ks, "Owner")
    return [(await f.driver(ks, "user_1", status=status)).doc["driver_id"] for _ in range(count)]


async def test_deletes_before_the_fetch_do_not_end_the_walk(ks: Keyspace) -> None:
    ids = await _drivers(ks, 12)
    gone = ids[1:5]  # on the first page, behind its first item

    async def delete() -> None:
        for doc_id in gone:
            await ks.delete(DRIVER, doc_id)

    before_fetch(ks.client, each_once([delete]))
    returned, _ = await walk(ks, DRIVER, {"user_id": ["user_1"], "limit": ["5"]})
    assert returned == sorted(i for i in ids if i not in gone)  # every survivor, once, in order


async def test_a_document_patched_out_of_the_filter_before_the_fetch_is_not_returned(
    ks: Keyspace,
) -> None:
    ids = await _drivers(ks, 8, status="generated")
    moved = ids[::3]

    async def optimize() -> None:
        for doc_id in moved:
            await ks.patch(DRIVER, doc_id, {"status": "optimized"})

    before_fetch(ks.client, each_once([optimize]))
    params = {"status": ["generated"], "limit": ["20"]}
    returned, pages = await walk(ks, DRIVER, params)
    assert returned == [i for i in ids if i not in moved]
    assert all(item["status"] == "generated" for page in pages for item in page.items)


async def test_a_sort_value_changed_before_the_fetch_does_not_skip_the_rest(ks: Keyspace) -> None:
    await f.user(ks, "Owner")
    ids = [(await f.driver(ks, "user_1", cores=n)).doc["driver_id"] for n in range(1, 10)]

    async def raise_third() -> None:  # the last row of the first page jumps to the end
        await ks.patch(DRIVER, ids[2], {"chip_data": f.chip(500)})

    before_fetch(ks.client, each_once([raise_third]))
    returned, _ = await walk(ks, DRIVER, {"sort": ["cores"], "limit": ["3"]})
    assert [i for i in returned if i != ids[2]] == ids[:2] + ids[3:]


async def test_total_counts_matches_when_the_page_was_read(ks: Keyspace) -> None:
    await _drivers(ks, 4)
    page = await ks.list(DRIVER, parse(DRIVER, {"limit": ["1"]}))
    assert (page.total, len(page.items)) == (4, 1)
    assert page.next_cursor is not None
