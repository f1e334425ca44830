"""``POST /api/<collection>/search`` through HTTP on fakeredis and the real server: the k
nearest as ``{"items", "scores"}`` with the documents as stored, the list filters as a JSON
object, and every refusal in the one error format."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import fakeredis
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate

from app import create_app
from app.config import Settings
from keyspace import systems
from keyspace.declare import enum, integer, table, text, timestamp, vector
from keyspace.schema import IdStrategy, Schema
from keyspace.system import System

from .conftest import ADMIN_TOKEN, AUTH, backend

Client = TestClient[web.Request, web.Application]

DOCUMENTS = table(
    "document",
    collection="documents",
    id=IdStrategy.CUID,
    fields=(
        enum("kind", ("note", "paper"), default="note", index=True),
        integer("year", default=2024, index=True),
        timestamp("at", null=True, index=True),
        text("title", null=True),
        vector("embedding", 3, null=True),
    ),
)
TAGS = table("tag", collection="tags", id=IdStrategy.CUID, fields=(enum("k", ("a",)),))
ACCOUNT = table("account", collection="accounts", id=IdStrategy.CUID, fields=(), owner="id")
SYSTEM = System(
    name="vectorapi",
    title="vector API",
    schema=Schema((ACCOUNT, DOCUMENTS, TAGS)),
    namespace="vectorapi:",
    principal="account",
)
SEARCH = "/api/documents/search"


@pytest.fixture(
    params=[
        pytest.param("fake", id="fakeredis"),
        pytest.param("real", id="redis", marks=pytest.mark.redis),
    ]
)
async def api(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Client]:
    """The test system served on an empty Redis (systems.load finds only declared packages)."""
    redis = await backend(request)
    monkeypatch.setattr(
        systems, "load", lambda name, namespace=None, *_, **__: SYSTEM.served(namespace)
    )
    app = create_app(Settings(admin_token=ADMIN_TOKEN, system="vectorapi"), client=redis)
    client: Client = TestClient(TestServer(app), headers=AUTH)
    await client.start_server()
    yield client
    await client.close()
    await redis.aclose()


def cid(n: int) -> str:
    return f"c{n:024d}"


async def add(api: Client, n: int, embedding: Any, **extra: Any) -> dict[str, Any]:
    response = await api.post(
        "/api/documents", json={"id": cid(n), "embedding": embedding, **extra}
    )
    assert response.status == 201, await response.text()
    doc: dict[str, Any] = await response.json()
    return doc


async def searched(api: Client, body: Any, status: int = 200, **kw: Any) -> dict[str, Any]:
    response = await api.post(SEARCH, json=body, **kw)
    assert response.status == status, await response.text()
    answer: dict[str, Any] = await response.json()
    return answer


async def refused(api: Client, body: Any, status: int, code: str, field: str) -> str:
    error = (await searched(api, body, status))["error"]
    assert error["code"] == code, error
    assert error["details"][0]["field"] == field, error
    message: str = error["message"]
    return message


async def world(api: Client) -> list[dict[str, Any]]:
    return [
        await add(api, 1, [1, 0, 0], kind="paper", year=2020, title="graph networks"),
        await add(api, 2, [1, 1, 0], kind="note", year=2021),
        await add(api, 3, [0, 1, 0], kind="paper", year=2022, title="protein folding"),
        await add(api, 4, [-1, 0, 0], kind="paper", year=2023),
        await add(api, 5, None),
        await add(api, 6, [0, 0, 0]),
        await add(api, 7, [2, 0, 0], kind="note", year=2020),
    ]


async def test_the_nearest_come_with_their_scores_and_as_stored(api: Client) -> None:
    docs = {d["id"]: d for d in await world(api)}
    answer = await searched(api, {"vector": [1, 0.0, 0], "k": 3})
    assert set(answer) == {"items", "scores"}
    assert [d["id"] for d in answer["items"]] == [cid(1), cid(7), cid(2)]
    assert answer["scores"] == [0.0, 0.0, round(1 - 1 / math.sqrt(2), 6)]
    for item in answer["items"]:  # untouched: exactly the stored document
        assert item == docs[item["id"]]
        assert item == await (await api.get(f"/api/documents/{item['id']}")).json()
    every = await searched(api, {"vector": [1, 0, 0], "k": 1000})
    assert [d["id"] for d in every["items"]] == [cid(1), cid(7), cid(2), cid(3), cid(4)]
    assert every["scores"] == [0.0, 0.0, 0.292893, 1.0, 2.0]
    default = await searched(api, {"vector": [0, 1, 0]})
    assert len(default["items"]) == 5  # k defaults to 10


async def test_the_filter_is_the_list_vocabulary(api: Client) -> None:
    await world(api)

    async def ids(flt: dict[str, Any], k: int = 10) -> list[str]:
        answer = await searched(api, {"vector": [1, 0, 0], "k": k, "filter": flt})
        return [d["id"][-1] for d in answer["items"]]

    assert await ids({"kind": "paper"}) == ["1", "3", "4"]
    assert await ids({"kind": ["paper", "note"]}, k=2) == ["1", "7"]
    assert await ids({"year_min": 2021, "year_max": "2022"}) == ["2", "3"]
    assert await ids({"year": [2020, 2023]}) == ["1", "7", "4"]
    assert await ids({"q": "PROTEIN"}) == ["3"]
    assert await ids({"kind": "paper", "year": 1999}) == []
    listed = await api.get("/api/documents", params={"kind": "paper", "year_min": "2021"})
    assert [d["id"][-1] for d in (await listed.json())["items"]] == ["3", "4"]


async def test_search_parameters_are_refused_with_400(api: Client) -> None:
    for k in (0, 1001, "10", True, 2.5, None):
        message = await refused(api, {"vector": [1, 0, 0], "k": k}, 400, "invalid_parameter", "k")
        assert "from 1 to 1000" in message
    cases = [
        ({"nosuch": 1}, "filter.nosuch"),
        ({"embedding": [1, 0, 0]}, "filter.embedding"),
        ({"year": "soon"}, "filter.year"),
        ({"at_min": "2024-01-01T00:00:00"}, "filter.at_min/_max"),
        ({"sort": "year"}, "filter.sort"),
        ({"kind": {"in": "paper"}}, "filter.kind"),
        ("kind=paper", "filter"),
    ]
    for flt, field in cases:
        await refused(api, {"vector": [1, 0, 0], "filter": flt}, 400, "invalid_parameter", field)


async def test_vectors_and_bodies_are_refused_with_422(api: Client) -> None:
    cases = [
        ({"vector": [1, 0]}, "vector", "has 2 numbers; this vector has exactly 3"),
        ({"vector": [1, 0, 0, 0]}, "vector", "has 4 numbers"),
        ({"vector": [1, "0", 0]}, "vector", "member 1 must be a number, not a string"),
        ({"vector": [1, True, 0]}, "vector", "member 1 must be a number, not a boolean"),
        ({"vector": [0, 0, 0.0]}, "vector", "all zeros"),
        ({"k": 3}, "vector", "must be an array of 3 numbers"),
        ({"vector": [1, 0, 0], "limit": 3}, "limit", "not a member of a search"),
    ]
    for body, field, words in cases:
        assert words in await refused(api, body, 422, "validation_failed", field)
    await refused(api, [1, 0, 0], 422, "validation_failed", "(body)")
    for raw in (b'{"vector": [1e999, 0, 0]}', b'{"vector": [NaN, 0, 0]}', b"{"):
        response = await api.post(SEARCH, data=raw, headers={"Content-Type": "application/json"})
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "malformed_json"
    created = await api.post("/api/documents", json={"embedding": [1, 2]})
    assert created.status == 422
    assert (await created.json())["error"]["details"][0]["field"] == "embedding"


async def test_a_member_searches_as_a_read_and_lists_refuse_the_vector(api: Client) -> None:
    await world(api)
    account = await api.post("/api/accounts", json={})
    minted = await api.post(f"/api/accounts/{(await account.json())['id']}/tokens", json={})
    member = {"Authorization": f"Bearer {(await minted.json())['token']}"}
    answer = await searched(api, {"vector": [0, 1, 0], "k": 1}, headers=member)
    assert [d["id"] for d in answer["items"]] == [cid(3)]
    listed = await api.get("/api/documents", params={"embedding": "1"})
    assert listed.status == 400
    anonymous = await api.post(SEARCH, json={"vector": [0, 1, 0]}, headers={"Authorization": ""})
    assert anonymous.status == 401
    assert (await api.post("/api/tags/search", json={"vector": [1]})).status == 405  # no vector


async def test_openapi_describes_the_search(api: Client) -> None:
    spec = await (await api.get("/openapi.json")).json()
    validate(spec)
    op = spec["paths"][SEARCH]["post"]
    body = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    ok = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    schemas = spec["components"]["schemas"]
    request, response = schemas[body.rsplit("/", 1)[1]], schemas[ok.rsplit("/", 1)[1]]
    assert request["required"] == ["vector"]
    assert (
        request["properties"]["vector"]["minItems"]
        == request["properties"]["vector"]["maxItems"]
        == 3
    )
    assert request["properties"]["k"]["maximum"] == 1000
    assert set(request["properties"]["filter"]["properties"]) == {
        "id", "kind", "year", "year_min", "year_max", "at", "q",
    }  # fmt: skip
    assert response["required"] == ["items", "scores"]
    assert {"400", "422", "401", "429", "503"} <= set(op["responses"])
    assert "403" not in op["responses"]  # a read, open to whoever lists the collection
    assert "/api/tags/search" not in spec["paths"]
    listing = {p["name"] for p in spec["paths"]["/api/documents"]["get"]["parameters"]}
    assert "embedding" not in listing


async def test_a_search_counts_as_a_read(monkeypatch: pytest.MonkeyPatch) -> None:
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), protocol=2)
    monkeypatch.setattr(
        systems, "load", lambda name, namespace=None, *_, **__: SYSTEM.served(namespace)
    )
    settings = Settings(admin_token=ADMIN_TOKEN, system="vectorapi", admin_write_per_minute=1)
    async with TestClient(TestServer(create_app(settings, client=redis)), headers=AUTH) as api:
        await add(api, 1, [1, 0, 0])  # the one write a minute
        for _ in range(3):
            assert [d["id"] for d in (await searched(api, {"vector": [1, 0, 0]}))["items"]] == [
                cid(1)
            ]
        limited = await api.post("/api/documents", json={"embedding": [0, 1, 0]})
        assert limited.status == 429
    await redis.aclose()
