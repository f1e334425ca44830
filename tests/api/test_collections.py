"""CRUD over every collection: seed-shaped bodies, ids, ETags, NFTs, imports and cascades."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from app.state import KEYSPACE
from keyspace import codec
from keyspace.connection import call

Client = TestClient[web.Request, web.Application]
OWNER = "0x1234567890123456789012345678901234567890"
SEED_TIME = "2025-09-29T10:30:00"
NOW = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
ETAG = re.compile(r'^"[0-9a-f]+"$')


def chip(cores: int = 128, chip_type: str = "quantum_processor", **extra: Any) -> dict[str, Any]:
    base = {"type": chip_type, "cores": cores, "frequency": "4.5GHz", "architecture": "QubitCore"}
    return {**base, **extra}


def user_body(name: str, role: str = "designer") -> dict[str, Any]:
    return {"username": name, "email": f"{name.lower()}@example.com", "role": role}


def driver_body(user_id: str = "user_1", **extra: Any) -> dict[str, Any]:
    body = {"user_id": user_id, "chip_id": "chip_quantum_1", "chip_data": chip()}
    return {**body, "version": "2.1.0", **extra}


def collab_body(user_id: str = "user_1", members: list[str] | None = None, **extra: Any) -> Any:
    body = {"user_id": user_id, "chip_id": "chip_quantum_1", "chip_data": chip()}
    return {**body, "collaborators": members or [], **extra}


def process_body(user_id: str = "user_1", **extra: Any) -> dict[str, Any]:
    return {"user_id": user_id, "chip_data": chip(), **extra}


def nft_body(user_id: str = "user_1", chip_id: str = "chip_quantum_1", **extra: Any) -> Any:
    return {"user_id": user_id, "chip_id": chip_id, "owner": OWNER, **extra}


def quest_body(user_id: str = "user_1", title: str = "Quantum Chip Design", **extra: Any) -> Any:
    body = {"user_id": user_id, "title": title, "reward": "nft_quantum_designer"}
    return {**body, "description": "Design a quantum processor with 128 cores", **extra}


async def created(api: Client, collection: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = await api.post(f"/api/{collection}", json=body)
    assert resp.status == 201, await resp.text()
    doc: dict[str, Any] = await resp.json()
    return doc


async def make_users(api: Client, *names: str) -> list[str]:
    return [(await created(api, "users", user_body(n)))["user_id"] for n in names]


async def fetch(api: Client, path: str) -> tuple[int, Any, str | None]:
    resp = await api.get(path)
    return resp.status, await resp.json(), resp.headers.get("ETag")


@dataclass(frozen=True)
class Case:
    """One collection: what to send and the seed-shaped documents that should result."""

    collection: str
    doc_id: str
    order: tuple[str, ...]
    create: dict[str, Any]
    expected: dict[str, Any]
    replace: dict[str, Any]
    patch: dict[str, Any]
    patched: dict[str, Any]

    @property
    def id_field(self) -> str:
        return self.order[0]

    @property
    def times(self) -> tuple[str, ...]:
        return tuple(f for f in self.order if f in ("created_at", "timestamp"))


NFT_ID = "nft_user_1_chip_quantum_1"
CHIP_ORDER = ("chip_id", "chip_data")
CASES = [
    Case(
        "users",
        "user_1",
        ("user_id", "username", "email", "role", "created_at"),
        {"role": "admin", "email": "holo@misha.com", "username": "HoloMisha"},
        {"username": "HoloMisha", "email": "holo@misha.com", "role": "admin"},
        {**user_body("Misha2", "engineer"), "created_at": SEED_TIME},
        {"role": "designer"},
        {"username": "Misha2", "role": "designer", "created_at": SEED_TIME},
    ),
    Case(
        "drivers",
        "driver_1",
        ("driver_id", "user_id", *CHIP_ORDER, "status", "version", "timestamp"),
        {"version": "2.1.0", "chip_data": chip(), "chip_id": "chip_quantum_1", "user_id": "user_1"},
        {**driver_body(), "status": "generated"},
        driver_body(version="3.0.0", chip_data=chip(64, "neural_processor"), status="generated"),
        {"chip_data": {"cores": 256}, "status": "optimized"},
        {"chip_data": chip(256, "neural_processor"), "status": "optimized", "version": "3.0.0"},
    ),
    Case(
        "collabs",
        "collab_1",
        ("collab_id", "user_id", *CHIP_ORDER, "collaborators", "status", "timestamp"),
        {"chip_data": chip(), "user_id": "user_1", "chip_id": "chip_quantum_1"},
        {**collab_body(), "status": "active"},
        collab_body(members=["user_1"], status="active", timestamp=SEED_TIME),
        {"chip_data": {"frequency": "5GHz"}, "status": "completed"},
        {"chip_data": chip(frequency="5GHz"), "status": "completed", "collaborators": ["user_1"]},
    ),
    Case(
        "processes",
        "process_1",
        ("process_id", "user_id", "chip_data", "status", "timestamp"),
        {"chip_data": chip(), "user_id": "user_1"},
        {**process_body(), "status": "running"},
        process_body(chip_data=chip(8, "crypto_processor"), status="running", timestamp=SEED_TIME),
        {"chip_data": {"architecture": "ZK"}, "status": "completed"},
        {"chip_data": chip(8, "crypto_processor", architecture="ZK"), "status": "completed"},
    ),
    Case(
        "nfts",
        NFT_ID,
        ("nft_id", "user_id", "chip_id", "metadata_uri", "owner"),
        {"owner": OWNER, "chip_id": "chip_quantum_1", "user_id": "user_1"},
        {**nft_body(), "metadata_uri": f"ipfs://metadata/{NFT_ID}"},
        {**nft_body(), "metadata_uri": "ipfs://custom/1", "owner": "0x" + "ab" * 20},
        {"metadata_uri": "ipfs://custom/2"},
        {"metadata_uri": "ipfs://custom/2", "owner": "0x" + "ab" * 20},
    ),
    Case(
        "quests",
        "quest_1",
        ("quest_id", "user_id", "title", "description", "status", "reward", "timestamp"),
        {"reward": "nft_quantum_designer", "title": "Quantum Chip Design", "user_id": "user_1"},
        {**quest_body(), "description": "", "status": "active"},
        quest_body(title="Neural", status="active", timestamp=SEED_TIME),
        {"status": "completed", "description": "done"},
        {"title": "Neural", "status": "completed", "description": "done", "timestamp": SEED_TIME},
    ),
]
CASE_IDS = [c.collection for c in CASES]


async def prepare(api: Client, case: Case) -> None:
    if case.collection != "users":
        assert await make_users(api, "HoloMisha") == ["user_1"]


def check_shape(case: Case, doc: dict[str, Any], expected: dict[str, Any]) -> None:
    assert tuple(doc) == case.order  # every seed field, in the seed's order, nothing else
    assert doc[case.id_field] == case.doc_id
    for name in case.times:
        if name not in expected:
            assert NOW.match(doc[name]), doc[name]
    assert {k: v for k, v in doc.items() if k in expected} == expected


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
async def test_create_then_get_returns_the_stored_document(api: Client, case: Case) -> None:
    await prepare(api, case)
    resp = await api.post(f"/api/{case.collection}", json=case.create)
    assert resp.status == 201, await resp.text()
    assert resp.headers["Location"] == f"/api/{case.collection}/{case.doc_id}"
    assert ETAG.match(resp.headers["ETag"])
    doc = await resp.json()
    assert {*case.expected, *case.times, case.id_field} == set(case.order)
    check_shape(case, doc, {**case.expected, case.id_field: case.doc_id})
    status, again, tag = await fetch(api, resp.headers["Location"])
    assert (status, again, tag) == (200, doc, resp.headers["ETag"])
    assert list(again) == list(doc)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
async def test_put_patch_delete(api: Client, case: Case) -> None:
    await prepare(api, case)
    first = await created(api, case.collection, case.create)
    url = f"/api/{case.collection}/{case.doc_id}"
    resp = await api.put(url, json=case.replace)
    assert resp.status == 200, await resp.text()
    replaced = await resp.json()
    check_shape(case, replaced, {**case.replace, case.id_field: case.doc_id})
    assert await fetch(api, url) == (200, replaced, resp.headers["ETag"])
    resp = await api.patch(url, json=case.patch)
    assert resp.status == 200, await resp.text()
    patched = await resp.json()
    check_shape(case, patched, case.patched)
    assert patched != first
    assert await fetch(api, url) == (200, patched, resp.headers["ETag"])
    resp = await api.delete(url)
    assert resp.status == 204
    assert await resp.read() == b""
    status, body, _ = await fetch(api, url)
    assert status == 404
    assert body["error"]["code"] == "not_found"


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
async def test_if_match_with_the_current_etag_succeeds(api: Client, case: Case) -> None:
    await prepare(api, case)
    resp = await api.post(f"/api/{case.collection}", json=case.create)
    url, tag = resp.headers["Location"], resp.headers["ETag"]
    resp = await api.put(url, json=case.replace, headers={"If-Match": tag})
    assert resp.status == 200, await resp.text()
    assert resp.headers["ETag"] != tag
    tag = resp.headers["ETag"]
    resp = await api.patch(url, json=case.patch, headers={"If-Match": tag})
    assert resp.status == 200, await resp.text()
    check_shape(case, await resp.json(), case.patched)
    assert (await fetch(api, url))[2] == resp.headers["ETag"]
    resp = await api.delete(url, headers={"If-Match": resp.headers["ETag"]})
    assert resp.status == 204
    assert (await api.get(url)).status == 404


async def test_patch_merges_nested_chip_data(api: Client) -> None:
    await make_users(api, "HoloMisha")
    await created(api, "drivers", driver_body())
    resp = await api.patch("/api/drivers/driver_1", json={"chip_data": {"cores": 512}})
    assert resp.status == 200
    doc = await resp.json()
    assert doc["chip_data"] == chip(512)
    assert list(doc["chip_data"]) == ["type", "cores", "frequency", "architecture"]
    assert (doc["status"], doc["version"]) == ("generated", "2.1.0")


async def test_nft_id_metadata_and_single_mint(api: Client) -> None:
    await make_users(api, "HoloMisha")
    doc = await created(api, "nfts", nft_body())
    assert doc == {**nft_body(), "nft_id": NFT_ID, "metadata_uri": f"ipfs://metadata/{NFT_ID}"}
    custom = await created(api, "nfts", nft_body(chip_id="chip_neural_2", metadata_uri="ipfs://m"))
    assert (custom["nft_id"], custom["metadata_uri"]) == ("nft_user_1_chip_neural_2", "ipfs://m")
    resp = await api.post("/api/nfts", json=nft_body(owner="0x" + "cd" * 20))
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "already_exists"
    assert (await fetch(api, f"/api/nfts/{NFT_ID}"))[1]["owner"] == OWNER


@pytest.mark.parametrize(
    "owner", ["1234567890123456789012345678901234567890", "0x123", "0x" + "g" * 40, "0x" + "a" * 41]
)
async def test_nft_owner_must_be_an_address(api: Client, owner: str) -> None:
    await make_users(api, "HoloMisha")
    resp = await api.post("/api/nfts", json=nft_body(owner=owner))
    assert resp.status == 422
    assert (await resp.json())["error"]["details"][0]["field"] == "owner"
    assert (await api.get(f"/api/nfts/{NFT_ID}")).status == 404


async def test_explicit_id_is_an_import_and_the_counter_follows(api: Client) -> None:
    resp = await api.post("/api/users", json={**user_body("Seven"), "user_id": "user_7"})
    assert resp.status == 201
    assert resp.headers["Location"] == "/api/users/user_7"
    assert (await resp.json())["user_id"] == "user_7"
    assert (await created(api, "users", user_body("Eight")))["user_id"] == "user_8"
    resp = await api.post("/api/users", json={**user_body("Again"), "user_id": "user_7"})
    assert resp.status == 409
    status, doc, _ = await fetch(api, "/api/users/user_7")
    assert (status, doc["username"]) == (200, "Seven")
    imported = await created(api, "drivers", driver_body("user_7", driver_id="driver_3"))
    assert imported["driver_id"] == "driver_3"
    assert (await created(api, "drivers", driver_body("user_7")))["driver_id"] == "driver_4"


async def test_deleting_a_user_cascades_and_pulls_memberships(api: Client) -> None:
    assert await make_users(api, "One", "Two", "Three") == ["user_1", "user_2", "user_3"]
    await created(api, "drivers", driver_body())
    await created(api, "processes", process_body())
    await created(api, "nfts", nft_body())
    await created(api, "quests", quest_body())
    await created(api, "collabs", collab_body(members=["user_2"]))
    await created(api, "collabs", collab_body("user_2", members=["user_1", "user_3"]))
    kept = await created(api, "drivers", driver_body("user_2"))
    before = (await fetch(api, "/api/collabs/collab_2"))[2]
    resp = await api.delete("/api/users/user_1")
    assert resp.status == 204
    gone = ["users/user_1", "drivers/driver_1", "processes/process_1", f"nfts/{NFT_ID}"]
    for path in (f"/api/{p}" for p in [*gone, "quests/quest_1", "collabs/collab_1"]):
        assert (await api.get(path)).status == 404, path
    status, other, after = await fetch(api, "/api/collabs/collab_2")
    assert (status, other["collaborators"], other["user_id"]) == (200, ["user_3"], "user_2")
    assert after != before
    status, still, _ = await fetch(api, "/api/drivers/driver_2")
    assert (status, still) == (200, kept)
    listed = await (await api.get("/api/drivers")).json()
    assert [d["driver_id"] for d in listed["items"]] == ["driver_2"]


async def test_a_read_serves_the_stored_bytes_under_their_revision(api: Client) -> None:
    """GET by id sends the document as the server returned it, never re-encoded, so the
    body hashes to the ETag (the revision If-Match compares)."""
    user_id = (await make_users(api, "Bytes"))[0]
    stored = await call(api.app[KEYSPACE].client, "JSON.GET", f"user:{user_id}", ".")
    resp = await api.get(f"/api/users/{user_id}")
    body = await resp.read()
    assert (resp.status, body) == (200, stored)
    assert resp.headers["ETag"] == f'"{codec.revision(body)}"'
    assert resp.headers["Content-Type"].startswith("application/json")
