"""What fields= and expand= answer is valid against the service's own OpenAPI document (a
review found sparse and expanded answers refused by it, so a generated client's from_dict
raised on them): every system, its demo data, every read by id, list and relation list."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator, ValidationError

from app import openapi
from app.routes import route_table
from app.state import KEYSPACE
from keyspace import EntitySpec, System, demo, systems
from keyspace.sparse import EXPANDED, model_tree
from keyspace.testing import Factory
from tests.api.conftest import Client, Serve

Shapes = list[dict[str, str]]


def validator(spec: dict[str, Any], path: str) -> Draft202012Validator:
    """The 200 answer's schema of ``GET path``, its references resolving in ``spec``."""
    ok = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
    return Draft202012Validator({**ok["schema"], "components": spec["components"]})


def first_fitting(spec: dict[str, Any], path: str, doc: dict[str, Any]) -> str:
    """The schema a generated client parses ``doc`` as: the first member of the read's
    anyOf it is valid against."""
    ok = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
    for member in ok["schema"]["anyOf"]:
        if Draft202012Validator({**member, "components": spec["components"]}).is_valid(doc):
            return str(member["$ref"]).rsplit("/", 1)[-1]
    raise AssertionError(f"no member of {path}'s answer fits {doc}")


def parsed_as(entity: EntitySpec, params: dict[str, str]) -> str:
    model = entity.model.__name__
    return model + ("Expanded" if "expand" in params else "Partial" if params else "")


def shapes(entity: EntitySpec) -> Shapes:
    """One sparse answer of a top-level field, one of a nested path (when the model nests),
    and with references, expanded whole and expanded sparse."""
    tree = model_tree(entity.model)
    top = next(n for n in tree if n != entity.id_field)
    nested = [f"{n}.{next(iter(inner))}" for n, inner in tree.items() if inner]
    out: Shapes = [{}, {"fields": top}, *({"fields": p} for p in nested[:1])]
    if entity.references:
        every = ",".join(r.field for r in entity.references)
        out += [{"expand": every}, {"fields": entity.id_field, "expand": every}]
    return out


async def answer(api: Client, path: str, params: dict[str, str]) -> Any:
    resp = await api.get(path, params=params)
    assert resp.status == 200, (path, params, await resp.text())
    return await resp.json()


async def with_data(api: Client, system: System) -> None:
    """The system's demo data, and a factory-made document of each entity it has none of."""
    ks = api.app[KEYSPACE]
    await demo.load(ks, orjson.loads(demo.demo_file(system).read_bytes()))
    factory = Factory(system, ks)
    for entity in system.schema.entities:
        if not (await answer(api, f"/api/{entity.collection}", {"limit": "1"}))["items"]:
            await factory.create(entity)


def relation_paths(system: System, ids: dict[str, str]) -> list[tuple[str, str, EntitySpec]]:
    """(template, path, entity listed) of every relation list, under a document that is."""
    out = []
    for route in route_table(system):
        parts = route.path.strip("/").split("/")
        if route.lists is not None and len(parts) == 4 and parts[2] == "{id}":
            out.append((route.path, route.path.replace("{id}", ids[parts[1]]), route.lists))
    return out


@pytest.mark.parametrize("name", systems.names())
async def test_sparse_and_expanded_answers_match_the_documented_schemas(
    serve: Serve,
    name: str,
) -> None:
    api, system = await serve(name), systems.load(name)
    spec = await answer(api, "/openapi.json", {})
    await with_data(api, system)
    ids: dict[str, str] = {}
    checked, embedded = 0, 0
    for entity in system.schema.entities:
        base = f"/api/{entity.collection}"
        lists, reads = validator(spec, base), validator(spec, f"{base}/{{id}}")
        first = (await answer(api, base, {"limit": "1"}))["items"][0]
        ids[entity.collection] = doc_id = first[entity.id_field]
        for params in shapes(entity):
            page = await answer(api, base, {**params, "limit": "5"})
            read = await answer(api, f"{base}/{doc_id}", params)
            lists.validate(page)
            reads.validate(read)
            read_path = f"{base}/{{id}}"
            assert first_fitting(spec, read_path, read) == parsed_as(entity, params), params
            checked += 1
            embedded += sum(
                1
                for doc in (read, *page["items"])
                for value in doc.get(EXPANDED, {}).values()
                if value not in (None, [])
            )
            if params:  # the schema refuses what no answer holds: the check is not vacuous
                with pytest.raises(ValidationError):
                    reads.validate({**read, "no_such_field": 1})
                with pytest.raises(ValidationError):
                    reads.validate({k: v for k, v in read.items() if k != entity.id_field})
    for template, path, entity in relation_paths(system, ids):
        for params in shapes(entity):
            validator(spec, template).validate(await answer(api, path, params))
    assert checked > len(system.schema.entities)
    assert embedded > 0, "no expanded answer embedded a document"


def test_reads_and_list_items_document_the_model_and_its_shaped_forms() -> None:
    """Generated clients parse the first member that fits: the expanded form (it requires
    _expanded) before the model, whose parser would drop _expanded; the partial after it."""
    system = systems.load()
    document = openapi.build(route_table(system), system)
    schemas = document["components"]["schemas"]
    expected = {
        "drivers": ["DriverExpanded", "Driver", "DriverPartial"],
        "users": ["User", "UserPartial"],  # users refer to nothing: no expanded form
    }
    for collection, members in expected.items():
        read = document["paths"][f"/api/{collection}/{{id}}"]["get"]["responses"]["200"]
        listed = document["paths"][f"/api/{collection}"]["get"]["responses"]["200"]
        page = listed["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        for answer in (
            read["content"]["application/json"]["schema"],
            schemas[page]["properties"]["items"]["items"],
        ):
            assert [re.sub(".*/", "", m["$ref"]) for m in answer["anyOf"]] == members
    fields = set(system.schema.entity("driver").model.model_fields)
    assert schemas["DriverPartial"]["required"] == ["driver_id"]
    assert set(schemas["DriverPartial"]["properties"]) == fields
    assert schemas["DriverExpanded"]["required"] == ["driver_id", EXPANDED]
    assert set(schemas["DriverExpanded"]["properties"]) == {*fields, EXPANDED}
    assert "UserExpanded" not in schemas
