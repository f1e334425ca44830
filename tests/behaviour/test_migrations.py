"""Running migrations (keyspace/migrating.py) on fakeredis and the real server: every document
converted once, the registry written, a concurrent write never overwritten, one run at a
time, and a document that cannot be converted stops the run where it stood."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from keyspace import Held, Keyspace, codec
from keyspace.connection import call
from keyspace.exclusive import AdminLock
from keyspace.migrating import migrate, read_status
from keyspace.migrations import MigrationFailed
from keyspace.plan import Plan
from keyspace.scripts import CommitResult
from tests.conftest import client_for
from tests.migration_world import book_id, shelve_old_books, world

NEW = world(2, counting=True)
BOOKS = NEW.schema.entity("book")
COUNT = 450  # a few batches


@pytest.fixture(
    params=[pytest.param("fake", id="fakeredis"), pytest.param("real", marks=pytest.mark.redis)]
)
async def mks(request: pytest.FixtureRequest) -> AsyncIterator[Keyspace]:
    client = await client_for(request, request.param)
    await Keyspace(client, world(1).schema).setup()  # release 1's index
    await shelve_old_books(client, COUNT)
    keyspace = Keyspace(client, NEW.schema)
    await keyspace.setup()
    yield keyspace
    await client.aclose()


async def _books(ks: Keyspace) -> dict[str, dict[str, Any]]:
    out = {}
    async for key in ks.client.scan_iter(match=NEW.schema.names.doc_match(BOOKS.prefix)):
        raw = await call(ks.client, "JSON.GET", key, ".")
        out[key.decode()] = codec.loads(raw)
    return out


async def test_every_document_is_converted_once_and_recorded(mks: Keyspace) -> None:
    outcomes = await migrate(mks, NEW.migrations)
    assert [(o.migration.version, o.applied) for o in outcomes] == [(1, True), (2, True), (3, True)]
    assert outcomes[0].examined == COUNT and outcomes[0].converted == COUNT
    books = await _books(mks)
    assert len(books) == COUNT
    for doc in books.values():
        assert doc["format"] == "paper" and doc["writer"].startswith("Author ")
        assert "author" not in doc and doc["conversions"] == 1
    found, running = await read_status(mks, NEW.migrations)
    assert [a.version for a in found.applied] == [1, 2, 3] and not found.pending
    assert running == {}
    assert await mks.client.exists(NEW.schema.names.migration_progress_key(1)) == 0
    # Migration 1's upgrade already renamed the author (the model converts the older shape),
    # so migration 2 found nothing left to change.
    assert outcomes[1].converted == 0
    assert await migrate(mks, NEW.migrations) == []  # nothing pending: nothing runs again


async def test_a_write_between_the_read_and_the_commit_is_kept(
    mks: Keyspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = book_id(3)
    real_commit = mks.commit
    written = False

    async def racing(plan: Plan) -> CommitResult:
        nonlocal written
        if not written and any(w[0] == "hset" for w in plan.writes) and len(plan.keys) > 3:
            written = True  # a client's PATCH lands after the batch read the document
            await mks.patch(BOOKS, target, {"title": "Edited"})
        return await real_commit(plan)

    monkeypatch.setattr(mks, "commit", racing)
    await migrate(mks, NEW.migrations[2:])  # the counting probe alone
    assert written
    doc = (await mks.get(BOOKS, target)).doc
    assert doc["title"] == "Edited"  # the client's write survived the batch
    assert doc["conversions"] == 1  # and the migration converted what it wrote, once
    assert all(d["conversions"] == 1 for d in (await _books(mks)).values())


async def test_one_run_at_a_time(mks: Keyspace) -> None:
    other = AdminLock(mks, "migrate")
    await other.take()
    with pytest.raises(Held, match="another migrate is running"):
        await migrate(mks, NEW.migrations)
    await other.release()
    found, _ = await read_status(mks, NEW.migrations)
    assert len(found.pending) == 3


async def test_a_document_that_cannot_be_converted_stops_the_run_where_it_stood(
    mks: Keyspace,
) -> None:
    bad = BOOKS.key(book_id(COUNT + 1))
    doc = {"id": book_id(COUNT + 1), "title": "T", "author": 42}  # no text: no valid writer
    await call(mks.client, "JSON.SET", bad, ".", codec.dumps(doc))
    with pytest.raises(MigrationFailed, match=bad):
        await migrate(mks, NEW.migrations)
    found, running = await read_status(mks, NEW.migrations)
    assert [m.version for m in found.pending] == [1, 2, 3]
    # Batches before the one holding it are committed with their resume point (if SCAN met
    # it first, none is); the pass is not complete.
    assert 1 not in running or not running[1].scanned
    assert await mks.client.exists(NEW.schema.names.lock_key("migrate")) == 0  # released
    await mks.client.delete(bad)
    await migrate(mks, NEW.migrations)  # resumes after the batches already committed
    assert all(d["conversions"] == 1 for d in (await _books(mks)).values())
