"""The issue's migration under load, shared by the CI-size test and its soak variant: a
migration adding a field with a default and renaming another runs through
``POST /api/admin/migrate`` while clients read and write the same books through the API."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from keyspace import codec
from keyspace.connection import call
from tests.migration_world import book_id, shelve_old_books, world

Client = TestClient[web.Request, web.Application]
WRITERS, READERS, WRITTEN = 4, 4, 400


async def migrate_under_load(api: Client, redis: Redis, total: int) -> None:
    """Asserts: every request answered 200, every book converted once (a client's title
    kept), and the new field filterable once the migration is recorded."""
    await shelve_old_books(redis, total)
    statuses: list[int] = []
    last: dict[str, str] = {}
    done = asyncio.Event()

    async def write(w: int) -> None:
        mine = list(range(w, min(WRITTEN, total), WRITERS))
        for k in itertools.count():
            if done.is_set():
                return
            n = mine[k % len(mine)]
            doc_id = book_id(n)
            title = f"w{w}-{k}"
            # Half the clients still send the release-1 name: the model takes both shapes.
            body: dict[str, Any] = {"title": title}
            if w % 2:
                body["author"] = f"Author {n % 97}"
            response = await api.patch(f"/api/books/{doc_id}", json=body)
            statuses.append(response.status)
            if response.status == 200:
                last[doc_id] = title
                assert "author" not in await response.json()

    async def read(r: int) -> None:
        for k in itertools.count(r * 7919):
            if done.is_set():
                return
            response = await api.get(f"/api/books/{book_id(k % total)}")
            statuses.append(response.status)
            await response.read()

    clients = [asyncio.create_task(write(w)) for w in range(WRITERS)]
    clients += [asyncio.create_task(read(r)) for r in range(READERS)]
    try:
        started = await api.post("/api/admin/migrate")
        assert started.status == 202, await started.text()
        while True:
            state = await (await api.get("/api/admin/migration-status")).json()
            if state["last_run"]["state"] != "running":
                break
            await asyncio.sleep(0.1)
        assert state["last_run"]["state"] == "done", state
        assert [a["version"] for a in state["applied"]] == [1, 2] and state["pending"] == []
    finally:
        done.set()
        await asyncio.gather(*clients)
    assert statuses and set(statuses) == {200}, sorted(set(statuses))
    books = world(2).schema.entity("book")
    for first in range(0, total, 1000):
        ids = [book_id(n) for n in range(first, min(first + 1000, total))]
        raws = await call(redis, "JSON.MGET", *[books.key(i) for i in ids], ".")
        for n, (doc_id, raw) in enumerate(zip(ids, raws, strict=True), first):
            doc = codec.loads(raw)
            assert set(doc) == {"id", "title", "writer", "format"}, doc
            assert (doc["format"], doc["writer"]) == ("paper", f"Author {n % 97}")
            assert doc["title"] == last.get(doc_id, f"Book {n}")  # no client write lost
    for _ in range(600):
        if (await api.get("/ready")).status == 200:
            break
        await asyncio.sleep(0.1)
    listed = await api.get("/api/books", params={"format": "paper", "limit": "1"})
    assert listed.status == 200 and (await listed.json())["total"] == total
