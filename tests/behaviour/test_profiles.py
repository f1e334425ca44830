"""``table(..., profile=Profile(...))`` (keyspace.profiles), on a schema declared here: a
cached summary of a document and its one-to-one companion, deleted by every commit that
changes what it summarizes, and never stored from sources a write changed meanwhile;
fakeredis and the real server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import orjson
import pytest

from keyspace import Keyspace, NotFound
from keyspace.connection import call
from keyspace.declare import json, ref, string, table
from keyspace.features import Profile
from keyspace.profiles import stale_keys
from keyspace.schema import IdStrategy, OnDelete, Schema, Unique
from keyspace.system import System
from tests.conftest import BACKENDS, client_for

PERSON = table(
    "person",
    collection="people",
    id=IdStrategy.UUID,
    fields=(string("name"), string("email", null=True)),
    owner="id",
    profile=Profile("card", ("name",), "about", "person_id", ("tags",), ttl_seconds=60),
)
ABOUT = table(
    "about",
    collection="abouts",
    id=IdStrategy.UUID,
    fields=(
        replace(
            ref("person_id", "person", on_delete=OnDelete.CASCADE, index=True),
            unique=Unique("person_id", case_insensitive=False),
        ),
        json("tags", default=[]),
    ),
    owner="person_id",
)
SYSTEM = System(
    name="cards",
    title="cards",
    schema=Schema((PERSON, ABOUT)),
    namespace="cards:",
    principal="person",
).served()
P, A = SYSTEM.schema.entity("person"), SYSTEM.schema.entity("about")
ADA = "a" * 8 + "-0000-4000-8000-" + "0" * 12
BOB = "b" * 8 + "-0000-4000-8000-" + "0" * 12


def card(person_id: str) -> str:
    return SYSTEM.schema.names.profile_key("card", person_id)


@pytest.fixture(params=BACKENDS)
async def cks(request: pytest.FixtureRequest) -> AsyncIterator[Keyspace]:
    backend: str = request.param
    client = await client_for(request, backend)
    keyspace = Keyspace(client, SYSTEM.schema, use_search=None if backend != "real-scan" else False)
    await keyspace.setup()
    yield keyspace
    await client.aclose()


async def read(ks: Keyspace, person_id: str) -> dict[str, Any]:
    got: dict[str, Any] = orjson.loads(await ks.profiles.read(P, person_id))
    return got


def test_a_write_makes_stale_its_own_card_and_its_companions_card() -> None:
    assert stale_keys(SYSTEM.schema, P, ADA, {"name": "x"}) == [card(ADA)]
    assert stale_keys(SYSTEM.schema, A, "x", {"person_id": BOB}) == [card(BOB)]
    assert stale_keys(SYSTEM.schema, A, "x", {"person_id": None}) == []


def test_a_companion_must_be_a_unique_reference_to_the_entity() -> None:
    loose = table(
        "about",
        collection="abouts",
        id=IdStrategy.UUID,
        fields=(ref("person_id", "person", on_delete=OnDelete.CASCADE),),
    )
    with pytest.raises(AssertionError, match="unique"):
        Schema((PERSON, loose))
    with pytest.raises(AssertionError, match="companion"):
        Profile("x:card", ("name",), "about")


def test_a_profile_cannot_show_what_only_admins_read() -> None:
    with pytest.raises(AssertionError, match="admin-only"):
        System(
            name="cards",
            title="cards",
            schema=Schema((PERSON, ABOUT)),
            namespace="cards:",
            principal="person",
            admin_only_fields=("name",),
        )


async def test_cached_and_read_your_writes(cks: Keyspace) -> None:
    await cks.create(P, {"id": ADA, "name": "Ada", "email": "ada@x.dev"})
    assert await read(cks, ADA) == {"name": "Ada", "tags": []}  # the companion's default
    assert orjson.loads(await cks.client.get(card(ADA)) or b"") == {"name": "Ada", "tags": []}
    assert 0 < await cks.client.pttl(card(ADA)) <= 60_000
    about = await cks.create(A, {"person_id": ADA, "tags": ["ai"]})
    assert not await cks.client.exists(card(ADA))  # deleted by the create's commit
    assert await read(cks, ADA) == {"name": "Ada", "tags": ["ai"]}
    await cks.patch(P, ADA, {"name": "Ada L."})
    assert await read(cks, ADA) == {"name": "Ada L.", "tags": ["ai"]}
    await cks.patch(A, about.doc["id"], {"tags": ["ai", "ml"]})
    assert await read(cks, ADA) == {"name": "Ada L.", "tags": ["ai", "ml"]}
    # The companion moves to another person: both cards change at once.
    await cks.create(P, {"id": BOB, "name": "Bob"})
    assert await read(cks, BOB) == {"name": "Bob", "tags": []}
    await cks.patch(A, about.doc["id"], {"person_id": BOB})
    assert await read(cks, ADA) == {"name": "Ada L.", "tags": []}
    assert await read(cks, BOB) == {"name": "Bob", "tags": ["ai", "ml"]}
    # A cascade delete takes the card with it; a deleted person has none.
    await cks.delete(P, BOB)
    assert not await cks.client.exists(card(BOB))
    with pytest.raises(NotFound):
        await cks.profiles.read(P, BOB)
    assert not await cks.client.exists(card(BOB))
    with pytest.raises(NotFound):
        await cks.profiles.read(P, "not an id")


async def test_a_card_computed_before_a_write_is_not_stored_after_it(cks: Keyspace) -> None:
    """The in-flight race: sources read, a write commits (deleting the entry), then the
    store arrives; profile.lua refuses it, as it refuses any source that changed."""
    await cks.create(P, {"id": ADA, "name": "Ada"})
    names = SYSTEM.schema.names
    doc_key = P.key(ADA)
    ref_set = names.ref_key(doc_key, A.prefix, "person_id")
    raw = await call(cks.client, "JSON.GET", doc_key, ".")
    base = [names.pause_key(), card(ADA), doc_key, ref_set]
    stale = b'{"name":"Ada","tags":[]}'
    await cks.patch(P, ADA, {"name": "Ada L."})
    put = ["put", 60_000, stale, raw, "0"]
    assert (await cks.scripts.profile(base, put))[1] == 0
    raw = await call(cks.client, "JSON.GET", doc_key, ".")
    made = await cks.create(A, {"person_id": ADA})  # a companion appeared meanwhile
    assert (await cks.scripts.profile(base, ["put", 60_000, stale, raw, "0"]))[1] == 0
    assert not await cks.client.exists(card(ADA))
    companion = A.key(made.doc["id"])
    craw = await call(cks.client, "JSON.GET", companion, ".")
    now = ["put", 60_000, b"{}", raw, "1", made.doc["id"], craw]
    assert (await cks.scripts.profile([*base, companion], now))[1] == 1  # all still hold


async def test_a_deployment_without_caches_computes_every_read(cks: Keyspace) -> None:
    uncached = System(
        name="cards",
        title="cards",
        schema=Schema((PERSON, ABOUT)),
        namespace="cards:",
        principal="person",
    ).served(cache_ttl=0, ttls={"person.profile": 5})
    spec = uncached.schema.entity("person")
    assert spec.profile is not None and not spec.profile.cached and spec.profile.ttl_seconds == 5
    ks = Keyspace(cks.client, uncached.schema)
    await ks.create(spec, {"id": ADA, "name": "Ada"})
    assert orjson.loads(await ks.profiles.read(spec, ADA)) == {"name": "Ada", "tags": []}
    assert not await cks.client.exists(card(ADA))
