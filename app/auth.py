"""Bearer authentication, maintenance mode and rate limits for every ``/api/`` route.

One ``authorize.lua`` call per request does all three (see keyspace/tokens.py). A create
authorizes itself: the same script runs inside its commit (``authorized_commit.lua``), so
it too costs one round trip.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from aiohttp import web

from keyspace import (
    Contention,
    Decision,
    EntitySpec,
    Limits,
    OutsideImportWindow,
    PreparedCreate,
    Stored,
    is_lookup_id,
)

from . import policy
from .errors import ApiError, Handler
from .policy import Caller
from .state import (
    CALLER,
    LIMITS,
    PREFETCH,
    PREFETCHED,
    RATE_CLASSES,
    RATE_HEADERS,
    SELF_AUTHORIZING,
    TOKEN,
    Prefetched,
    keyspace,
    system,
)

REALM = 'Bearer realm="multiframe"'
MAX_TOKEN = 512


def _token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "unauthorized",
            "send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": REALM},
        )
    token = token.strip()
    if len(token) > MAX_TOKEN or not token.isascii():
        raise _unknown()
    return token


def _unknown() -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        "unknown or expired token",
        headers={"WWW-Authenticate": REALM + ', error="invalid_token"'},
    )


def _prefetch_key(request: web.Request) -> str | None:
    """The document a GET by id will return, so authorization can read it in the same trip."""
    if request.method not in ("GET", "HEAD"):  # HEAD is a GET without the body
        return None
    resource = request.match_info.route.resource
    spec = request.app[PREFETCH].get(resource.canonical) if resource is not None else None
    doc_id = request.match_info.get("id", "")
    if spec is None or not is_lookup_id(doc_id):
        return None
    return spec.key(doc_id)


def _rate_headers(decision: Decision) -> dict[str, str]:
    if decision.limit <= 0:
        return {}
    return {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Remaining": str(max(decision.remaining, 0)),
        "RateLimit-Reset": str(math.ceil(decision.reset_ms / 1000)),
    }


def _limits(request: web.Request) -> Limits:
    """The per-class limits, with the route's own per-endpoint limit when its system
    declares them (``System.rate_limits``)."""
    limits = request.app[LIMITS]
    rules = system(request).rate_limits
    resource = request.match_info.route.resource
    if rules is None or resource is None:
        return limits
    endpoint = rules.of(request.method, resource.canonical)
    return limits if endpoint is None else replace(limits, endpoint=endpoint)


async def _admit(
    request: web.Request, decision: Decision, route_class: str, limits: Limits
) -> Caller:
    """Raise for a refused decision; otherwise record the caller and its rate headers."""
    if decision.status == "paused":
        raise ApiError(
            503,
            "maintenance",
            "the service is paused while an operator restores or resets its data; retry later",
            details={"paused": True},
            headers={"Retry-After": "5"},
        )
    if decision.status == "unknown":
        raise _unknown()
    headers = _rate_headers(decision)
    if decision.status == "maintenance":
        raise ApiError(
            503,
            "maintenance",
            "the service is in maintenance: writes are paused",
            headers={"Retry-After": "30"},
        )
    if decision.status == "limited":
        retry = str(max(1, math.ceil(decision.retry_after_ms / 1000)))
        what = f"{route_class}s per period"
        if limits.endpoint is not None:  # either limit may have refused: name both
            what = f"{what} or {limits.endpoint.endpoint} per window"
        raise ApiError(
            429,
            "rate_limited",
            f"over {decision.limit} {what} for this user; slow down",
            details={"limit": decision.limit, "retry_after_seconds": int(retry)},
            headers={**headers, "Retry-After": retry},
        )
    who = Caller(decision.user_id, decision.role, decision.token_hash)
    request[CALLER] = who
    request[RATE_HEADERS] = headers
    return who


def _route_class(request: web.Request) -> str:
    """The rate-limit class: ``read`` (GET), ``write``, or a route's own (``mint``)."""
    resource = request.match_info.route.resource
    own = request.app[RATE_CLASSES].get(
        (request.method, resource.canonical if resource is not None else "")
    )
    if own is not None:
        return own
    return "read" if request.method in ("GET", "HEAD") else "write"


def _authorizes_itself(request: web.Request) -> bool:
    resource = request.match_info.route.resource
    route = (request.method, resource.canonical if resource is not None else "")
    return route in request.app[SELF_AUTHORIZING]


async def _authorize(request: web.Request, token: str) -> Caller:
    prefetch = _prefetch_key(request)
    route_class = _route_class(request)
    limits = _limits(request)
    decision = await keyspace(request).tokens.authorize(token, route_class, limits, prefetch)
    who = await _admit(request, decision, route_class, limits)
    if prefetch is not None:
        request[PREFETCHED] = Prefetched(decision.prefetched)
    return who


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api/"):
        return await handler(request)
    token = _token(request)
    if _authorizes_itself(request):
        request[TOKEN] = token
    else:
        await _authorize(request, token)
    response = await handler(request)
    response.headers.update(request.get(RATE_HEADERS, {}))
    return response


async def authorize(request: web.Request) -> Caller:
    """The caller of a route that authorizes itself, by the usual round trip: for a
    request refused before its commit, so that authentication still answers first."""
    if CALLER in request:
        return request[CALLER]
    return await _authorize(request, request[TOKEN])


async def authorized_create(
    request: web.Request,
    spec: EntitySpec,
    body: Mapping[str, Any],
    prepared: PreparedCreate,
    owners: policy.Owners,
) -> Stored:
    """Authorize the request and commit ``prepared`` in one round trip (a route that
    authorizes itself); refusals come in the usual order: 401/503/429, 403, then 409. A
    request authorized already (an Idempotency-Key is claimed for its caller: app/idempotency)
    commits with that caller's rights instead, counted once."""
    if CALLER in request:
        return await _create_as(request, request[CALLER], spec, body, prepared, owners)
    limits = _limits(request)
    outcome = await keyspace(request).authorized_create(
        prepared,
        request[TOKEN],
        limits,
        policy.creator(system(request), spec, body, owners),
        policy.IMPORT_WINDOW,
    )
    who = await _admit(request, outcome.decision, "write", limits)
    if outcome.forbidden:
        policy.check_create(who, system(request), spec, body, owners)  # the rule's own 403
    try:
        return outcome.stored()
    except OutsideImportWindow as exc:
        raise policy.outside_import_window(spec, exc) from None


CREATE_ATTEMPTS = 64  # as keyspace.store.MAX_ATTEMPTS: a rotation, or a taken counter id


async def _create_as(
    request: web.Request,
    who: Caller,
    spec: EntitySpec,
    body: Mapping[str, Any],
    prepared: PreparedCreate,
    owners: policy.Owners,
) -> Stored:
    """``authorized_create``'s commit for a caller authorized already: the same rule (its
    403), and a non-admin's explicit id within the import window."""
    policy.check_create(who, system(request), spec, body, owners)
    ks, asked = keyspace(request), prepared
    for _ in range(CREATE_ATTEMPTS):
        ready = await ks.documents.ready(asked)
        ready.plan.window = None if who.admin else policy.IMPORT_WINDOW
        result = await ks.scripts.commit(ready.plan, spec=spec, doc_id=ready.doc_id)
        following = await ks.documents.again(asked, ready, result)
        if following is None:
            try:
                return ready.stored(result, await ks.documents.holder(ready, result))
            except OutsideImportWindow as exc:
                raise policy.outside_import_window(spec, exc) from None
        asked = following
    raise Contention(f"could not find a free {spec.name} id; retry")


def caller(request: web.Request) -> Caller:
    return request[CALLER]
