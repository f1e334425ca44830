"""``/docs``: Swagger UI over ``/openapi.json``, from the assets the ``swagger-ui-bundle-v2``
package ships, so the page needs nothing from outside this service (it works offline).

The page references only :data:`STATIC` routes, and its ``Content-Security-Policy`` lets the
browser load and call nothing else: the one outside call Swagger UI makes by default (the
online validator's badge) is switched off in the initializer, and the policy would block it.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import html
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from typing import Any

from aiohttp import hdrs, web
from swagger_ui_bundle import swagger_ui_path

from .errors import ApiError
from .state import OPENAPI

FILES: Traversable = swagger_ui_path  # the package's vendor/swagger-ui-<version>
VERSION = FILES.name.removeprefix("swagger-ui-")
STATIC = "/docs/static"

# Swagger UI sets styles through the DOM (allowed) and its CSS draws icons from data: URIs.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)

# BaseLayout: the standalone layout's top bar only loads other documents by URL. The token
# stays in the page's memory (persistAuthorization off): nothing in localStorage to steal.
INITIALIZER = """\
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    filter: true,
    displayRequestDuration: true,
    persistAuthorization: false,
    presets: [SwaggerUIBundle.presets.apis],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "BaseLayout"
  });
});
"""

JS = "text/javascript"
# What /docs/static/{name} serves: the package's files, plus the initializer above.
ASSETS: dict[str, str] = {
    "swagger-ui-bundle.js": JS,
    "swagger-ui.css": "text/css",
    "swagger-initializer.js": JS,
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
TEXT = frozenset({JS, "text/css"})

# The page names every asset with this key, so a new package version or initializer is a new
# URL and the assets themselves can be cached for a week.
REVISION = hashlib.sha256(f"{VERSION}\n{INITIALIZER}".encode()).hexdigest()[:12]
CACHE_CONTROL = "public, max-age=604800, immutable"
NOSNIFF = {"X-Content-Type-Options": "nosniff"}


def asset_url(name: str) -> str:
    return f"{STATIC}/{name}?v={REVISION}"


def page(title: str) -> str:
    """The HTML of ``/docs`` for an API titled ``title``."""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="stylesheet" href="{asset_url("swagger-ui.css")}">'
        f'<link rel="icon" type="image/png" sizes="32x32" href="{asset_url("favicon-32x32.png")}">'
        f'<link rel="icon" type="image/png" sizes="16x16" href="{asset_url("favicon-16x16.png")}">'
        '</head><body><div id="swagger-ui"></div>'
        "<noscript>This page is Swagger UI and needs JavaScript; the API's description is "
        '<a href="/openapi.json">/openapi.json</a>.</noscript>'
        f'<script src="{asset_url("swagger-ui-bundle.js")}"></script>'
        f'<script src="{asset_url("swagger-initializer.js")}"></script>'
        "</body></html>\n"
    )


async def docs(request: web.Request) -> web.Response:
    spec: dict[str, Any] = request.app[OPENAPI]
    return web.Response(
        text=page(spec["info"]["title"]),
        content_type="text/html",
        headers={"Content-Security-Policy": CSP, **NOSNIFF},
    )


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None  # text assets only: images are compressed already


_loaded: dict[str, Asset] = {}


def _read(name: str) -> Asset:
    body = INITIALIZER.encode() if name == "swagger-initializer.js" else None
    if body is None:
        body = (FILES / name).read_bytes()
    return Asset(body, gzip.compress(body, 9, mtime=0) if ASSETS[name] in TEXT else None)


async def _asset(name: str) -> Asset:
    """The asset, read and compressed once per process (off the event loop: the bundle is
    1.5 MB)."""
    if name not in ASSETS:
        raise ApiError(404, "not_found", f"no asset {name!r}; Swagger UI's page is /docs")
    if name not in _loaded:
        _loaded[name] = await asyncio.to_thread(_read, name)
    return _loaded[name]


def accepts_gzip(header: str) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (``gzip;q=0`` refuses it)."""
    for part in header.split(","):
        coding, _, params = part.partition(";")
        if coding.strip().lower() not in ("gzip", "*"):
            continue
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.lower() == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    asset = await _asset(name)
    headers = {hdrs.CACHE_CONTROL: CACHE_CONTROL, **NOSNIFF}
    body = asset.body
    if asset.gzipped is not None:
        headers[hdrs.VARY] = "Accept-Encoding"
        if accepts_gzip(request.headers.get(hdrs.ACCEPT_ENCODING, "")):
            body = asset.gzipped
            headers[hdrs.CONTENT_ENCODING] = "gzip"
    kind = ASSETS[name]
    charset = "utf-8" if kind in TEXT else None
    return web.Response(body=body, content_type=kind, charset=charset, headers=headers)


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


_NOSNIFF = {"X-Content-Type-Options": _header("nosniff")}
RESPONSES: dict[str, dict[str, Any]] = {
    "/docs": {
        "content": {"text/html": {"schema": {"type": "string"}}},
        "headers": {
            "Content-Security-Policy": _header(
                "Scripts, styles, images and requests from this service only"
            ),
            **_NOSNIFF,
        },
    },
    f"{STATIC}/{{name}}": {
        "content": {
            kind: {"schema": {"type": "string", "format": "binary"}}
            for kind in sorted(set(ASSETS.values()))
        },
        "headers": {
            "Cache-Control": _header(CACHE_CONTROL),
            "Content-Encoding": _header("gzip for scripts and styles, when accepted"),
            **_NOSNIFF,
        },
    },
}
"""Path -> what its 200 carries in /openapi.json (content and headers)."""


NAME_PARAMETER: dict[str, Any] = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": f"A file of Swagger UI {VERSION} (the page /docs loads them)",
    "schema": {"type": "string", "enum": sorted(ASSETS)},
}
