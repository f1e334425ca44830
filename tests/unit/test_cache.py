"""Cached list answers (``System.cache``, keyspace.cache): key names, the declaration's
checks, the version bump every write plan of a cached entity carries (cascades and set-null
edits included), and lookups and stores on fakeredis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import fakeredis
import pytest

from app.config import Settings
from keyspace import AnswerCache, CacheRules, Keyspace, params_hash, systems
from keyspace.connection import call
from keyspace.declare import integer, ref, string, table
from keyspace.deletes import DeleteClosure, plan_delete
from keyspace.keys import Names
from keyspace.plan import Loaded, Plan, plan_create, plan_update
from keyspace.schema import IdStrategy, OnDelete, Schema
from keyspace.system import System

ACCOUNT = table("account", collection="accounts", id=IdStrategy.CUID, fields=(), owner="id")
SHELF = table(
    "shelf",
    prefix="lib:shelf",  # a prefix with ':' (as the seed's user:session)
    collection="shelves",
    id=IdStrategy.UUID,
    fields=(string("label", index=True),),
)
BOOK = table(
    "book",
    collection="books",
    fields=(
        string("title", index=True),
        integer("pages", default=0, index=True, sortable=True),
        ref("shelf_id", SHELF, null=True, on_delete=OnDelete.SET_NULL, index=True),
    ),
)
NOTE = table(  # not cached, deleted with its book
    "note",
    collection="notes",
    fields=(ref("book_id", BOOK, on_delete=OnDelete.CASCADE, index=True), string("text")),
)
SESSION = table("session", collection="sessions", fields=(string("who"),), ttl=60)
DECLARED = System(
    name="library",
    title="library",
    schema=Schema((ACCOUNT, SHELF, BOOK, NOTE, SESSION)),
    namespace="lib:",
    principal="account",
    cache=CacheRules(("shelves", "books")),
)
SERVED = DECLARED.served()
SCHEMA = SERVED.schema
NAMES = SCHEMA.names
SH, BK, NT = SCHEMA.entity("shelf"), SCHEMA.entity("book"), SCHEMA.entity("note")
V_SHELF = NAMES.collection_version_key("lib:shelf")
V_BOOK = NAMES.collection_version_key("book")
V_NOTE = NAMES.collection_version_key("note")


def bumped(plan: Plan) -> list[str]:
    """The keys the plan INCRs."""
    return [plan.keys[int(op[1]) - 1] for op in plan.writes if op[0] == "bump"]


def test_key_names_are_the_seeds_inside_the_namespace() -> None:
    assert NAMES.cache_key("books", "abc", ["7", 12]) == "lib:api:cache:books:abc@7,12"
    assert NAMES.cache_prefix("books") == "lib:api:cache:books:"
    assert V_SHELF == "lib:mf:cachever:lib:shelf"
    assert Names().cache_key("books", "h", ["1"]) == "api:cache:books:h@1"  # no namespace
    # Different versions never share an entry.
    assert NAMES.cache_key("books", "h", ["1", "23"]) != NAMES.cache_key("books", "h", ["12", "3"])


def test_params_hash_is_stable_and_tells_queries_apart() -> None:
    one = params_hash({"title": ["a"], "sort": ["-pages"]})
    assert one == params_hash({"sort": ["-pages"], "title": ["a"]})
    assert one != params_hash({"title": ["a"], "sort": ["pages"]})
    assert one != params_hash({"title": ["a"]})
    assert params_hash({"a": ["1", "2"]}) != params_hash({"a": ["12"]})
    assert params_hash({}) == params_hash({})


def test_served_marks_the_cached_entities_only() -> None:
    assert SERVED.cache == CacheRules(("shelves", "books"), 900)
    assert [e.name for e in SCHEMA.entities if e.cached] == ["shelf", "book"]


def test_served_checks_the_rules() -> None:
    with pytest.raises(ValueError, match="no collection 'shelfs'"):
        replace(DECLARED, cache=CacheRules(("shelfs",))).served()
    with pytest.raises(ValueError, match="sessions expires"):
        replace(DECLARED, cache=CacheRules(("sessions",))).served()
    with pytest.raises(ValueError, match="positive"):
        CacheRules(("books",), ttl_seconds=0)
    with pytest.raises(ValueError, match="from 0"):
        DECLARED.served(cache_ttl=-5)


def test_the_ttl_is_configurable_and_zero_turns_lookups_off() -> None:
    assert DECLARED.served(cache_ttl=60).cache == CacheRules(("shelves", "books"), 60)
    off = DECLARED.served(cache_ttl=0)
    assert off.cache is None
    # Writes still move the versions: another process on the server may cache.
    assert off.schema.entity("book").cached
    plain = replace(DECLARED, cache=None).served()
    assert plain.cache is None and not any(e.cached for e in plain.schema.entities)
    for wrong in (-1, 10**16, 315_360_001):  # Redis would refuse the expiry on every store
        with pytest.raises(ValueError, match="from 0 \\(off\\) to 315360000"):
            DECLARED.served(cache_ttl=wrong)


def _loaded(spec_name: str, doc_id: str, doc: dict[str, object]) -> Loaded:
    spec = SCHEMA.entity(spec_name)
    raw = repr(doc).encode()
    return Loaded(spec, doc_id, raw, doc, NAMES.doc_key(spec.prefix, doc_id))


def test_every_write_plan_of_a_cached_entity_bumps_its_version_once() -> None:
    book = {"id": "book_1", "title": "t", "pages": 1, "shelf_id": None}
    assert bumped(plan_create(SCHEMA, BK, "book_1", book, explicit_id=True)) == [V_BOOK]
    old = _loaded("book", "book_1", book)
    assert bumped(plan_update(SCHEMA, old, {**book, "pages": 2})) == [V_BOOK]
    assert bumped(plan_delete(SCHEMA, DeleteClosure(deleted=[old]))) == [V_BOOK]
    note = {"id": "note_1", "book_id": "book_1", "text": "x"}
    assert bumped(plan_create(SCHEMA, NT, "note_1", note, explicit_id=True)) == []


def test_cascades_and_set_null_edits_bump_the_collections_they_touch() -> None:
    shelf = _loaded("shelf", "shelf1", {"id": "shelf1", "label": "a"})
    books = [
        _loaded("book", f"book_{n}", {"id": f"book_{n}", "shelf_id": "shelf1"}) for n in (1, 2)
    ]
    closure = DeleteClosure(deleted=[shelf])
    closure.pulls = [(b, BK.references[0], "shelf1") for b in books]
    assert sorted(bumped(plan_delete(SCHEMA, closure))) == sorted([V_SHELF, V_BOOK])
    note = _loaded("note", "note_1", {"id": "note_1", "book_id": "book_1"})
    cascade = DeleteClosure(deleted=[books[0], note])
    assert bumped(plan_delete(SCHEMA, cascade)) == [V_BOOK]  # notes are not cached


@pytest.fixture
async def ks() -> AsyncIterator[Keyspace]:
    client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), protocol=2)
    keyspace = Keyspace(client, SCHEMA, use_search=False)
    await keyspace.setup()
    yield keyspace
    await client.aclose()


def _cache(ks: Keyspace) -> AnswerCache:
    return AnswerCache(ks.scripts, NAMES, "books", (BK,), ttl_seconds=30)


async def _version(ks: Keyspace, key: str) -> int | None:
    raw = await ks.client.get(key)
    return None if raw is None else int(raw)


async def test_committed_writes_move_the_versions(ks: Keyspace) -> None:
    shelf = await ks.create(SH, {"label": "a"})
    shelf_id = shelf.doc["id"]
    first = await _version(ks, V_SHELF)
    book = await ks.create(BK, {"title": "t", "shelf_id": shelf_id})
    book_id = book.doc["id"]
    note = await ks.create(NT, {"book_id": book_id, "text": "x"})
    assert await _version(ks, V_NOTE) is None  # an uncached entity has none
    v_book = await _version(ks, V_BOOK)
    await ks.patch(BK, book_id, {"pages": 3})
    assert await _version(ks, V_BOOK) == (v_book or 0) + 1
    await ks.delete(SH, shelf_id)  # sets the book's shelf_id to null: both move
    assert await _version(ks, V_SHELF) == (first or 0) + 1
    assert await _version(ks, V_BOOK) == (v_book or 0) + 2
    await ks.delete(BK, book_id)  # cascades to the note
    assert await _version(ks, V_BOOK) == (v_book or 0) + 3
    with pytest.raises(Exception, match="does not exist"):
        await ks.get(NT, note.doc["id"])


async def test_a_stored_answer_is_met_until_a_write_moves_the_version(ks: Keyspace) -> None:
    cache, h = _cache(ks), params_hash({"sort": ["pages"]})
    miss = await cache.get(h)
    assert miss.body is None and len(miss.versions) == 1
    # An absent version starts at a random value, not 0 or 1.
    assert await ks.client.get(V_BOOK) == miss.versions[0].encode()
    assert await cache.put(h, miss, b'{"items":[]}')
    entry = NAMES.cache_key("books", h, miss.versions)
    assert 0 < await ks.client.pttl(entry) <= 30_000
    hit = await cache.get(h)
    assert hit.body == b'{"items":[]}' and hit.versions == miss.versions
    assert (await cache.get(params_hash({}))).body is None  # other parameters
    await ks.create(BK, {"title": "new"})
    after = await cache.get(h)
    assert after.body is None and after.versions != miss.versions
    # An answer computed at the old versions is not stored once a write moved them.
    assert not await cache.put(h, miss, b"old")
    assert (await cache.get(h)).body is None


async def test_answer_computes_once_then_serves_the_stored_bytes(ks: Keyspace) -> None:
    cache, h = _cache(ks), params_hash({})
    calls: list[int] = []

    async def compute() -> bytes:
        calls.append(1)
        return b'{"n":%d}' % len(calls)

    assert await cache.answer(h, compute) == (b'{"n":1}', False)
    assert await cache.answer(h, compute) == (b'{"n":1}', True)
    await ks.create(BK, {"title": "x"})
    assert await cache.answer(h, compute) == (b'{"n":2}', False)
    assert len(calls) == 2


async def test_the_pause_refuses_lookups(ks: Keyspace) -> None:
    await ks.client.set(NAMES.pause_key(), "{}")
    with pytest.raises(Exception, match="paused"):
        await _cache(ks).get(params_hash({}))


def test_the_setting_reaches_the_served_system() -> None:
    assert Settings.from_env({}).cache_ttl is None
    assert Settings.from_env({"MULTIFRAME_CACHE_TTL_SECONDS": "60"}).cache_ttl == 60
    with pytest.raises(SystemExit):
        Settings.from_env({"MULTIFRAME_CACHE_TTL_SECONDS": "-1"})
    neuraforge = systems.load("neuraforge")
    assert neuraforge.cache == CacheRules(
        ("projects", "documents", "ai_agents", "research_papers"), 900
    )
    assert systems.load("neuraforge", cache_ttl=60).cache == replace(
        neuraforge.cache, ttl_seconds=60
    )
    assert systems.load("neuraforge", cache_ttl=0).cache is None
    for other in ("multiframe", "normaldance", "engineering_forge"):
        served = systems.load(other, cache_ttl=60)
        assert served.cache is None and not any(e.cached for e in served.schema.entities)


async def test_one_endpoint_keeps_a_bounded_number_of_answers(
    ks: Keyspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16 review: a client varying no-op parameters stored one copy of a 315 KB answer
    per variation. Past the bound the entries soonest to expire go; larger answers are
    served but not stored."""
    from keyspace import cache as cache_module

    monkeypatch.setattr(cache_module, "MAX_ENTRIES", 5)
    cache = _cache(ks)
    for n in range(12):
        body, hit = await cache.answer(f"p{n}", _const(b"x" * 100))
        assert (body, hit) == (b"x" * 100, False)
    answers = [k async for k in ks.client.scan_iter(match=NAMES.cache_prefix("books") + "*@*")]
    assert len(answers) == 5
    entries = NAMES.cache_entries_key("books")
    assert await ks.client.zcard(entries) == 5
    assert 0 < await ks.client.pttl(entries) <= 30_000
    kept = {k.decode() for k in answers}
    indexed = await call(ks.client, "ZRANGE", entries, 0, -1)
    assert kept == {m.decode() for m in indexed}
    assert (await cache.get("p11")).body is not None and (await cache.get("p0")).body is None
    big = b"y" * (cache_module.MAX_ANSWER_BYTES + 1)
    assert await cache.answer("big", _const(big)) == (big, False)
    assert await cache.answer("big", _const(big)) == (big, False)  # never stored


def _const(body: bytes) -> Callable[[], Awaitable[bytes]]:
    async def compute() -> bytes:
        return body

    return compute
