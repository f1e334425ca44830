"""OpenAPI of the headers the service reads and sends on every route (app/openapi.py)."""

from __future__ import annotations

from typing import Any


def header(description: str, kind: str = "string") -> dict[str, Any]:
    return {"description": description, "schema": {"type": kind}}


RATE_HEADERS = {
    "RateLimit-Limit": header("Requests allowed per period (limited roles only)", "integer"),
    "RateLimit-Remaining": header("Requests left in the period", "integer"),
    "RateLimit-Reset": header("Seconds until the allowance is full again", "integer"),
}
RETRY_AFTER = {"Retry-After": header("Seconds to wait before retrying", "integer")}
ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": header('Bearer realm="multiframe" (with error="invalid_token")')},
    405: {"Allow": header("The methods this path serves")},
    415: {"Accept-Encoding": header("With a refused Content-Encoding: the codings accepted")},
    429: {**RETRY_AFTER, **RATE_HEADERS},
    503: RETRY_AFTER,
}
BODY_HEADERS: list[dict[str, Any]] = [
    {
        "name": "Content-Encoding",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "identity, gzip or deflate (one coding); any other is 415, and a body "
        "that does not decode as announced is 400",
    },
    {
        "name": "Expect",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "enum": ["100-continue"]},
        "description": "100-continue is answered before the body is read; any other is 417",
    },
]


CORS_HEADERS = {
    "Access-Control-Allow-Origin": header(
        "The request's Origin, when MULTIFRAME_CORS_ORIGINS allows it"
    ),
    "Access-Control-Expose-Headers": header("With Access-Control-Allow-Origin"),
    "Vary": header("Origin, when MULTIFRAME_CORS_ORIGINS is set"),
}
REQUEST_ID_TEXT = (
    "The request's own X-Request-ID when it is 1 to 128 characters of [A-Za-z0-9._:-], else "
    "one the service made (32 random hex digits); a 5xx error body carries it in "
    "details.request_id, "
    "and the request's log lines name it"
)
REQUEST_ID_HEADER = {"X-Request-ID": header(REQUEST_ID_TEXT)}
REQUEST_ID_PARAM: dict[str, Any] = {
    "name": "X-Request-ID",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "Your id for this request, echoed in the response when valid (1 to 128 "
    "characters of [A-Za-z0-9._:-]); any other value is replaced by a new one",
}
IF_NONE_MATCH: dict[str, Any] = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "ETags from earlier reads (or *): 304 without a body when one is current",
}
IDEMPOTENCY_KEY: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "Your key for this write (1 to 255 printable ASCII characters; any other "
    "is 400 `invalid_header`): its first outcome (status, body, ETag, Location) is stored "
    "with the write and answered again, with Idempotent-Replayed: true, to the same caller "
    "sending the same request (method, path and body) with the same key for 24 hours "
    "(MULTIFRAME_IDEMPOTENCY_TTL_SECONDS); another request with the key is 422 "
    "`idempotency_key_reused`, and one while the first is in flight 409 "
    "`idempotency_key_in_flight`. A write answered 5xx is not stored: retry it with the key",
}
IDEMPOTENT_REPLAYED = {
    "Idempotent-Replayed": header(
        "true: this is the stored outcome of an earlier request with the same Idempotency-Key "
        "(nothing was written now)"
    )
}
IDEMPOTENCY_TEXT = {
    409: "or `idempotency_key_in_flight`: a request with this Idempotency-Key is still in "
    "flight (retry after Retry-After seconds)",
    422: "or `idempotency_key_reused`: this Idempotency-Key was sent with another request "
    "(method, path or body) by the same caller within its window",
}
