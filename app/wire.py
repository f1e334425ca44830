"""Request parsing and response building: JSON via orjson, ETags, If-Match, If-None-Match."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from keyspace import Stored, codec

from .errors import ApiError
from .state import SETTINGS

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"  # RFC 7386's own type, for PATCH


def json_response(
    body: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=JSON, headers=headers)


def etag(revision: str) -> str:
    return f'"{revision}"'


def stored_response(
    stored: Stored, *, status: int = 200, location: str | None = None
) -> web.Response:
    headers = {"ETag": etag(stored.revision)}
    if location:
        headers["Location"] = location
    # The bytes the server returned are the document as stored: no need to encode it again
    # (unless its sealed values were opened: keyspace.sealing).
    body = stored.body
    return web.Response(body=body, status=status, content_type=JSON, headers=headers)


def document_response(raw: bytes) -> web.Response:
    """A stored document as the server returned it, with its ETag, never parsed."""
    return web.Response(body=raw, content_type=JSON, headers={"ETag": etag(codec.revision(raw))})


def if_match(request: web.Request) -> str | None:
    """The revision an If-Match header pins, or None. ``*`` pins nothing (any revision).
    Every write reads it, so If-None-Match on a write is refused here too."""
    refuse_none_match(request)
    raw = request.headers.get("If-Match")
    if raw is None or raw.strip() == "*":
        return None
    tags = [t.strip() for t in raw.split(",") if t.strip()]
    if len(tags) != 1 or not ETAG.fullmatch(tags[0]):
        raise ApiError(400, "invalid_header", "If-Match must hold exactly one ETag from a read")
    tag = tags[0]
    # Our ETags are strong, and If-Match compares strongly: a weak one matches no revision.
    return tag if tag.startswith("W/") else tag.strip('"')


def refuse_none_match(request: web.Request) -> None:
    """If-None-Match on a write: ``*`` asks to write only where no document exists, which a
    PUT, PATCH or DELETE of a stored document never is (POST creates): 412. A tag list is
    not evaluated on writes (ignored, it would drop the guard the client asked for): 400."""
    raw = request.headers.get("If-None-Match")
    if raw is None:
        return
    if raw.strip() == "*":
        raise ApiError(
            412,
            "precondition_failed",
            "If-None-Match: * writes only where no document exists; this one does (create "
            "with POST)",
        )
    raise ApiError(
        400,
        "invalid_header",
        "If-None-Match is evaluated on reads only; guard a write with If-Match",
    )


# RFC 9110 entity-tag characters; a bare token is accepted too (some clients drop quotes).
ETAG = re.compile(r'(?:W/)?(?:"[\x21\x23-\x7e]+"|[0-9A-Za-z._~-]+)')
ETAG_LIST = re.compile(rf"[\s,]*{ETAG.pattern}(?:\s*,[\s,]*{ETAG.pattern})*[\s,]*")


def _opaque(tag: str) -> str:
    """The tag without ``W/`` and quotes: what weak comparison compares."""
    return tag.removeprefix("W/").strip('"')


def none_match(request: web.Request, response: web.Response) -> web.Response:
    """``response`` (a read's 200 with its ETag), or 304 Not Modified with that ETag and no
    body when ``If-None-Match`` names it: ``*``, or a list compared weakly (RFC 9110 13.1.2).
    A header that is no ETag list is ignored: the client gets the whole document."""
    raw, current = request.headers.get("If-None-Match"), response.headers.get("ETag")
    if raw is None or current is None or response.status != 200:
        return response
    if raw.strip() == "*":
        hit = True
    elif ETAG_LIST.fullmatch(raw):
        hit = any(_opaque(t) == _opaque(current) for t in ETAG.findall(raw))
    else:
        hit = False
    if not hit:
        return response
    return web.Response(status=304, headers={"ETag": current})


# Content codings of a request body: the ones aiohttp decodes, one at a time. Any other (a
# stacked list, x-gzip, br) would reach the JSON parser still encoded, or be taken as identity.
BODY_ENCODINGS = ("identity", "gzip", "deflate")


def unsupported_encoding(coding: str | None) -> ApiError:
    """The 415 for a request body in a coding this service does not read (None: unnamed)."""
    named = f"Content-Encoding {coding!r}" if coding is not None else "this Content-Encoding"
    return ApiError(
        415,
        "unsupported_media_type",
        f"{named} is not supported: send the body as one of " + ", ".join(BODY_ENCODINGS),
        details={"accepted_encodings": list(BODY_ENCODINGS)},
        headers={"Accept-Encoding": "gzip, deflate"},
    )


def _check_encoding(request: web.Request) -> None:
    coding = request.headers.get("Content-Encoding", "").strip().lower()
    if coding and coding not in BODY_ENCODINGS:
        raise unsupported_encoding(coding)


async def read_json(request: web.Request) -> Any:
    """The request body as JSON; 415 for another content type or coding, 400 when malformed."""
    if request.content_type != JSON and not (
        request.method == "PATCH" and request.content_type == MERGE_PATCH
    ):
        raise ApiError(415, "unsupported_media_type", f"send the body as {JSON}")
    _check_encoding(request)
    timeout = request.app[SETTINGS].body_timeout
    try:
        if request.content.is_eof():
            # The whole body has arrived (the usual case for a small one), so reading it
            # cannot wait: no timeout to arm (a timeout scope costs ~6 us).
            raw = await request.read()
        else:
            # aiohttp waits for a body as long as the client keeps the connection open; a
            # client trickling one byte at a time would hold this handler indefinitely.
            async with asyncio.timeout(timeout):
                raw = await request.read()
    except (HttpProcessingError, web.RequestPayloadError):  # e.g. gzip that is not gzip
        raise ApiError(
            400,
            "malformed_body",
            "the request body cannot be read: it does not match its Content-Encoding or framing",
        ) from None
    except TimeoutError:
        raise ApiError(
            408,
            "request_timeout",
            f"the request body did not arrive within {timeout:g} seconds",
            close=True,  # the rest of the body may still be on its way
        ) from None
    if not raw:
        raise ApiError(400, "malformed_json", "the request body is empty")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None


async def read_object(request: web.Request) -> dict[str, Any]:
    return as_object(await read_json(request))


def as_object(body: Any) -> dict[str, Any]:
    """``body`` when it is a JSON object; else the 422 of a body that must be one."""
    if not isinstance(body, dict):
        raise ApiError(
            422,
            "validation_failed",
            "the body must be a JSON object",
            details=[{"field": "(body)", "message": "must be an object"}],
        )
    return body


def query_params(request: web.Request) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    if not request.rel_url.raw_query_string:  # most reads: no query to parse (yarl's MultiDict)
        return params
    for name, value in request.query.items():
        params.setdefault(name, []).append(value)
    return params
