"""The served OpenAPI document and the service endpoints (its /docs page: test_swagger_docs.py)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from app import openapi
from app.routes import route_table
from keyspace import MULTIFRAME, systems
from tests.api.test_collections import Client

MF = systems.load()

ERROR_REF = "#/components/schemas/Error"
METHODS = ("get", "put", "post", "patch", "delete")


async def spec_of(api: Client) -> dict[str, Any]:
    resp = await api.get("/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    spec: dict[str, Any] = await resp.json()
    return spec


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if method in METHODS
    ]


def param_names(op: dict[str, Any]) -> set[str]:
    return {p["name"] for p in op.get("parameters", [])}


async def test_document_is_valid_openapi_3(api: Client) -> None:
    spec = await spec_of(api)
    assert spec["openapi"].startswith("3.")
    validate(spec)  # raises on any violation
    broken = {**spec, "paths": {"/x": {"get": {"responses": {"200": {}}}}}}
    with pytest.raises(OpenAPIValidationError):
        validate(broken)  # the validator is not vacuous: a response needs a description


async def test_every_route_is_documented_with_its_method(api: Client) -> None:
    spec = await spec_of(api)
    table = route_table(MF)
    documented = {(path, method.upper()) for path, method, _ in operations(spec)}
    assert documented == {(r.path, r.method) for r in table}
    for route in table:
        op = spec["paths"][route.path][route.method.lower()]
        assert str(route.status) in op["responses"], route.path
        for name in ("id", "user_id", "chip_id"):
            if "{" + name + "}" in route.path:
                assert name in param_names(op)
    assert len({op["operationId"] for _, _, op in operations(spec)}) == len(table)
    for entity in MULTIFRAME.entities:
        assert {"get", "post"} <= set(spec["paths"][f"/api/{entity.collection}"])
        item = spec["paths"][f"/api/{entity.collection}/{{id}}"]
        assert {"get", "put", "patch", "delete"} <= set(item)


async def test_api_operations_document_their_errors(api: Client) -> None:
    spec = await spec_of(api)
    assert "Error" in spec["components"]["schemas"]
    by_key = {(r.path, r.method.lower()): r for r in route_table(MF)}
    for path, method, op in operations(spec):
        if not path.startswith("/api/"):
            continue
        errors = {code: r for code, r in op["responses"].items() if code.startswith(("4", "5"))}
        wanted = {str(s) for s in (*by_key[(path, method)].errors, 405, 503)}
        assert wanted <= set(errors), (path, method)
        for code, response in errors.items():
            assert response["description"], (path, method, code)
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": ERROR_REF}, (path, method, code)
    drivers = spec["paths"]["/api/drivers"]
    assert {"400", "409", "422"} <= set(drivers["post"]["responses"])
    assert {"404", "412"} <= set(spec["paths"]["/api/drivers/{id}"]["put"]["responses"])


async def test_list_operations_document_their_filters(api: Client) -> None:
    spec = await spec_of(api)
    drivers = param_names(spec["paths"]["/api/drivers"]["get"])
    assert {
        "user_id",
        "chip_id",
        "chip_type",
        "cores",
        "cores_min",
        "cores_max",
        "frequency",
        "architecture",
        "status",
        "version",
        "timestamp_min",
        "timestamp_max",
        "sort",
        "limit",
        "cursor",
    } <= drivers
    assert "q" not in drivers
    params = {p["name"]: p for p in spec["paths"]["/api/drivers"]["get"]["parameters"]}
    assert "-cores" in params["sort"]["schema"]["enum"]
    assert params["limit"]["schema"]["default"] == 50
    quests = param_names(spec["paths"]["/api/quests"]["get"])
    assert "q" in quests
    assert "title" not in quests  # full-text fields are searched through q only
    assert "q" in param_names(spec["paths"]["/api/users"]["get"])
    assert "username_text" not in param_names(spec["paths"]["/api/users"]["get"])
    related = param_names(spec["paths"]["/api/users/{id}/drivers"]["get"])
    assert {"status", "cores_min", "cursor", "id"} <= related
    for entity in MULTIFRAME.entities:
        names = param_names(spec["paths"][f"/api/{entity.collection}"]["get"])
        assert {"sort", "limit", "cursor", entity.id_field} <= names


async def test_health_and_ready(api: Client) -> None:
    resp = await api.get("/health")
    assert (resp.status, await resp.json()) == (200, {"status": "ok"})
    resp = await api.get("/ready")
    assert resp.status == 200
    body = await resp.json()
    assert body["ready"] is True
    assert body["json"] is True
    if body["search"]:
        assert set(body["indexes"]) == {e.collection for e in MULTIFRAME.entities}
        assert all(body["indexes"].values())


async def test_every_error_a_route_can_answer_is_documented(api: Client) -> None:
    """Found by the schema fuzzer: a malformed If-Match on DELETE routes, malformed JSON when
    minting a token and a missing token were answered with statuses /openapi.json lacked."""
    spec = await spec_of(api)
    created = await api.post(
        "/api/users", json={"username": "Doc", "email": "d@x.io", "role": "admin"}
    )
    assert created.status == 201
    json_headers = {"Content-Type": "application/json"}
    bad_if_match = {"If-Match": '"a", "b"'}
    cases: list[tuple[str, str, str, dict[str, Any]]] = [
        ("DELETE", "/api/drivers/{id}", "/api/drivers/driver_1", {"headers": bad_if_match}),
        ("DELETE", "/api/users/{id}", "/api/users/user_1", {"headers": bad_if_match}),
        (
            "DELETE",
            "/api/collabs/{id}/collaborators/{user_id}",
            "/api/collabs/collab_1/collaborators/user_1",
            {"headers": bad_if_match},
        ),
        (
            "POST",
            "/api/users/{id}/tokens",
            "/api/users/user_1/tokens",
            {"data": b"{", "headers": json_headers},
        ),
        ("GET", "/api/users", "/api/users", {"headers": {"Authorization": ""}}),
        ("POST", "/api/drivers", "/api/drivers", {"headers": {"Authorization": "Bearer nope"}}),
    ]
    for method, template, path, kwargs in cases:
        resp = await api.request(method, path, **kwargs)
        documented = spec["paths"][template][method.lower()]["responses"]
        assert str(resp.status) in documented, (method, path, resp.status, sorted(documented))
        assert resp.status in (400, 401), (method, path, resp.status)
    for route in route_table(MF):
        responses = spec["paths"][route.path][route.method.lower()]["responses"]
        if route.path.startswith("/api/"):
            assert {"401", "429"} <= set(responses), route.path
        if route.body:
            assert {"400", "408", "413", "415", "422"} <= set(responses), route.path
        if route.conditional:
            assert {"400", "412"} <= set(responses), route.path


@pytest.mark.parametrize("name", systems.names())
def test_every_schema_title_is_unique_and_every_ref_resolves(name: str) -> None:
    """Client generators name classes by title: two schemas with one title collide."""
    system = systems.load(name)
    document = openapi.build(route_table(system), system)
    schemas = document["components"]["schemas"]
    assert [n for n, s in schemas.items() if "title" not in s] == []
    titles = [s["title"] for s in schemas.values()]
    assert len(titles) == len(set(titles)), sorted(t for t in titles if titles.count(t) > 1)
    found = re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(document))
    assert found, "the walk is not vacuous"
    refs = set(found)
    assert refs <= set(schemas)


def test_a_view_schema_named_like_another_schema_is_refused() -> None:
    """A view's answer nesting a model named like an entity's (The Construct's progress once
    nested a ``Milestones`` of its own) would have its $ref answered by the other schema."""
    from dataclasses import replace

    from pydantic import BaseModel

    from keyspace import One, View

    construct = systems.load("construct")

    class Milestones(BaseModel):  # the name of the milestones entity's model
        total: int

    class Clashing(BaseModel):
        milestones: Milestones

    view = View("clash", "/api/clash/{id}", "x", "x", (("m", One("milestones", "id")),),
                Clashing, lambda v: v.parts)  # fmt: skip
    served = replace(construct, views=(*construct.views, view))
    table = route_table(served)
    with pytest.raises(ValueError, match="Milestones clashes"):
        openapi.build(table, served)
