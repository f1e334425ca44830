"""Property: the RediSearch path and the scan path give identical answers (items, order, total,
cursors) for random documents and random queries, on the real server.

Documents mix letters of several scripts with their case variants (long Cyrillic words, Greek
final sigma, dotted capital I, titlecase digraphs, ß, ligatures, fullwidth letters, combining
marks), every kind of whitespace, ASCII and non-ASCII punctuation and numbers near the bounds.
Queries take words and values from the stored documents and change their case or normalization,
or are random text. Hypothesis drives the async keyspace through an event loop of its own.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyspace import (
    DRIVER,
    QUEST,
    USER,
    Keyspace,
    UniqueConflict,
    ValidationFailed,
    connect,
    parse,
)
from keyspace.schema import EntitySpec
from keyspace.server import EmbeddedRedis
from tests import factories as f

pytestmark = pytest.mark.redis

LETTERS = (
    "abcxyzABCXYZ"
    "éÉèàÀçÇñÑøØåÅäÄöÖüÜß"
    "ЗДРАВСТВУЙТЕздравствуйтемирМИР"
    "ΣΊΣΥΦΟΣσίσυφοςς"
    "İıIiǅǄǆﬁｅＭ日本語"  # noqa: RUF001
    "\u0301"  # a combining acute accent: decomposed spellings
    "0123456789_"
)
SPACES = [" ", "  ", "\u00a0", "\u3000", "\u2003", "\u2028"]
BREAKS = ["\r\n", "\n", "\t", " \r "]
PUNCT = [*"-.,!?:;'\"()[]{}@#$%^&*+=/\\|~`<>", "—", "«", "»", "、", "。", "・", "¿"]

words = st.text(alphabet=LETTERS, min_size=1, max_size=10)


def _joined(separators: list[str]) -> st.SearchStrategy[str]:
    gap = st.sampled_from(separators + PUNCT)
    return st.lists(st.tuples(words, gap), min_size=1, max_size=5).map(
        lambda parts: "".join(w + g for w, g in parts[:-1]) + parts[-1][0]
    )


titles = _joined(SPACES)
descriptions = _joined(SPACES + BREAKS)
local_parts = st.text(alphabet="abcXYZéÉÄöÜЗДздΣσς0_.+-", min_size=1, max_size=8)  # noqa: RUF001
emails = st.builds(lambda a, b: f"{a}@{b}.com", local_parts, st.sampled_from(["x", "Ex", "ÉX"]))
cores = st.one_of(st.sampled_from([1, 2, 999_999, 1_000_000]), st.integers(1, 1_000_000))

corpus = st.fixed_dictionaries(
    {
        "quests": st.lists(st.tuples(titles, descriptions, titles), max_size=6),
        "users": st.lists(st.tuples(titles, emails), max_size=4),
        "drivers": st.lists(st.tuples(titles, cores), max_size=4),
    }
)


def _variants(value: str) -> list[str]:
    """Spellings a client may use for a stored value."""
    return [
        value,
        value.upper(),
        value.lower(),
        value.swapcase(),
        value.casefold(),
        unicodedata.normalize("NFD", value),
        unicodedata.normalize("NFKC", value),
    ]


Query = tuple[EntitySpec, dict[str, list[str]]]


def _queries(stored: dict[str, list[Any]], pick: st.DataObject) -> Iterator[Query]:
    texts = [t for q in stored["quests"] for t in q[:2]] or ["nothing"]
    for _ in range(4):
        text = pick.draw(st.sampled_from(texts))
        found = re.findall(r"\w+", text) or ["x"]
        asked = " ".join(pick.draw(st.lists(st.sampled_from(found), min_size=1, max_size=2)))
        q = pick.draw(st.sampled_from([*_variants(asked), pick.draw(titles)]))
        sort = pick.draw(st.sampled_from([[], ["-timestamp"], ["quest_id"]]))
        yield QUEST, {"q": [q], **({"sort": sort} if sort else {})}
    rewards = [q[2] for q in stored["quests"]] or ["none"]
    yield (
        QUEST,
        {"reward": [pick.draw(st.sampled_from(_variants(pick.draw(st.sampled_from(rewards)))))]},
    )
    for name, mail in stored["users"] or [("nobody", "no@x.com")]:
        yield USER, {"email": [pick.draw(st.sampled_from(_variants(mail)))]}
        yield USER, {"username": [pick.draw(st.sampled_from(_variants(name)))]}
        yield USER, {"q": [pick.draw(st.sampled_from(_variants(name)))]}
    for version, n in stored["drivers"] or [("1", 1)]:
        yield DRIVER, {"version": [pick.draw(st.sampled_from(_variants(version)))]}
        yield DRIVER, {"cores_min": [str(n)], "sort": ["-cores"]}
        yield DRIVER, {"cores_max": [str(n)], "sort": ["cores"]}


async def _walk(ks: Keyspace, spec: EntitySpec, params: dict[str, list[str]]) -> list[object]:
    pages: list[object] = []
    cursor: str | None = None
    while True:
        extra = {"cursor": [cursor]} if cursor else {}
        page = await ks.list(spec, parse(spec, {"limit": ["2"], **params, **extra}))
        pages.append((page.items, page.total, page.next_cursor))
        cursor = page.next_cursor
        if cursor is None or len(pages) > 20:
            return pages


async def _load(ks: Keyspace, data: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Create what validates; return what was stored (as stored: NFC)."""
    stored: dict[str, list[Any]] = {"quests": [], "users": [], "drivers": []}
    await f.user(ks, "Owner")
    for title, description, reward in data["quests"]:
        try:
            doc = (await f.quest(ks, "user_1", title, description=description, reward=reward)).doc
        except ValidationFailed:
            continue
        stored["quests"].append((doc["title"], doc["description"], doc["reward"]))
    for name, mail in data["users"]:
        try:
            doc = (await ks.create(USER, {"username": name, "email": mail, "role": "engineer"})).doc
        except (ValidationFailed, UniqueConflict):  # two drawn users may collide
            continue
        stored["users"].append((doc["username"], doc["email"]))
    for version, n in data["drivers"]:
        try:
            doc = (await f.driver(ks, "user_1", cores=n, version=version)).doc
        except ValidationFailed:
            continue
        stored["drivers"].append((doc["version"], n))
    return stored


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    new = asyncio.new_event_loop()
    yield new
    new.close()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=corpus, pick=st.data())
def test_search_and_scan_agree_on_random_text(
    redis_server: EmbeddedRedis,
    loop: asyncio.AbstractEventLoop,
    data: dict[str, list[Any]],
    pick: st.DataObject,
) -> None:
    async def run() -> None:
        client = connect(redis_server.url)
        try:
            await client.flushall()
            fast, slow = Keyspace(client), Keyspace(client, use_search=False)
            await fast.setup()
            await slow.setup()
            assert fast.capabilities.search and not slow.capabilities.search
            stored = await _load(fast, data)
            for spec, params in _queries(stored, pick):
                expected = await _walk(slow, spec, params)
                assert await _walk(fast, spec, params) == expected, (spec.name, params)
        finally:
            await client.aclose()

    loop.run_until_complete(run())
