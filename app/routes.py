"""The route table: one list of :class:`Route` drives both aiohttp and the OpenAPI document."""

from __future__ import annotations

from aiohttp import hdrs, web
from aiohttp.http import HttpVersion11

from keyspace import EntitySpec, Reference, Schema, System

from . import health, swagger
from .admin_routes import admin_routes
from .aggregates import Aggregated
from .changes import changes_route
from .errors import error_response
from .feature_routes import (
    lock_routes,
    oplog_routes,
    profile_routes,
    search_routes,
    settings_routes,
    singleton_routes,
)
from .idempotency import idempotent
from .metrics import serve_metrics
from .policy import IMPORT_WINDOW
from .resources import (
    Collection,
    Members,
    Relation,
    mint_token,
    revoke_current,
)
from .routing import Route, aggregate_schema, member_body, model_name
from .state import PREFETCH, RATE_CLASSES, SELF_AUTHORIZING
from .views import view_routes


def _create_notes(spec: EntitySpec) -> tuple[tuple[int, str], ...]:
    """What a create adds to the usual 403 and 409 when its id comes from a counter."""
    if not spec.counted:
        return ()
    seed = f"{spec.prefix}_<n>"
    return (
        (
            403,
            f"rule import-window: a non-admin's explicit {spec.id_field} {seed} more than "
            f"{IMPORT_WINDOW} past the last generated one",
        ),
        (
            409,
            f"code counter_exhausted: {spec.prefix}_counter is at 2^53 - 1 and can generate no "
            f"further id (create with an explicit {spec.id_field})",
        ),
    )


def _upsert_notes(spec: EntitySpec) -> tuple[tuple[int, str], ...]:
    """A PUT that may create (``table(..., upsert=True)``): its 201, and what its 412 adds."""
    if not spec.upsert:
        return ()
    return (
        (
            201,
            f"Created: no {spec.name} had this id, so the body was stored under it as a "
            "create (defaults filled, a member only for itself); Location names it",
        ),
        (412, "an If-Match on a missing document matches no revision (nothing is created)"),
    )


def entity_routes(spec: EntitySpec) -> list[Route]:
    res = Collection(spec)
    base, item, tag, name = (
        f"/api/{spec.collection}",
        f"/api/{spec.collection}/{{id}}",
        spec.collection,
        model_name(spec),
    )
    return [
        Route(
            "GET",
            base,
            res.list,
            f"List {spec.collection}",
            tag,
            returns=f"{name}Page",
            lists=spec,
            errors=(400, 403) if spec.admin_read else (400,),
        ),
        Route(
            "POST",
            base,
            res.create,
            f"Create a {spec.name}",
            tag,
            body=f"{name}Create",
            returns=name,
            status=201,
            errors=(400, 409, 413, 415, 422),
            authorizes_itself=True,
            notes=_create_notes(spec),
        ),
        # Before the item routes: aiohttp tries routes in order, and {id} would take it.
        Route(
            "GET",
            f"{base}/aggregate",
            Aggregated(spec).get,
            f"Group {spec.collection} and count, sum, min, max or average their numbers",
            tag,
            returns=aggregate_schema(spec),
            aggregates=spec,
            errors=(400, 403) if spec.admin_read else (400,),
        ),
        Route(
            "GET",
            item,
            res.get,
            f"Get one {spec.name}",
            tag,
            returns=name,
            # 400: an unknown path in fields= or reference in expand=
            errors=(400, 403, 404) if spec.admin_read else (400, 404),
            prefetch=spec,
        ),
        Route(
            "PUT",
            item,
            res.replace,
            f"Replace or create a {spec.name}" if spec.upsert else f"Replace a {spec.name}",
            tag,
            body=f"{name}Replace",
            returns=name,
            conditional=True,
            # An upsert creates a missing document: never 404.
            errors=(400, 409, 412, 413, 415, 422)
            if spec.upsert
            else (400, 404, 409, 412, 413, 415, 422),
            notes=_upsert_notes(spec),
        ),
        Route(
            "PATCH",
            item,
            res.patch,
            f"Merge-patch a {spec.name} (RFC 7386)",
            tag,
            body=f"{name}Patch",
            returns=name,
            conditional=True,
            errors=(400, 404, 409, 412, 413, 415, 422),
        ),
        Route(
            "DELETE",
            item,
            res.delete,
            f"Delete a {spec.name} (cascades as declared)",
            tag,
            conditional=True,
            status=204,
            errors=(404, 409, 412),
        ),
    ]


def relation(schema: Schema, ref: Reference, source: EntitySpec) -> str:
    """The path segment listing ``source`` documents by ``ref`` under its target:
    ``/api/users/{id}/drivers``, or the declared relation name (``collaborations``)."""
    return ref.relation or source.collection


def relation_routes(system: System) -> list[Route]:
    """For every indexed reference, the referrers of one target document; for every array of
    ids, adding and removing a member; and the users' token routes."""
    schema, out = system.schema, []
    for source in schema.entities:
        for ref in source.references:
            target = schema.entity(ref.target)
            indexed = source.indexed(ref.field)
            if indexed is None or ref.field == source.id_field:
                continue
            rel = Relation(source, ref.field, target)
            out.append(
                Route(
                    "GET",
                    f"/api/{target.collection}/{{id}}/{relation(schema, ref, source)}",
                    rel.list,
                    f"{source.collection} whose {ref.field} is the {target.name}",
                    "relations",
                    returns=f"{model_name(source)}Page",
                    lists=source,
                    errors=(400, 403, 404, 409) if source.admin_read else (400, 404, 409),
                )
            )
    for source in schema.entities:
        for ref in source.references:
            if ref.many:
                out += _member_routes(source, ref.field, schema.entity(ref.target))
    users = system.users
    out.append(
        Route(
            "POST",
            f"/api/{users.collection}/{{id}}/tokens",
            mint_token,
            "Mint a token (shown once)",
            "auth",
            body="TokenRequest",
            returns="Token",
            status=201,
            errors=(403, 404, 409, 412, 415, 422),
            rate_class="mint",
        )
    )
    out.append(
        Route(
            "DELETE",
            "/api/tokens/current",
            revoke_current,
            "Revoke the caller's token",
            "auth",
            status=204,
            errors=(403,),  # the operator's token is retired through its configuration
        )
    )
    return out


def _member_routes(source: EntitySpec, field: str, target: EntitySpec) -> list[Route]:
    members = Members(source, field, target)
    member = target.id_field if target.id_field != "id" else f"{target.name}_id"
    return [
        Route(
            "POST",
            f"/api/{source.collection}/{{id}}/{field}",
            members.add,
            f"Add a member to {field} (idempotent)",
            "relations",
            body=member_body(target),
            returns=model_name(source),
            conditional=True,
            errors=(400, 404, 409, 412, 415, 422),
        ),
        Route(
            "DELETE",
            f"/api/{source.collection}/{{id}}/{field}/{{{member}}}",
            members.remove,
            f"Remove a member from {field}",
            "relations",
            returns=model_name(source),
            conditional=True,
            errors=(404, 412),
        ),
    ]


def service_routes() -> list[Route]:
    return [
        Route(
            "GET",
            "/health",
            health.health,
            "Liveness: this process and its Redis",
            "service",
            returns="Health",
            errors=(503,),
        ),
        Route(
            "GET",
            "/ready",
            health.ready,
            "Readiness: Redis, modules, indexes",
            "service",
            returns="Readiness",
            errors=(503,),
        ),
        Route("GET", "/openapi.json", health.openapi, "This document", "service"),
        Route("GET", "/docs", swagger.docs, "Swagger UI over this document", "service"),
        Route(
            "GET",
            f"{swagger.STATIC}/{{name}}",
            swagger.static,
            "A file of the Swagger UI page (/docs), bundled with the service",
            "service",
            errors=(404,),
        ),
        Route(
            "GET",
            "/metrics",
            serve_metrics,
            "Prometheus metrics (text format; OpenMetrics when asked for)",
            "service",
            errors=(401,),
            notes=((401, "MULTIFRAME_METRICS_TOKEN is set: send it as the bearer token"),),
        ),
    ]


def route_table(system: System) -> list[Route]:
    # Views first: aiohttp tries routes in order, and /api/assets/{id} would take /search.
    table = view_routes(system)
    table += [r for spec in system.schema.entities for r in entity_routes(spec)]
    table += [r for s in system.schema.entities for r in lock_routes(s) + oplog_routes(s)]
    names = {s.name for s in system.schema.singletons}
    singles = singleton_routes() if "config" in names else settings_routes()
    table += [r for spec in system.schema.entities for r in search_routes(spec)]
    table += [r for spec in system.schema.entities for r in profile_routes(spec)]
    table += relation_routes(system) + singles + admin_routes() + service_routes()
    table.append(changes_route())
    table = idempotent(table)
    seen: set[tuple[str, str]] = set()
    for route in table:
        if (route.method, route.path) in seen:
            raise ValueError(
                f"{system.name}: two routes {route.method} {route.path}; give one of the "
                "references a distinct relation name (Reference.relation)"
            )
        seen.add((route.method, route.path))
    return table


async def expect_continue(request: web.Request) -> web.StreamResponse | None:
    """aiohttp's ``Expect`` handling, with its refusal in the error format: 100-continue is
    answered so the client sends its body; any other expectation is 417."""
    expect = request.headers.get(hdrs.EXPECT, "")
    if request.version != HttpVersion11:
        return None
    if expect.lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the response proper has not started
        return None
    response = error_response(
        417, "expectation_failed", "the only Expect this service meets is 100-continue"
    )
    response.force_close()  # the body, if any, was never read
    return response


def install(app: web.Application, table: list[Route]) -> None:
    for route in table:
        # Every GET answers HEAD too: the same handler, and aiohttp sends the headers only.
        methods = (route.method, "HEAD") if route.method == "GET" else (route.method,)
        for method in methods:
            app.router.add_route(method, route.path, route.handler, expect_handler=expect_continue)
    app[PREFETCH] = {r.path: r.prefetch for r in table if r.prefetch is not None}
    app[SELF_AUTHORIZING] = frozenset((r.method, r.path) for r in table if r.authorizes_itself)
    app[RATE_CLASSES] = {(r.method, r.path): r.rate_class for r in table if r.rate_class}
