"""Sensitive fields stored encrypted (docs/encryption.md), on every backend: what Redis holds,
what reads return, and equality filters and uniqueness through blind tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from keyspace import NFT, USER, Keyspace, UniqueConflict, crypto, parse
from keyspace.connection import call
from keyspace.keyring import KeyringError
from tests import factories as f
from tests.conftest import BACKENDS, client_for

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))
EMAIL = "Holo@Misha.com"
OWNER = "0x" + "Ab" * 20


@pytest.fixture(params=BACKENDS)
async def sealed(request: pytest.FixtureRequest) -> AsyncIterator[Keyspace]:
    backend: str = request.param
    client = await client_for(request, backend)
    ks = Keyspace(client, use_search=None if backend != "real-scan" else False)
    await ks.setup()
    await ks.unlock(KEY)
    yield ks
    await client.aclose()


async def everything(ks: Keyspace) -> dict[bytes, bytes]:
    """Every key name and value Redis holds, as DUMP serializes it."""
    return {key: await ks.client.dump(key) or b"" async for key in ks.client.scan_iter(count=500)}


async def test_sensitive_values_are_stored_sealed_and_read_back_plain(sealed: Keyspace) -> None:
    user = await f.user(sealed, "HoloMisha", email=EMAIL)
    assert user.doc["email"] == EMAIL  # what the create answers
    raw = orjson.loads(await call(sealed.client, "JSON.GET", "user:user_1", "."))
    assert raw["email"].startswith(crypto.PREFIX) and raw["username"] == "HoloMisha"
    assert (await sealed.get(USER, "user_1")).doc["email"] == EMAIL
    nft = await sealed.create(NFT, {"user_id": "user_1", "chip_id": "chip_1", "owner": OWNER})
    assert nft.doc["owner"] == OWNER
    page = await sealed.list(USER, parse(USER, {}))
    assert [d["email"] for d in page.items] == [EMAIL]
    stored = b"\n".join(k + b"\n" + v for k, v in (await everything(sealed)).items())
    for plain in (EMAIL, EMAIL.lower(), OWNER, OWNER.lower()):
        assert plain.encode() not in stored


async def test_equality_filters_find_sealed_values_caseless(sealed: Keyspace) -> None:
    await f.user(sealed, "HoloMisha", email=EMAIL)
    await f.user(sealed, "Bob", email="bob@example.com")
    found = await sealed.list(USER, parse(USER, {"email": ["holo@MISHA.com"]}))
    assert [d["username"] for d in found.items] == ["HoloMisha"] and found.total == 1
    either = await sealed.list(USER, parse(USER, {"email": [EMAIL, "BOB@example.com"]}))
    assert either.total == 2
    assert (await sealed.list(USER, parse(USER, {"email": ["nobody@x.co"]}))).total == 0
    await sealed.create(NFT, {"user_id": "user_1", "chip_id": "chip_1", "owner": OWNER})
    owned = await sealed.list(NFT, parse(NFT, {"owner": [OWNER.upper().replace("0X", "0x")]}))
    assert owned.total == 1


async def test_uniqueness_holds_through_blind_tokens(sealed: Keyspace) -> None:
    await f.user(sealed, "HoloMisha", email=EMAIL)
    with pytest.raises(UniqueConflict):
        await f.user(sealed, "Other", email=EMAIL.upper())
    claims = [k async for k in sealed.client.scan_iter(match="mf:uniq:user:email:*")]
    assert len(claims) == 1 and claims[0].startswith(b"mf:uniq:user:email:enc:")
    bob = await f.user(sealed, "Bob", email="bob@example.com")
    with pytest.raises(UniqueConflict):
        await sealed.patch(USER, bob.doc["user_id"], {"email": EMAIL.lower()})
    moved = await sealed.patch(USER, "user_1", {"email": "new@misha.com"})
    assert moved.doc["email"] == "new@misha.com"
    await sealed.patch(USER, bob.doc["user_id"], {"email": EMAIL})  # released: free again
    assert len([k async for k in sealed.client.scan_iter(match="mf:uniq:user:email:*")]) == 2


async def test_an_unchanged_update_keeps_the_ciphertext(sealed: Keyspace) -> None:
    await f.user(sealed, "HoloMisha", email=EMAIL)
    before = orjson.loads(await call(sealed.client, "JSON.GET", "user:user_1", "."))
    await sealed.patch(USER, "user_1", {"username": "Holo2"})
    after = orjson.loads(await call(sealed.client, "JSON.GET", "user:user_1", "."))
    assert after["email"] == before["email"] and after["username"] == "Holo2"


async def test_a_missing_or_wrong_key_is_refused_and_nothing_is_written(
    sealed: Keyspace,
) -> None:
    await f.user(sealed, "HoloMisha", email=EMAIL)
    before = await everything(sealed)
    for key in (None, OTHER):
        other = Keyspace(sealed.client, use_search=sealed.capabilities.search)
        with pytest.raises(KeyringError):
            await other.unlock(key)
    assert await everything(sealed) == before


async def test_counter_ids_are_bound_and_drawn_past_ids_an_import_took(sealed: Keyspace) -> None:
    await sealed.create(
        USER, {"user_id": "user_2", "username": "Imported", "email": "i@x.co", "role": "designer"}
    )
    await sealed.client.set("user_counter", "1")  # an import left the counter behind
    made = await f.user(sealed, "Next", email="n@x.co")
    assert made.doc["user_id"] == "user_3"
    assert (await sealed.get(USER, "user_3")).doc["email"] == "n@x.co"
