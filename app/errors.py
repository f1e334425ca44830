"""One error format for every failure: ``{"error": {"code", "message", "details"}}``.

The middleware here is the only place that turns exceptions into responses, so
no handler can leak a stack trace or an HTML page.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import orjson
from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from keyspace import KeyRetired
from keyspace import errors as ks

log = logging.getLogger("multiframe.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """An error response raised from handler code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details, self.headers, self.close = details, headers or {}, close


# The X-Request-ID of the request being handled (app/tracing.py): each request runs in a
# task of its own, so each sees its own.
current: ContextVar[str | None] = ContextVar("request_id", default=None)


def traced(details: Any) -> Any:
    """A 5xx answer's ``details`` with the request's id (``request_id``), which the log lines
    of the failure carry too."""
    rid = current.get()
    if rid is None:
        return details
    if details is None:
        return {"request_id": rid}
    if isinstance(details, dict):
        return {**details, "request_id": rid}
    return {"request_id": rid, "details": details}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> web.Response:
    if status >= 500:
        details = traced(details)
    body = {"error": {"code": code, "message": message, "details": details}}
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )


_STATUS: list[tuple[type[ks.KeyspaceError], int]] = [
    (ks.NotFound, 404),
    (ks.ValidationFailed, 422),
    (ks.StaleRevision, 412),
    (ks.Conflict, 409),
    (ks.Held, 409),  # another migrate (or reindex) run holds its lock
    (ks.NotReady, 503),
    (ks.Contention, 503),
    (ks.Paused, 503),  # code "maintenance", like the pause refused by authorize.lua
    (ks.NotDurable, 503),  # written, not confirmed by the replicas: details say what to check
    (ks.Unreadable, 500),  # a sealed value that does not open (docs/encryption.md)
    (KeyRetired, 503),  # this process's key no longer serves the keyring: restart it with the new
]

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def status_of(exc: ks.KeyspaceError) -> int:
    """The HTTP status a keyspace error is answered with (400 when none is listed)."""
    return next((s for cls, s in _STATUS if isinstance(exc, cls)), 400)


def from_keyspace(exc: ks.KeyspaceError) -> web.Response:
    status = next((s for cls, s in _STATUS if isinstance(exc, cls)), 400)
    # A pause lasts a whole restore: asking again every second would only add load. Replicas
    # that did not confirm in time are away or far behind: they take a moment to come back.
    # A retired key lasts until the service restarts: /ready sends clients elsewhere.
    slow = isinstance(exc, ks.Paused | KeyRetired)
    retry = "5" if slow else "2" if isinstance(exc, ks.NotDurable) else "1"
    headers = {"Retry-After": retry} if status == 503 else None
    return error_response(status, exc.code, exc.message, exc.details, headers)


def from_http(exc: web.HTTPException) -> web.Response:
    headers = {
        k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After", "WWW-Authenticate")
    }
    code = _HTTP_CODES.get(exc.status, "http_error")
    message = exc.reason
    if exc.status == 404:
        message = "no such route"
    if exc.status == 413:
        message = "the request body is larger than the configured limit"
    return error_response(exc.status, code, message, None, headers)


WRONG_TYPE = ("WRONGTYPE", "wrong Redis type")  # Redis's own error, and RedisJSON's


def wrong_type(exc: ResponseError) -> bool:
    """A command met a key of another type: a document still stored as a legacy string."""
    return any(marker in str(exc) for marker in WRONG_TYPE)


def failing_over(exc: ResponseError) -> bool:
    """A write reached a primary that a failover demoted (``READONLY``, also inside a
    script's error) or a replica cut off from its primary (``MASTERDOWN``): the service's
    clients find the new primary on their next connection (keyspace.sentinel). Also a primary
    refusing writes for lack of replicas (``NOREPLICAS``, its ``min-replicas-to-write``):
    nothing was written, and it passes once they are back."""
    return isinstance(exc, ReadOnlyError) or any(m in str(exc) for m in FAILING_OVER)


FAILING_OVER = ("READONLY", "MASTERDOWN", "NOREPLICAS")


def busy(exc: ResponseError) -> bool:
    """The server is running a script or module command past its busy-reply threshold
    (``BUSY``, not ``BUSYGROUP``): it ran nothing of this command, and answers again once that
    script ends or is killed."""
    return str(exc).startswith("BUSY ")


def unavailable(request: web.Request, exc: Exception) -> web.Response:
    """503 ``redis_unavailable`` with Retry-After: the server is down, loading, or being
    replaced by a failover; nothing about the request was wrong."""
    log.warning("redis unavailable during %s %s: %s", request.method, sent_path(request), exc)
    return error_response(
        503,
        "redis_unavailable",
        "the data store is unreachable; retry shortly",
        None,
        {"Retry-After": "2"},
    )


def sent_path(request: web.Request) -> str:
    """The request's path as the client sent it, percent-encoded, for log lines: the decoded
    ``request.path`` can hold a newline or a space (``/x%0a...``) that would forge a log line
    or a field in it. Without the query, which can carry sensitive filter values."""
    return request.rel_url.raw_path


def client_gone(request: web.Request) -> bool:
    """True once the client's connection is closed (aiohttp drops the transport)."""
    transport = request.transport
    return transport is None or transport.is_closing()


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        response = error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)
        if exc.close:
            response.force_close()
        return response
    except ks.KeyspaceError as exc:
        return from_keyspace(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return from_http(exc)
    except ResponseError as exc:
        if failing_over(exc) or busy(exc):
            return unavailable(request, exc)
        if not wrong_type(exc):
            raise
        return error_response(
            409,
            "wrong_type",
            "a key this request needs holds another Redis type, e.g. a MultiFrame 11.0 JSON "
            "string: convert it with `multiframe-admin import-legacy`",
        )
    except (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError) as exc:
        if client_gone(request):
            # The client hung up (e.g. mid-body): nothing can be answered, and blaming Redis
            # in the log would send an operator after the wrong server.
            raise
        return unavailable(request, exc)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, sent_path(request))
        return error_response(500, "internal_error", "unexpected server error; it has been logged")
