"""A small system whose ``books`` change shape between two releases, for the migration tests:
release 1 stores ``{id, title, author}``; release 2 declares ``writer`` (``author`` renamed)
and ``format`` (added, default ``paper``, filterable) with the migrations that convert the
stored books, and its model accepts the release-1 shape meanwhile (docs/migrations.md).

``COUNT`` is a probe, not a migration anyone should write: it is not idempotent (each
application adds 1 to ``conversions``), so it shows whether any batch was applied twice."""

from __future__ import annotations

import sys
import uuid
from typing import Any

import pytest
from redis.asyncio import Redis

from keyspace import codec, systems
from keyspace.declare import Column, enum, integer, string, table
from keyspace.migrations import Migration, add_field, rename_field
from keyspace.schema import EntitySpec, IdStrategy, Schema
from keyspace.system import System

NAME = "shelf"
ADD_FORMAT = add_field(1, "books", "format", "paper")
RENAME_AUTHOR = rename_field(2, "books", "author", "writer")


def _count(doc: Any) -> dict[str, Any]:
    return {**doc, "conversions": (doc.get("conversions") or 0) + 1}


COUNT = Migration(3, "count each conversion (a probe)", "books", _count)
MEMBER = table("member", collection="members", id=IdStrategy.UUID, fields=(), owner="id")


def _book(release: int, counting: bool) -> EntitySpec:
    fields: tuple[Column, ...]
    if release == 1:
        fields = (string("title", index=True), string("author", index=True))
        return table("book", collection="books", id=IdStrategy.UUID, fields=fields, owner=None)
    fields = (
        string("title", index=True),
        string("writer", index=True),
        enum("format", ("paper", "ebook"), default="paper", index=True),
    )
    if counting:
        fields = (*fields, integer("conversions", null=True))
    return table(
        "book",
        collection="books",
        id=IdStrategy.UUID,
        fields=fields,
        owner=None,
        upgrades=(ADD_FORMAT, RENAME_AUTHOR),
    )


def world(release: int, *, counting: bool = False) -> System:
    """The shelf system as one release declares it, ready to serve."""
    migrations: tuple[Migration, ...] = ()
    if release == 2:
        migrations = (ADD_FORMAT, RENAME_AUTHOR, *((COUNT,) if counting else ()))
    return System(
        name=NAME,
        title="Shelf",
        schema=Schema((MEMBER, _book(release, counting))),
        namespace=f"{NAME}:",
        principal="member",
        demo=NAME,
        migrations=migrations,
    ).served()


def register(monkeypatch: pytest.MonkeyPatch, system: System) -> None:
    """Make ``--system shelf`` (and the app's system) ``system`` for this test."""
    known = systems.names()
    monkeypatch.setattr(systems, "names", lambda: [*known, NAME])
    monkeypatch.setattr(systems, "load", lambda *_, **__: system)


def book_id(n: int) -> str:
    return str(uuid.UUID(int=n + 1, version=4))


async def shelve_old_books(client: Redis, count: int, *, start: int = 0) -> list[str]:
    """``count`` books stored as release 1 stored them (its exact bytes), in pipelines."""
    books = world(1).schema.entity("book")
    ids = [book_id(n) for n in range(start, start + count)]
    for first in range(0, count, 1000):
        async with client.pipeline(transaction=False) as pipe:
            for n, doc_id in enumerate(ids[first : first + 1000], start + first):
                doc = {"id": doc_id, "title": f"Book {n}", "author": f"Author {n % 97}"}
                pipe.execute_command("JSON.SET", books.key(doc_id), ".", codec.dumps(doc))
            await pipe.execute()
    return ids


def cli_main() -> None:  # pragma: no cover - run in a subprocess by the SIGKILL test
    """``python -c 'from tests.migration_world import cli_main; cli_main()' ARGS``: the
    CLI with the shelf system (release 2, counting) registered."""
    from scripts.cli import main

    system = world(2, counting=True)
    known = systems.names()
    systems.names = lambda: [*known, NAME]
    systems.load = lambda *_, **__: system
    sys.exit(main(sys.argv[1:]))
