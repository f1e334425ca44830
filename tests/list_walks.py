"""Helpers for list-walk tests: a hook that runs writes between a page's read of the index (or
the scan of keys) and its fetch of the documents, and a cursor walk."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from keyspace import Keyspace, Page, parse
from keyspace.schema import EntitySpec

Action = Callable[[], Awaitable[None]]
MAX_PAGES = 200


def before_fetch(client: Redis, action: Action) -> None:
    """Run ``action`` just before every ``JSON.MGET`` ``client`` sends. Both list paths fetch
    documents with JSON.MGET (the search path after its index read, the scan path after SCAN),
    so the writes land inside a page. For a client of one test only: it stays hooked."""
    original = client.execute_command

    async def execute_command(*args: Any, **options: Any) -> Any:
        if args and args[0] == "JSON.MGET":
            await action()
        return await original(*args, **options)  # type: ignore[no-untyped-call]

    client.execute_command = execute_command  # type: ignore[method-assign]


def each_once(actions: list[Action]) -> Action:
    """An action that runs the next of ``actions`` on each call, then nothing."""
    pending = list(actions)

    async def run() -> None:
        if pending:
            await pending.pop(0)()

    return run


async def walk(
    ks: Keyspace, spec: EntitySpec, params: dict[str, list[str]]
) -> tuple[list[str], list[Page]]:
    """Follow ``next_cursor`` to the end; return the ids in the order returned and the pages."""
    returned: list[str] = []
    pages: list[Page] = []
    cursor: str | None = None
    while len(pages) < MAX_PAGES:
        extra = {"cursor": [cursor]} if cursor else {}
        page = await ks.list(spec, parse(spec, {**params, **extra}))
        pages.append(page)
        returned += [item[spec.id_field] for item in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return returned, pages
    raise AssertionError(f"the walk did not end within {MAX_PAGES} pages")
