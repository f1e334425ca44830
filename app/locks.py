"""Handlers of a document's coordination routes: its lock (``/api/<collection>/{id}/lock``,
keyspace.locks) and its operation log (``/api/<collection>/{id}/ops``, keyspace.oplog).

Apart from app/resources.py's document handlers because they share their own refusals
(409 with Retry-After for a held lock, 403 for another's lock, 410 for a lost log position),
as app/openapi_locks.py documents the two together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from keyspace import (
    EntitySpec,
    Gone,
    KeyspaceError,
    Locked,
    NotLockHolder,
    ValidationFailed,
    parse_op_query,
)

from .auth import caller
from .errors import ApiError
from .resources import readable
from .state import keyspace
from .wire import json_response, query_params, read_json, read_object


def _refusal(exc: KeyspaceError) -> ApiError:
    """The API's answer to a lock refusal: 409 with Retry-After (the seconds the lock has
    left), 403 for a lock someone else holds, 410 for a log read from a position it lost."""
    if isinstance(exc, Locked):
        left = exc.details.get("expires_in")
        headers = {"Retry-After": str(max(1, left))} if isinstance(left, int) else None
        return ApiError(409, exc.code, exc.message, details=exc.details, headers=headers)
    if isinstance(exc, NotLockHolder):
        details = {"rule": "lock-holder-or-admin", **exc.details}
        return ApiError(403, "forbidden", exc.message, details=details)
    assert isinstance(exc, Gone)
    return ApiError(410, exc.code, exc.message, details=exc.details)


def _fencing_param(request: web.Request) -> int | None:
    raw = request.query.get("fencing_token")
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw[:17]) < 2**53:
        raise ApiError(
            400, "invalid_parameter", "fencing_token must be a lock's fencing token (an integer)"
        )
    return int(raw)


@dataclass(frozen=True)
class Locking:
    """``/api/<collection>/{id}/lock``: one document's lock (keyspace.locks). Any user may
    lock an existing document; only the holder or an admin refreshes or releases it."""

    spec: EntitySpec

    async def acquire(self, request: web.Request) -> web.Response:
        readable(request, self.spec)
        body = await read_object(request) if request.can_read_body else {}
        _only(body, {"operation"})
        who = caller(request)
        try:
            lock = await keyspace(request).locks.acquire(
                self.spec, request.match_info["id"], who.user_id, body.get("operation")
            )
        except Locked as exc:
            raise _refusal(exc) from None
        return json_response(lock.body(), status=201)

    async def get(self, request: web.Request) -> web.Response:
        readable(request, self.spec)
        lock = await keyspace(request).locks.get(self.spec, request.match_info["id"])
        return json_response(lock.body())

    async def refresh(self, request: web.Request) -> web.Response:
        readable(request, self.spec)
        body = await read_object(request) if request.can_read_body else {}
        _only(body, {"fencing_token"})
        who = caller(request)
        try:
            lock = await keyspace(request).locks.refresh(
                self.spec,
                request.match_info["id"],
                who.user_id,
                admin=who.admin,
                fencing_token=body.get("fencing_token"),
            )
        except NotLockHolder as exc:
            raise _refusal(exc) from None
        return json_response(lock.body())

    async def release(self, request: web.Request) -> web.Response:
        readable(request, self.spec)
        who = caller(request)
        try:
            await keyspace(request).locks.release(
                self.spec,
                request.match_info["id"],
                who.user_id,
                admin=who.admin,
                fencing_token=_fencing_param(request),
            )
        except NotLockHolder as exc:
            raise _refusal(exc) from None
        return web.Response(status=204)


def _only(body: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        raise ApiError(
            422,
            "validation_failed",
            f"{extra[0]}: unknown field (the body may hold {', '.join(sorted(allowed))})",
            details=[{"field": extra[0], "message": "unknown field"}],
        )


@dataclass(frozen=True)
class Operations:
    """``/api/<collection>/{id}/ops``: one document's operation log (keyspace.oplog)."""

    spec: EntitySpec

    async def append(self, request: web.Request) -> web.Response:
        readable(request, self.spec)
        body = await read_json(request)
        try:
            done = await keyspace(request).oplogs.append(
                self.spec, request.match_info["id"], caller(request).user_id, body
            )
        except Locked as exc:
            raise _refusal(exc) from None
        return json_response({"seqs": done.seqs, "timestamp": done.timestamp}, status=201)

    async def read(self, request: web.Request) -> web.Response:
        readable(request, self.spec)
        try:
            since, limit = parse_op_query(query_params(request))
        except ValidationFailed as exc:
            raise ApiError(400, "invalid_parameter", exc.message, details=exc.details) from None
        try:
            page = await keyspace(request).oplogs.read(
                self.spec, request.match_info["id"], since, limit
            )
        except Gone as exc:
            raise _refusal(exc) from None
        body = {"items": page.items, "oldest_seq": page.oldest_seq, "latest_seq": page.latest_seq}
        return json_response(body)
