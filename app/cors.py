"""``OPTIONS`` and CORS: off unless ``MULTIFRAME_CORS_ORIGINS`` lists the origins allowed.

Preflights from an allowed origin are answered here, before authentication (a browser sends
them without the ``Authorization`` header). Any other ``OPTIONS`` is answered as by a server
without CORS: 405 with ``Allow`` (404 for an unknown path), never 401. Every other response
to an allowed origin names it in ``Access-Control-Allow-Origin``.
"""

from __future__ import annotations

from aiohttp import hdrs, web

from .errors import Handler, from_http
from .state import SETTINGS

# What a browser client sends and needs to read; the bearer token is a header, not a cookie,
# so no Access-Control-Allow-Credentials.
ALLOW_HEADERS = (
    "Authorization, Content-Type, Content-Encoding, If-Match, If-None-Match, X-Request-ID, "
    "Idempotency-Key"
)
EXPOSE_HEADERS = (
    "ETag, Location, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, "
    "WWW-Authenticate, Allow, X-Cache, X-Request-ID, Idempotent-Replayed"
)
MAX_AGE = "600"  # seconds a browser may reuse a preflight answer


def allowed_origin(request: web.Request) -> str | None:
    """The request's Origin when the settings allow it, else None."""
    origin = request.headers.get(hdrs.ORIGIN)
    allowed = request.app[SETTINGS].cors_origins
    if origin is None or not allowed:
        return None
    return origin if "*" in allowed or origin.lower() in allowed else None


def _vary(response: web.StreamResponse, *names: str) -> None:
    present = [v.strip() for v in response.headers.get(hdrs.VARY, "").split(",") if v.strip()]
    lowered = {v.lower() for v in present}
    response.headers[hdrs.VARY] = ", ".join(
        present + [n for n in names if n.lower() not in lowered]
    )


def _options(request: web.Request, refusal: web.HTTPException, origin: str | None) -> web.Response:
    """The answer to ``OPTIONS``, which no route serves: ``refusal`` is the router's."""
    preflight = hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
    if origin is None or not preflight or not isinstance(refusal, web.HTTPMethodNotAllowed):
        return from_http(refusal)  # 405 with Allow, or 404 for an unknown path
    methods = sorted(refusal.allowed_methods)
    response = web.Response(status=204)
    response.headers.update(
        {
            hdrs.ACCESS_CONTROL_ALLOW_METHODS: ", ".join(methods),
            hdrs.ACCESS_CONTROL_ALLOW_HEADERS: ALLOW_HEADERS,
            hdrs.ACCESS_CONTROL_MAX_AGE: MAX_AGE,
        }
    )
    _vary(response, hdrs.ACCESS_CONTROL_REQUEST_METHOD, hdrs.ACCESS_CONTROL_REQUEST_HEADERS)
    return response


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outside the error middleware, so error responses carry the CORS headers too."""
    origin = allowed_origin(request)
    refusal = request.match_info.http_exception
    if request.method == hdrs.METH_OPTIONS and refusal is not None:
        response: web.StreamResponse = _options(request, refusal, origin)
    else:
        response = await handler(request)
    if not request.app[SETTINGS].cors_origins or response.prepared:
        return response
    _vary(response, hdrs.ORIGIN)  # the answer depends on Origin: caches must key on it
    if origin is not None:
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
        response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = EXPOSE_HEADERS
    return response
