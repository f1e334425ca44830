"""``Idempotency-Key`` on the document write routes (keyspace.idempotency).

A write sent with the header claims the key for its caller before it runs; its commit
stores the outcome in the same script, and the same request sent again within the window
is answered that outcome (``Idempotent-Replayed: true``) instead of writing again. A
refusal after the claim (4xx) is stored too; a failure that may leave nothing written
(5xx, Redis unreachable) gives the key back, so a retry runs the write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from aiohttp import web

from keyspace import EntitySpec, KeyspaceError, Stored
from keyspace import idempotency as idem

from . import auth
from .errors import ApiError, Handler, error_response, from_keyspace
from .privacy import shown_body, stored_answer
from .resources import Collection, Members
from .routing import Route
from .state import SETTINGS, keyspace
from .wire import JSON, read_json

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
REUSED = "idempotency_key_reused"
IN_FLIGHT = "idempotency_key_in_flight"
# Refusals a retry may well not meet again: never stored, the key is given back.
TRANSIENT = frozenset({401, 408, 429})


def _refusal(exc: BaseException) -> web.Response | None:
    """The answer the error middleware gives ``exc`` when it is a 4xx refusal."""
    if isinstance(exc, ApiError):
        if exc.status >= 500:
            return None
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)
    if isinstance(exc, KeyspaceError) and not isinstance(exc, idem.KeyInFlight):
        answer = from_keyspace(exc)
        return answer if answer.status < 500 else None
    return None


async def _fingerprint(request: web.Request) -> str:
    if request.body_exists and request.method != "DELETE":
        await read_json(request)  # its content type, coding and time limit first
    raw = await request.read() if request.body_exists else b""
    return idem.fingerprint(request.method, request.path_qs, raw)


async def _batch_body(request: web.Request, spec: EntitySpec, raw: bytes) -> bytes:
    documents = keyspace(request).documents
    served: list[bytes] = []
    for line in raw.split(b"\n"):  # the stored bytes of each, as first answered
        stored = Stored.from_raw(line)
        if documents.sealing(spec) is not None:
            doc_id = str(stored.doc.get(spec.id_field, ""))
            stored = await documents.opened(spec, doc_id, stored)
        served.append(shown_body(request, spec, stored))
    return b"[" + b",".join(served) + b"]"


async def _replay(
    request: web.Request,
    spec: EntitySpec | None,
    url: Callable[[str], str] | None,
    record: idem.Record,
) -> web.Response:
    """The stored outcome, answered as the first request was."""
    if record.kind == "doc" and spec is not None:
        stored = Stored.from_raw(record.body)
        doc_id = str(stored.doc.get(spec.id_field, ""))
        documents = keyspace(request).documents
        if documents.sealing(spec) is not None:  # sealed values served opened, as at first
            stored = await documents.opened(spec, doc_id, stored)
        location = url(doc_id) if url is not None and record.status == 201 else None
        response = stored_answer(request, spec, stored, status=record.status, location=location)
    elif record.kind == "docs" and spec is not None:  # a batch: each served as at first
        response = web.Response(
            body=await _batch_body(request, spec, record.body),
            status=record.status,
            content_type=JSON,
        )
    elif record.kind == "body":
        response = web.Response(body=record.body, status=record.status, content_type=JSON)
    else:
        response = web.Response(status=record.status)
    response.headers[REPLAYED] = "true"
    return response


async def _settle(request: web.Request, claim: idem.Claim, answer: web.Response | None) -> None:
    """Store a refusal under the claim, or give the claim back; best effort (Redis may be
    what failed: the claim then expires after its in-flight time)."""
    ks = keyspace(request)
    names = ks.schema.names
    if answer is not None and answer.status not in TRANSIENT:
        body = answer.body if isinstance(answer.body, bytes) else b""
        plan = idem.settled_plan(names, claim, answer.status, body)
    else:
        plan = idem.release_plan(names, claim)
    try:
        await ks.scripts.commit(plan, durable=False)
    except Exception:  # the request's own failure is what the client hears
        return


async def _guarded(
    request: web.Request,
    handler: Handler,
    spec: EntitySpec | None,
    status: int | None,
    url: Callable[[str], str] | None,
    client_key: str,
) -> web.StreamResponse:
    who = await auth.authorize(request)
    if not idem.valid_key(client_key):
        raise ApiError(
            400,
            "invalid_header",
            f"{HEADER} must be 1 to {idem.MAX_KEY} printable ASCII characters",
        )
    fp = await _fingerprint(request)
    ks, settings = keyspace(request), request.app[SETTINGS]
    key = ks.schema.names.idempotency_key(who.user_id, idem.key_digest(client_key))
    held = await idem.claim(
        ks.client,
        key,
        fp,
        status=status,
        pending_ms=settings.idempotency_in_flight_seconds * 1000,
        done_ms=settings.idempotency_ttl_seconds * 1000,
    )
    if isinstance(held, idem.Record):
        if held.fingerprint != fp:
            raise ApiError(
                422,
                REUSED,
                f"this {HEADER} was used for another request (method, path or body)",
            )
        if held.state == "pending":
            raise ApiError(
                409,
                IN_FLIGHT,
                f"a request with this {HEADER} is still in flight; retry shortly",
                headers={"Retry-After": "1"},
            )
        return await _replay(request, spec, url, held)
    # Only a document write's commit carries the claim (its outcome is the document); a
    # route writing otherwise (tokens, locks) stores its answer after it, below.
    token = idem.current.set(held if spec is not None else None)
    try:
        response = await handler(request)
    except BaseException as exc:
        if not held.committed:
            await _settle(request, held, _refusal(exc))
        raise
    finally:
        idem.current.reset(token)
    if not held.committed:
        # A document write answered without its commit changed nothing: run it again. A
        # route writing through another script (spec None) stores its answer now, after
        # the write (not in the write's script: README "Retrying writes safely").
        await _settle(request, held, _answered(response) if spec is None else None)
    return response


def _answered(response: web.StreamResponse) -> web.Response | None:
    if isinstance(response, web.Response) and response.status < 500:
        return response
    return None


def guard(
    handler: Handler, spec: EntitySpec | None, status: int | None, url: Any = None
) -> Handler:
    """``handler`` honouring ``Idempotency-Key``; ``status``: its success status (None: an
    upsert's, 200 or 201), ``url(doc_id)``: the Location of a 201. ``spec`` None: a write
    through a script other than commit.lua, whose answer is stored right after it."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        client_key = request.headers.get(HEADER)
        if client_key is None:
            return await handler(request)
        return await _guarded(request, handler, spec, status, url, client_key)

    return guarded


def _status(owner: Collection | Members, name: str) -> int | None:
    if isinstance(owner, Members):
        return 200
    return {"create": 201, "patch": 200, "delete": 204}.get(
        name, None if owner.spec.upsert else 200
    )


READS = frozenset({"search"})  # POST routes that write nothing (nearness searches)
# A replay of a mint would have to keep the token's plaintext, which is never stored.
REFUSED = frozenset({"mint_token"})


async def _no_key(request: web.Request) -> None:
    if HEADER in request.headers:
        raise ApiError(
            400,
            "invalid_header",
            f"{HEADER} is not taken by this route: a replay would keep the new token's "
            "plaintext, which is never stored; mint again instead (tokens are revocable)",
        )


def _refusing(handler: Handler) -> Handler:
    async def refusing(request: web.Request) -> web.StreamResponse:
        await _no_key(request)
        return await handler(request)

    return refusing


def idempotent(table: list[Route]) -> list[Route]:
    """``table`` with its writes honouring ``Idempotency-Key``, marked for the OpenAPI
    document: document writes (create, replace, patch, delete, members added and removed)
    store their outcome in their commit; the other writes (settings, locks, op logs,
    analytics, token revocation) right after it. Admin routes are operators' tools: no key."""
    out = []
    for route in table:
        owner = getattr(route.handler, "__self__", None)
        name = getattr(route.handler, "__name__", "")
        if route.method in ("GET", "HEAD", "OPTIONS") or route.tag == "admin" or name in READS:
            pass
        elif name in REFUSED:
            route = replace(route, handler=_refusing(route.handler))
        elif isinstance(owner, Collection | Members):
            url = owner.url if isinstance(owner, Collection) else None
            handler = guard(route.handler, owner.spec, _status(owner, name), url)
            route = replace(route, handler=handler, idempotent=True)
        else:
            route = replace(route, handler=guard(route.handler, None, None), idempotent=True)
        out.append(route)
    return out
