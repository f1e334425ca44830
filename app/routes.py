"""The route table: one list of :class:`Route` drives both aiohttp and the OpenAPI document."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import hdrs, web
from aiohttp.http import HttpVersion11

from keyspace import EntitySpec, Reference, Schema, System

from . import health, singletons
from .errors import error_response
from .policy import IMPORT_WINDOW
from .resources import (
    Collection,
    Locking,
    Members,
    Nearest,
    Operations,
    Relation,
    mint_token,
    revoke_current,
)
from .state import PREFETCH, RATE_CLASSES, SELF_AUTHORIZING

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    """One operation. ``body``/``returns`` name component schemas; ``lists`` marks list queries."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: str | None = None
    returns: str | None = None
    lists: EntitySpec | None = None
    conditional: bool = False
    prefetch: EntitySpec | None = None  # GET by id: read in the authorization round trip
    authorizes_itself: bool = False  # the handler authorizes inside its commit (app/auth.py)
    rate_class: str | None = None  # its own rate limit (keyspace Limits), not read/write
    status: int = 200
    errors: tuple[int, ...] = field(default=())
    notes: tuple[tuple[int, str], ...] = ()  # (status, what the route adds to its description)
    body_required: bool = True  # False: the body may be left out (its fields are optional)
    query: tuple[Param, ...] = ()  # query parameters besides a list's (``lists``)


@dataclass(frozen=True)
class Param:
    """One integer query parameter of a route that is not a list query."""

    name: str
    description: str
    minimum: int = 0


def _model(spec: EntitySpec) -> str:
    return spec.model.__name__


def member_body(target: EntitySpec) -> str:
    """The request body that adds one member to an array of ``target`` ids."""
    return f"{_model(target)}Member"


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


def entity_routes(spec: EntitySpec) -> list[Route]:
    res = Collection(spec)
    base, item, tag, name = (
        f"/api/{spec.collection}",
        f"/api/{spec.collection}/{{id}}",
        spec.collection,
        _model(spec),
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
        Route(
            "GET",
            item,
            res.get,
            f"Get one {spec.name}",
            tag,
            returns=name,
            errors=(403, 404) if spec.admin_read else (404,),
            prefetch=spec,
        ),
        Route(
            "PUT",
            item,
            res.replace,
            f"Replace a {spec.name}",
            tag,
            body=f"{name}Replace",
            returns=name,
            conditional=True,
            errors=(400, 404, 409, 412, 413, 415, 422),
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


def lock_routes(spec: EntitySpec) -> list[Route]:
    """The lock of one document, for an entity declaring ``lock`` (keyspace.locks)."""
    if spec.lock is None:
        return []
    res, path = Locking(spec), f"/api/{spec.collection}/{{id}}/lock"
    token = Param("fencing_token", "release only the lock carrying this fencing token", 1)
    holder = "the holder or an admin"
    return [
        Route(
            "POST",
            path,
            res.acquire,
            f"Lock a {spec.name} for {spec.lock.ttl_seconds} s (a new fencing token)",
            "locks",
            body="LockRequest",
            returns="Lock",
            status=201,
            errors=(404, 409, 415, 422),
            body_required=False,
            notes=((409, "code locked: details name the holder and the seconds left"),),
        ),
        Route(
            "GET",
            path,
            res.get,
            f"The {spec.name}'s lock",
            "locks",
            returns="Lock",
            errors=(403, 404) if spec.admin_read else (404,),
        ),
        Route(
            "POST",
            f"{path}/refresh",
            res.refresh,
            f"Give the lock its whole time again ({holder})",
            "locks",
            body="LockRefresh",
            returns="Lock",
            errors=(403, 404, 409, 415, 422),
            body_required=False,
            notes=((409, "code stale_fencing_token: not the current lock's token"),),
        ),
        Route(
            "DELETE",
            path,
            res.release,
            f"Release the lock ({holder})",
            "locks",
            status=204,
            errors=(400, 403, 404, 409),
            query=(token,),
            notes=((409, "code stale_fencing_token: not the current lock's token"),),
        ),
    ]


def oplog_routes(spec: EntitySpec) -> list[Route]:
    """The operation log of one document, for an entity declaring ``oplog`` (keyspace.oplog)."""
    if spec.oplog is None:
        return []
    res, path = Operations(spec), f"/api/{spec.collection}/{{id}}/ops"
    guarded = " while another user holds the lock" if spec.oplog.lock_guarded else ""
    return [
        Route(
            "POST",
            path,
            res.append,
            "Append operations (one, or a batch atomically); answers their sequence numbers",
            "operations",
            body="OpAppend",
            returns="OpAppended",
            status=201,
            errors=(404, 409, 415, 422),
            notes=(
                (
                    409,
                    f"code locked{guarded}; code stale_fencing_token: not the current lock's token",
                ),
            ),
        ),
        Route(
            "GET",
            path,
            res.read,
            "Operations after a sequence number, in order",
            "operations",
            returns="OpPage",
            errors=(400, 403, 404, 410) if spec.admin_read else (400, 404, 410),
            query=(
                Param("since", "the last sequence number the client has (0: from the start)"),
                Param("limit", "the most operations to return (default 100, at most 1000)", 1),
            ),
            notes=((410, "code gone: details.oldest_seq is the oldest kept"),),
        ),
    ]


def search_body(spec: EntitySpec) -> str:
    """The request body of a nearness search of ``spec``."""
    return f"{_model(spec)}Search"


def search_routes(spec: EntitySpec) -> list[Route]:
    """``POST /api/<collection>/search`` for an entity with an indexed vector: a read (its
    rate class, and members may search what they may list)."""
    if spec.vector_field is None:
        return []
    return [
        Route(
            "POST",
            f"/api/{spec.collection}/search",
            Nearest(spec).search,
            f"The {spec.collection} nearest a vector (cosine distance)",
            spec.collection,
            body=search_body(spec),
            returns=f"{_model(spec)}Neighbours",
            rate_class="read",
            errors=(400, 403, 422) if spec.admin_read else (400, 422),
        )
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
                    returns=f"{_model(source)}Page",
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
            returns=_model(source),
            conditional=True,
            errors=(400, 404, 409, 412, 415, 422),
        ),
        Route(
            "DELETE",
            f"/api/{source.collection}/{{id}}/{field}/{{{member}}}",
            members.remove,
            f"Remove a member from {field}",
            "relations",
            returns=_model(source),
            conditional=True,
            errors=(404, 412),
        ),
    ]


def singleton_routes() -> list[Route]:
    return [
        Route(
            "GET",
            "/api/config/system",
            singletons.get_config,
            "Read config:system",
            "config",
            returns="SystemConfig",
            errors=(409,),
        ),
        Route(
            "PUT",
            "/api/config/system",
            singletons.put_config,
            "Replace config:system",
            "config",
            body="SystemConfig",
            returns="SystemConfig",
            conditional=True,
            errors=(400, 409, 412, 415, 422),
        ),
        Route(
            "PATCH",
            "/api/config/system",
            singletons.patch_config,
            "Merge-patch config:system",
            "config",
            body="SystemConfigPatch",
            returns="SystemConfig",
            conditional=True,
            errors=(400, 409, 412, 415, 422),
        ),
        Route(
            "GET",
            "/api/analytics/metrics",
            singletons.get_metrics,
            "Read analytics:metrics",
            "analytics",
            returns="AnalyticsMetrics",
            errors=(409,),
        ),
        Route(
            "PUT",
            "/api/analytics/metrics",
            singletons.put_metrics,
            "Replace analytics:metrics (every chip's entry, last_updated included)",
            "analytics",
            body="AnalyticsMetrics",
            returns="AnalyticsMetrics",
            conditional=True,
            errors=(400, 409, 412, 415, 422),
        ),
        Route(
            "GET",
            "/api/analytics/metrics/{chip_id}",
            singletons.get_chip,
            "One chip's metrics",
            "analytics",
            returns="ChipMetrics",
            errors=(404, 409, 422),
        ),
        Route(
            "PUT",
            "/api/analytics/metrics/{chip_id}",
            singletons.put_chip,
            "Write one chip's metrics (last_updated set by the server)",
            "analytics",
            body="ChipMetricsInput",
            returns="ChipMetrics",
            errors=(400, 409, 415, 422),
        ),
    ]


def settings_routes() -> list[Route]:
    """The operating settings of a system without MultiFrame's config:system."""
    return [
        Route(
            "GET",
            "/api/settings",
            singletons.get_settings,
            "Read the operating settings (maintenance, mode)",
            "settings",
            returns="OperatingSettings",
            errors=(409,),
        ),
        Route(
            "PUT",
            "/api/settings",
            singletons.put_settings,
            "Replace the operating settings",
            "settings",
            body="OperatingSettings",
            returns="OperatingSettings",
            conditional=True,
            errors=(400, 409, 412, 415, 422),
        ),
        Route(
            "PATCH",
            "/api/settings",
            singletons.patch_settings,
            "Merge-patch the operating settings (system.maintenance, system.mode)",
            "settings",
            body="OperatingSettingsPatch",
            returns="OperatingSettings",
            conditional=True,
            errors=(400, 409, 412, 415, 422),
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
        Route("GET", "/docs", health.docs, "Human-readable API reference", "service"),
    ]


def route_table(system: System) -> list[Route]:
    table = [r for spec in system.schema.entities for r in entity_routes(spec)]
    table += [r for s in system.schema.entities for r in lock_routes(s) + oplog_routes(s)]
    names = {s.name for s in system.schema.singletons}
    singles = singleton_routes() if "config" in names else settings_routes()
    table += [r for spec in system.schema.entities for r in search_routes(spec)]
    table += relation_routes(system) + singles + service_routes()
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
