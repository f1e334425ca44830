"""The OpenAPI 3.1 document, generated from the route table and the keyspace's pydantic models."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from pydantic import BaseModel

from keyspace import EntitySpec, Schema, System

from . import (
    openapi_aggregate,
    openapi_batch,
    openapi_changes,
    openapi_search,
    openapi_sparse,
    openapi_views,
    swagger,
)
from .openapi_admin import ADMIN_SCHEMAS
from .openapi_headers import (
    BODY_HEADERS,
    CORS_HEADERS,
    ERROR_HEADERS,
    IDEMPOTENCY_KEY,
    IDEMPOTENCY_TEXT,
    IDEMPOTENT_REPLAYED,
    IF_NONE_MATCH,
    RATE_HEADERS,
    REQUEST_ID_HEADER,
    REQUEST_ID_PARAM,
    header,
)
from .openapi_lists import list_parameters
from .openapi_locks import LOCK_SCHEMAS, OP_SCHEMAS, integer
from .routing import Route, aggregate_schema, member_body, profile_schema

REF = "#/components/schemas/{model}"
ERROR_TEXT = {
    400: "Malformed JSON, header or query parameter",
    401: "Missing, unknown or expired bearer token",
    403: "The caller's role or ownership does not allow this (details.rule names the rule)",
    404: "Unknown id or route",
    408: "The request body did not arrive within the configured time; the connection is closed",
    409: "Unique, reference, derived-id or state conflict (the field is named in details)",
    410: "What was asked for is no longer kept (details say what is)",
    412: "If-Match names a stale revision; nothing was written",
    413: "Body over the configured limit",
    415: "Body is not application/json, or its Content-Encoding is not identity, gzip or deflate",
    417: "An Expect header other than 100-continue",
    422: "Document fails validation (details list each field and why)",
    429: "Over the caller's rate limit (per user: reads, writes, token mints); "
    "retry after Retry-After seconds",
    503: "Redis unreachable or index not ready (or `encryption_key_retired`: this service's "
    "encryption key was retired by a rotation; another service answers); retry after "
    "Retry-After seconds",
}
NOT_DURABLE = (
    "with MULTIFRAME_MIN_REPLICAS set, also `not_durable`: the write was applied on the primary "
    "but fewer replicas than required confirmed it in time, so a failover could still undo it "
    "(details: collection, id, revision, replicas required and confirmed); read the document "
    "before retrying (README, API behaviour)"
)


PRIVATE = (
    "private: only admins and the document's owner read it; left out of everyone else's "
    "answers (README, Security)"
)


def _schemas(model: type[BaseModel], into: dict[str, Any]) -> None:
    schema = model.model_json_schema(ref_template=REF)
    for name, sub in schema.pop("$defs", {}).items():
        into[name] = sub
    into[model.__name__] = schema


def _partial(schema: dict[str, Any], renamed: set[str]) -> dict[str, Any]:
    """A copy with nothing required, nested model references pointing at their Patch forms."""
    out = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            node.pop("required", None)
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.rsplit("/", 1)[-1] in renamed:
                node["$ref"] = ref + "Patch"
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(out)
    return out


def _nested(model: type[BaseModel]) -> set[str]:
    """Names of the models nested in ``model`` (its JSON schema's $defs)."""
    return set(model.model_json_schema(ref_template=REF).get("$defs", {}))


def _entity_schemas(spec: EntitySpec, out: dict[str, Any]) -> None:
    name = spec.model.__name__
    full = out[name]
    optional = {spec.id_field, *spec.defaults, *spec.touch_on_update}
    create = copy.deepcopy(full)
    create["required"] = [f for f in full.get("required", []) if f not in optional]
    create["title"] = f"{name}Create"
    out[f"{name}Create"] = create
    replace = copy.deepcopy(full)
    replace["required"] = [
        f for f in full.get("required", []) if f not in {spec.id_field, *spec.touch_on_update}
    ]
    replace["title"] = f"{name}Replace"
    out[f"{name}Replace"] = replace
    out[f"{name}Patch"] = _partial(full, _nested(spec.model)) | {"title": f"{name}Patch"}
    out[f"{name}Page"] = {
        "title": f"{name}Page",
        "type": "object",
        "required": ["items", "total", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": openapi_sparse.answer(spec)},
            "total": {
                "type": ["integer", "null"],
                "minimum": 0,
                "description": "documents matching the filters, on every page; null when "
                "the request said count=none",
            },
            "next_cursor": {
                "type": ["string", "null"],
                "description": "send it as cursor for the next page; null on the last",
            },
        },
    }


def _profile_schemas(schema: Schema, spec: EntitySpec, out: dict[str, Any]) -> None:
    """The answer of ``GET /api/<collection>/{id}/profile`` (keyspace.profiles)."""
    profile = spec.profile
    if profile is None:
        return
    own = out[spec.model.__name__]["properties"]
    properties = {name: own[name] for name in profile.fields}
    if profile.companion is not None:
        companion = schema.entity(profile.companion).model.__name__
        for name in profile.companion_fields:
            properties[name] = out[companion]["properties"][name]
    name = profile_schema(spec)
    out[name] = {
        "title": name,
        "type": "object",
        "required": list(properties),
        "properties": properties,
    }


def components(system: System) -> dict[str, Any]:
    schema = system.schema
    out: dict[str, Any] = {}
    for model in (*(e.model for e in schema.entities), *(s.model for s in schema.singletons)):
        _schemas(model, out)
    nested = {n for e in schema.entities for n in _nested(e.model)}
    for name in nested:
        out[f"{name}Patch"] = _partial(out[name], nested) | {"title": f"{name}Patch"}
    for spec in schema.entities:
        properties = out[spec.model.__name__]["properties"]
        for name in spec.private_fields:  # app.privacy
            properties[name]["description"] = PRIVATE
        _entity_schemas(spec, out)
        openapi_search.components(spec, out)
        _profile_schemas(schema, spec, out)
        out[aggregate_schema(spec)] = openapi_aggregate.component(spec)
    openapi_sparse.components(schema, out)
    openapi_views.components(system, out)
    openapi_changes.components(out)
    for single in schema.singletons:  # MultiFrame's config:system and analytics:metrics
        for model in single.entry_models:
            _schemas(model, out)
        inner = _nested(single.model)
        patch = f"{single.model.__name__}Patch"
        out[patch] = _partial(out[single.model.__name__], inner) | {"title": patch}
        for name in inner:
            out.setdefault(f"{name}Patch", _partial(out[name], inner) | {"title": f"{name}Patch"})
    for spec in schema.entities:
        for ref in spec.references:
            if ref.many:
                target = schema.entity(ref.target)
                out[member_body(target)] = {
                    "type": "object",
                    "required": [target.id_field],
                    "additionalProperties": False,
                    "properties": {
                        target.id_field: {
                            "type": "string",
                            "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,299}$",
                        }
                    },
                }
    out["TokenRequest"] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "kind": {"type": "string", "enum": ["session", "api_key"], "default": "session"},
            "ttl_seconds": {"type": "integer", "minimum": 1, "maximum": 365 * 24 * 3600},
        },
    }
    out["Token"] = {
        "type": "object",
        "required": ["token", "user_id", "kind", "expires_in"],
        "properties": {
            "token": {"type": "string"},
            "user_id": {"type": "string"},
            "kind": {"type": "string"},
            "expires_in": {"type": ["integer", "null"]},
        },
    }
    if any(spec.lock is not None for spec in schema.entities):
        out |= copy.deepcopy(LOCK_SCHEMAS)
    if any(spec.oplog is not None for spec in schema.entities):
        out |= copy.deepcopy(OP_SCHEMAS)
    out |= copy.deepcopy(ADMIN_SCHEMAS)
    out["Health"] = {"type": "object", "properties": {"status": {"type": "string"}}}
    out["Readiness"] = {"type": "object", "additionalProperties": True}
    out["Error"] = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "details"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "details": {},
                },
            }
        },
    }
    return out


def writes(route: Route) -> bool:
    """Whether the route writes (a search is a POST that reads)."""
    return route.path.startswith("/api/") and route.method != "GET" and route.rate_class != "read"


def error_statuses(route: Route) -> set[int]:
    """The route's own errors plus those every route of its kind can answer."""
    out = set(route.errors) | {405}  # any other method on the path, OPTIONS included
    if route.path.startswith("/api/"):
        out |= {401, 429, 503}  # authentication, rate limit, maintenance/Redis
        if writes(route) and route.path != "/api/tokens/current":
            out.add(403)  # every write is subject to app/policy.py
    if route.body:
        out |= {400, 408, 413, 415, 422}  # reading and parsing the JSON body
    if route.conditional:
        out |= {400, 412}  # a malformed or stale If-Match
    if route.idempotent:
        out |= {400, 409, 422}  # a malformed, in-flight or reused Idempotency-Key
    out.add(417)  # an Expect other than 100-continue (app/routes.py expect_continue)
    return out


def documents(system: System) -> frozenset[str]:
    """Models whose responses are one stored document, sent with its ETag."""
    schema = system.schema
    return frozenset(
        [e.model.__name__ for e in schema.entities] + [s.model.__name__ for s in schema.singletons]
    )


def revalidates(route: Route, docs: frozenset[str]) -> bool:
    """A read of one stored document: it sends an ETag and answers If-None-Match."""
    return route.method == "GET" and route.returns in docs


def _success_headers(route: Route, docs: frozenset[str]) -> dict[str, Any]:
    out: dict[str, Any] = dict(CORS_HEADERS)
    if route.returns in docs:
        out["ETag"] = header("Strong ETag of the stored document: send it back in If-Match")
    if route.status == 201 and route.returns in docs:
        out["Location"] = header("The created document's URL")
    if route.path.startswith("/api/"):
        out |= RATE_HEADERS
    if route.idempotent:
        out |= IDEMPOTENT_REPLAYED
    return out


def _path_schema(route: Route, name: str, system: System) -> dict[str, Any]:
    """The id's own schema (its pattern and length) when the path parameter names an entity's
    document: ``{id}`` right after the collection, or a parameter named like an id field."""
    entities = system.schema.entities
    parts = route.path.strip("/").split("/")
    spec = None
    if name == "id" and len(parts) >= 3 and parts[0] == "api" and parts[2] == "{id}":
        spec = next((e for e in entities if e.collection == parts[1]), None)
    elif name != "id":
        spec = next((e for e in entities if e.id_field == name), None)
    if spec is None:
        return {"type": "string"}
    field = spec.model.model_json_schema()["properties"][spec.id_field]
    return {k: v for k, v in field.items() if k in ("type", "pattern", "minLength", "maxLength")}


def _operation(route: Route, docs: frozenset[str], system: System) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": route.summary,
        "tags": [route.tag],
        "operationId": f"{route.method.lower()}_{route.path.strip('/').replace('/', '_')}",
    }
    params = [
        copy.deepcopy(swagger.NAME_PARAMETER)
        if route.path.startswith(swagger.STATIC)
        else {"name": n, "in": "path", "required": True, "schema": _path_schema(route, n, system)}
        for n in re.findall(r"\{([a-z_]+)\}", route.path)
    ]
    if route.lists is not None:
        params += list_parameters(route.lists)
    shaped = route.lists or route.prefetch
    if shaped is not None:
        params += openapi_sparse.parameters(system.schema, shaped)
    if route.aggregates is not None:
        params += openapi_aggregate.parameters(route.aggregates, list_parameters(route.aggregates))
    if route.view is not None:
        params += openapi_views.parameters(system, route.view)
    params += [
        {
            "name": p.name,
            "in": "query",
            "required": False,
            "description": p.description,
            "schema": integer(p.minimum),
        }
        for p in route.query
    ]
    if route.body:
        params += copy.deepcopy(BODY_HEADERS)
    if revalidates(route, docs):
        params.append(dict(IF_NONE_MATCH))
    if route.conditional:
        params.append(
            {
                "name": "If-Match",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "ETag from a read; a stale one gets 412 and nothing is written",
            }
        )
    if route.idempotent:
        params.append(dict(IDEMPOTENCY_KEY))
    params.append(dict(REQUEST_ID_PARAM))
    op["parameters"] = params
    if route.body:
        op["requestBody"] = {
            "required": route.body_required,
            "content": {"application/json": {"schema": {"$ref": REF.format(model=route.body)}}},
        }
    ok: dict[str, Any] = {"description": "Success"}
    if route.prefetch is not None:  # a read by id: fields= and expand= shape it
        ok["content"] = {"application/json": {"schema": openapi_sparse.answer(route.prefetch)}}
    elif route.returns:
        ok["content"] = {"application/json": {"schema": {"$ref": REF.format(model=route.returns)}}}
    elif route.path in swagger.RESPONSES:
        ok |= copy.deepcopy(swagger.RESPONSES[route.path])
    elif route.path == "/openapi.json":
        ok["content"] = {"application/json": {"schema": {"type": "object"}}}
    elif route.path == "/metrics":
        ok["content"] = {"text/plain": {"schema": {"type": "string"}}}
    headers = _success_headers(route, docs)
    if route.view is not None and system.view_ttl(route.view) is not None:
        headers["X-Cache"] = copy.deepcopy(openapi_views.X_CACHE)
    if headers:
        ok["headers"] = headers | ok.get("headers", {})
    responses: dict[str, Any] = {str(route.status): ok}
    for status, text in route.notes:
        if 200 <= status < 300 and status != route.status:  # another success (an upsert's 201)
            created = copy.deepcopy(ok)
            if route.returns in docs:
                created.setdefault("headers", {})["Location"] = header("The document's URL")
            responses[str(status)] = {**created, "description": text}
    if revalidates(route, docs):
        kept = {"ETag": header("The current ETag, named by If-None-Match")}
        if route.path.startswith("/api/"):  # counted as any read
            kept |= copy.deepcopy(RATE_HEADERS)
        responses["304"] = {"description": "Not modified: no body", "headers": kept}
    error = {"content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}}}
    notes = dict(route.notes)
    for status in sorted(error_statuses(route)):
        text = ERROR_TEXT.get(status, "Error")
        if status in notes:
            text = f"{text}; {notes[status]}"
        if route.idempotent and status in IDEMPOTENCY_TEXT:
            text = f"{text}; {IDEMPOTENCY_TEXT[status]}"
        if status == 503 and writes(route):
            text = f"{text}; {NOT_DURABLE}"
        responses[str(status)] = {"description": text, **error}
        if status in ERROR_HEADERS:
            responses[str(status)]["headers"] = copy.deepcopy(ERROR_HEADERS[status])
    for response in responses.values():  # every response: app/tracing.py, app/cors.py
        response.setdefault("headers", {}).update(copy.deepcopy(REQUEST_ID_HEADER | CORS_HEADERS))
    op["responses"] = responses
    if route.path.startswith("/api/"):
        op["security"] = [{"bearer": []}]
    if route.path == openapi_changes.PATH:
        openapi_changes.amend(op)
    return op


_REF = re.compile(r'#/components/schemas/([^"]+)')


def _used(paths: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """The schemas the operations reach: client generators warn of any other (a singleton's
    Patch forms where the singleton has no PATCH route)."""
    seen: set[str] = set()
    todo = _REF.findall(json.dumps(paths))
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += _REF.findall(json.dumps(schemas[name]))
    return {name: schema for name, schema in schemas.items() if name in seen}


def _titled(schemas: dict[str, Any]) -> dict[str, Any]:
    """Every schema with a title, its component name where it has none: generators name a
    model by its title, else by that name, so this names nothing anew, and every schema of
    the document carries the unique title issue 22 asks for."""
    return {name: {"title": name, **schema} for name, schema in schemas.items()}


def build(table: list[Route], system: System) -> dict[str, Any]:
    docs = documents(system)
    paths: dict[str, Any] = {}
    for route in table:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, docs, system)
        if openapi_batch.is_create(system, route.method, route.path):
            openapi_batch.batched(paths[route.path]["post"])
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"{system.title} keyspace API",
            "version": "0.1.0",
            "description": f"Seed-shaped {system.title} documents on Redis. Errors: "
            '{"error": {"code", "message", "details"}}.',
        },
        "paths": paths,
        "components": {
            "schemas": _titled(_used(paths, openapi_batch.schemas(components(system)))),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
