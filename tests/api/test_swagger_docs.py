"""/docs is Swagger UI from the service's own assets, for every system: the page names no
outside URL, its assets are served with their content types without a token or a rate limit,
and the OpenAPI document wires the bearer scheme its "Authorize" button uses. The page in a
real browser: tests/browser/test_swagger_ui.py."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any

import fakeredis
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app import create_app, swagger
from app.config import Settings
from app.state import SYSTEM
from keyspace import systems

from .conftest import ADMIN_TOKEN, AUTH

Client = TestClient[web.Request, web.Application]
SYSTEMS = systems.names()
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


class Links(HTMLParser):
    """Every URL an HTML page makes the browser load or link to."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in ("src", "href", "action") and v is not None]


def links(page: str) -> list[str]:
    parser = Links()
    parser.feed(page)
    return parser.urls


@pytest.fixture(params=SYSTEMS)
async def served(request: pytest.FixtureRequest) -> AsyncIterator[Client]:
    """One system's app on fakeredis; the admin's reads are limited to one a minute, so any
    route that counted against the limit would be refused on its second request."""
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), protocol=2)
    settings = Settings(admin_token=ADMIN_TOKEN, system=request.param, admin_read_per_minute=1)
    client: Client = TestClient(TestServer(create_app(settings, client=redis)))
    await client.start_server()
    yield client
    await client.close()
    await redis.aclose()


async def test_docs_is_swagger_ui_from_local_assets_only(served: Client) -> None:
    resp = await served.get("/docs")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    assert resp.headers["Content-Security-Policy"] == swagger.CSP
    assert "default-src 'none'" in swagger.CSP and "connect-src 'self'" in swagger.CSP
    page = await resp.text()
    assert "http:" not in page and "https:" not in page and "//" not in page
    urls = links(page)
    assert len(urls) == 6, urls  # stylesheet, two icons, two scripts, the <noscript> link
    assert "/openapi.json" in urls
    assets = [u for u in urls if u != "/openapi.json"]
    assert all(u.startswith(f"{swagger.STATIC}/") for u in assets), urls
    spec = await (await served.get("/openapi.json")).json()
    assert f"<title>{spec['info']['title']}</title>" in page
    for url in assets:
        name = url.removeprefix(f"{swagger.STATIC}/").partition("?")[0]
        asset = await served.get(url)  # no token: outside /api/, like /docs
        assert asset.status == 200, url
        assert asset.content_type == CONTENT_TYPES[name[name.rindex(".") :]], url
        assert asset.headers["X-Content-Type-Options"] == "nosniff"
        assert asset.headers["Cache-Control"] == swagger.CACHE_CONTROL
        assert len(await asset.read()) > 100, url
    bundle = await (await served.get(f"{swagger.STATIC}/swagger-ui-bundle.js")).text()
    assert "SwaggerUIBundle" in bundle
    assert len(bundle) > 1_000_000  # the real bundle, not a stand-in
    init = await (await served.get(f"{swagger.STATIC}/swagger-initializer.js")).text()
    assert 'url: "/openapi.json"' in init
    assert "validatorUrl: null" in init  # no call to the online validator


def users_path(app: web.Application) -> str:
    """The list route of the system's users (its principal entity)."""
    system = app[SYSTEM]
    return f"/api/{system.schema.entity(system.principal).collection}"


async def test_assets_are_outside_authentication_and_rate_limits(served: Client) -> None:
    assert (await served.get(users_path(served.app), headers=AUTH)).status == 200
    limited = await served.get(users_path(served.app), headers=AUTH)
    assert limited.status == 429  # the admin's one read a minute is spent
    for headers in ({}, AUTH, {"Authorization": "Bearer mf_unknown"}):
        for path in ("/docs", f"{swagger.STATIC}/swagger-ui.css", "/openapi.json"):
            assert (await served.get(path, headers=headers)).status == 200, (path, headers)
    head = await served.head(f"{swagger.STATIC}/swagger-ui-bundle.js")
    assert (head.status, head.content_type) == (200, "text/javascript")


async def test_scripts_and_styles_are_sent_gzipped_when_accepted(served: Client) -> None:
    path = f"{swagger.STATIC}/swagger-ui.css"
    plain = await served.get(path, headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    assert "Accept-Encoding" in plain.headers["Vary"]
    body = await plain.read()
    raw = await served.get(path, headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert raw.headers["Content-Encoding"] == "gzip"
    packed = await raw.read()
    assert len(packed) < len(body) // 3
    assert gzip.decompress(packed) == body
    icon = await served.get(f"{swagger.STATIC}/favicon-32x32.png")
    assert "Content-Encoding" not in icon.headers  # a PNG is compressed already


@pytest.mark.parametrize(
    ("header", "gzipped"),
    [
        ("gzip, deflate, br", True),
        ("br;q=1.0, gzip;q=0.8", True),
        ("*", True),
        ("identity", False),
        ("", False),
        ("gzip;q=0", False),
        ("gzip;q=0.000", False),
        ("gzip;q=nope", False),
        ("x-gzip", False),
    ],
)
def test_accept_encoding(header: str, gzipped: bool) -> None:
    assert swagger.accepts_gzip(header) is gzipped


@pytest.mark.parametrize(
    "name",
    ["nope.js", "swagger-ui.js.map", "index.html", "..%2F..%2Fapp%2Fswagger.py", "%2e%2e"],
)
async def test_only_the_listed_assets_are_served(served: Client, name: str) -> None:
    resp = await served.get(f"{swagger.STATIC}/{name}")
    assert resp.status == 404
    body: dict[str, Any] = await resp.json()
    assert body["error"]["code"] == "not_found"


async def test_the_document_wires_the_bearer_scheme_and_the_pages(served: Client) -> None:
    spec = await (await served.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    assert int(swagger.VERSION.split(".")[0]) >= 5  # Swagger UI renders OpenAPI 3.1 from 5.0
    assert spec["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    api_ops = [
        op
        for path, ops in spec["paths"].items()
        if path.startswith("/api/")
        for method, op in ops.items()
        if method in ("get", "put", "post", "patch", "delete")
    ]
    assert len(api_ops) >= 20
    assert all(op["security"] == [{"bearer": []}] for op in api_ops)
    page = spec["paths"]["/docs"]["get"]
    assert "security" not in page
    assert set(page["responses"]["200"]["content"]) == {"text/html"}
    assert "Content-Security-Policy" in page["responses"]["200"]["headers"]
    static = spec["paths"][f"{swagger.STATIC}/{{name}}"]["get"]
    assert "security" not in static
    (name,) = [p for p in static["parameters"] if p["in"] == "path"]
    assert name["schema"]["enum"] == sorted(swagger.ASSETS)
    assert set(static["responses"]["200"]["content"]) == set(CONTENT_TYPES.values())
    assert "404" in static["responses"]
