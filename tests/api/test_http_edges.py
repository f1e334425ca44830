"""HTTP edges (issue 21 item 13): HEAD on every GET route, OPTIONS and CORS, conditional GET
with If-None-Match, refused Content-Encodings, and a token minted for a user deleted meanwhile.
Every status seen here is one /openapi.json lists for the operation."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest

from app.config import Settings
from app.openapi import documents
from app.routes import route_table
from app.routing import Route
from app.state import KEYSPACE
from keyspace import USER, Keyspace, keys, systems
from keyspace.server import EmbeddedRedis
from keyspace.tokens import Minted
from tests.api.conftest import ADMIN_TOKEN, SMALL_BODY_LIMIT
from tests.api.test_collections import Client, created, user_body
from tests.api.test_errors import error_of
from tests.api.test_openapi import spec_of
from tests.reliability.serving import served
from tests.security.served import raw, read_until_closed
from tests.security.test_malformed_http import split

MF = systems.load()

ALLOWED = "https://app.example"
ELSEWHERE = "https://evil.example"
Serve = Callable[..., Awaitable[Client]]


def concrete(route: Route) -> str:
    """The route's path with user_1 (which the tests create) or an unknown id filled in."""
    path = route.path.replace("{chip_id}", "chip_unknown").replace("{user_id}", "user_1")
    known = route.path.startswith("/api/users/")
    return path.replace("{id}", "user_1" if known else "unknown_1")


async def documented(api: Client, method: str, template: str, status: int) -> None:
    responses = (await spec_of(api))["paths"][template][method.lower()]["responses"]
    assert str(status) in responses, (method, template, status, sorted(responses))


def without_date(headers: Any) -> dict[str, str]:
    """The headers but those every response has its own of (Date, X-Request-ID)."""
    return {k: v for k, v in headers.items() if k.lower() not in ("date", "x-request-id")}


# HEAD


async def test_every_get_route_answers_head_like_get_without_a_body(api: Client) -> None:
    await created(api, "users", user_body("Head"))
    # /metrics counts requests: its body changes with each (tests/api/test_metrics.py).
    # /api/changes streams until the client leaves: its HEAD is checked on its own below.
    skipped = {"/metrics", "/api/changes"}
    gets = [r for r in route_table(MF) if r.method == "GET" and r.path not in skipped]
    assert {"/health", "/api/users/{id}", "/api/config/system"} <= {r.path for r in gets}
    for route in gets:
        path = concrete(route)
        got = await api.get(path)
        body = await got.read()
        head = await api.head(path)
        assert head.status == got.status, (path, head.status, got.status)
        assert without_date(head.headers) == without_date(got.headers), path
        assert await head.read() == b"", path
        assert int(head.headers["Content-Length"]) == len(body), path
    assert (await api.head("/health")).status == 200
    assert (await api.head("/api/users/user_1")).headers["ETag"]
    feed = await api.head("/api/changes")
    assert (feed.status, feed.content_type) == (200, "text/event-stream")
    assert await feed.read() == b""


async def test_head_needs_a_token_like_get(api: Client) -> None:
    resp = await api.head("/api/users", headers={"Authorization": ""})
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


# OPTIONS and CORS


async def test_options_without_cors_is_405_with_allow_not_401(api: Client) -> None:
    for path, allowed in (
        ("/api/users", {"GET", "HEAD", "POST"}),
        ("/api/users/user_1", {"GET", "HEAD", "PUT", "PATCH", "DELETE"}),
        ("/health", {"GET", "HEAD"}),
    ):
        preflight = {"Origin": ALLOWED, "Access-Control-Request-Method": "GET"}
        for headers in ({"Authorization": ""}, {}, {**preflight, "Authorization": ""}):
            resp = await api.options(path, headers=headers)
            error = await error_of(resp, 405)
            assert error["code"] == "method_not_allowed"
            assert {m.strip() for m in resp.headers["Allow"].split(",")} == allowed
            assert not [h for h in resp.headers if h.lower().startswith("access-control-")]
            assert "Vary" not in resp.headers
    await documented(api, "GET", "/health", 405)
    resp = await api.options("/api/nowhere", headers={"Authorization": ""})
    assert (await error_of(resp, 404))["code"] == "not_found"


async def test_cors_preflight_from_an_allowed_origin_is_204_without_a_token(serve: Serve) -> None:
    api = await serve(max_body=SMALL_BODY_LIMIT, cors_origins=(ALLOWED,))
    resp = await api.options(
        "/api/users/user_1",
        headers={
            "Authorization": "",
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization, if-match, content-type",
        },
    )
    assert resp.status == 204, await resp.text()
    assert await resp.read() == b""
    assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED
    methods = {m.strip() for m in resp.headers["Access-Control-Allow-Methods"].split(",")}
    assert methods == {"GET", "HEAD", "PUT", "PATCH", "DELETE"}
    allowed = {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "if-match", "if-none-match", "content-type"} <= allowed
    assert "idempotency-key" in allowed
    exposed = {h.strip() for h in resp.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"ETag", "Location", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining"} <= exposed
    assert "Idempotent-Replayed" in exposed
    assert "Origin" in resp.headers["Vary"]
    assert int(resp.headers["Access-Control-Max-Age"]) > 0
    assert "Access-Control-Allow-Credentials" not in resp.headers


async def test_cors_refuses_other_origins_and_decorates_allowed_responses(serve: Serve) -> None:
    api = await serve(max_body=SMALL_BODY_LIMIT, cors_origins=(ALLOWED, "http://localhost:3000"))
    preflight = {"Authorization": "", "Access-Control-Request-Method": "GET"}
    resp = await api.options("/api/users", headers={**preflight, "Origin": ELSEWHERE})
    await error_of(resp, 405)
    assert "Access-Control-Allow-Origin" not in resp.headers
    resp = await api.options("/api/users", headers={**preflight, "Origin": "http://localhost:3000"})
    assert resp.status == 204
    # Actual requests: the allowed origin is named, errors included; others get no grant.
    resp = await api.post("/api/users", json=user_body("Cors"), headers={"Origin": ALLOWED})
    assert resp.status == 201
    assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Location" in resp.headers["Access-Control-Expose-Headers"]
    assert resp.headers["Vary"] == "Origin"
    resp = await api.get("/api/users", headers={"Origin": ALLOWED, "Authorization": ""})
    await error_of(resp, 401)
    assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED
    resp = await api.get("/api/users/user_1", headers={"Origin": ELSEWHERE})
    assert resp.status == 200
    assert "Access-Control-Allow-Origin" not in resp.headers
    assert resp.headers["Vary"] == "Origin"  # a cache must not serve this to ALLOWED
    resp = await api.get("/health")  # no Origin: not a cross-origin request
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_cors_wildcard_allows_every_origin(serve: Serve) -> None:
    api = await serve(max_body=SMALL_BODY_LIMIT, cors_origins=("*",))
    preflight = {"Authorization": "", "Origin": ELSEWHERE, "Access-Control-Request-Method": "GET"}
    resp = await api.options("/api/users", headers=preflight)
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == ELSEWHERE


def test_cors_origins_setting_is_parsed_and_checked() -> None:
    env = {"MULTIFRAME_CORS_ORIGINS": " https://App.example , http://localhost:3000,"}
    assert Settings.from_env(env).cors_origins == ("https://app.example", "http://localhost:3000")
    assert Settings.from_env({}).cors_origins == ()
    assert Settings.from_env({"MULTIFRAME_CORS_ORIGINS": "*"}).cors_origins == ("*",)
    for bad in ("https://app.example/", "app.example", "*, https://a.example", "ftp://x.example"):
        with pytest.raises(SystemExit, match="MULTIFRAME_CORS_ORIGINS"):
            Settings.from_env({"MULTIFRAME_CORS_ORIGINS": bad})


# If-None-Match


async def test_if_none_match_answers_304_on_every_read_with_an_etag(api: Client) -> None:
    await created(api, "users", user_body("Cache"))
    spec = await spec_of(api)
    reads = [r for r in route_table(MF) if r.method == "GET" and r.returns in documents(MF)]
    assert {r.path for r in reads} >= {"/api/users/{id}", "/api/config/system"}
    for route in reads:
        path = concrete(route)
        first = await api.get(path)
        if first.status != 200:
            continue  # an unknown id: nothing to revalidate
        tag = first.headers["ETag"]
        opaque = tag.strip('"')
        for header in (tag, f"W/{tag}", "*", f'"nope", {tag}', f'W/"x",W/{tag}', opaque):
            for method in ("GET", "HEAD"):
                resp = await api.request(method, path, headers={"If-None-Match": header})
                assert resp.status == 304, (method, path, header, resp.status)
                assert resp.headers["ETag"] == tag
                assert await resp.read() == b""
        assert "304" in spec["paths"][route.path]["get"]["responses"], route.path
        for header in ('"nope"', 'W/"nope"', "not an etag list (", ""):
            resp = await api.get(path, headers={"If-None-Match": header})
            assert resp.status == 200, (path, header)
            assert await resp.read() == await first.read()


async def test_if_none_match_sees_a_new_revision(api: Client) -> None:
    await created(api, "users", user_body("Stale"))
    tag = (await api.get("/api/users/user_1")).headers["ETag"]
    assert (await api.patch("/api/users/user_1", json={"role": "engineer"})).status == 200
    resp = await api.get("/api/users/user_1", headers={"If-None-Match": tag})
    assert resp.status == 200
    assert (await resp.json())["role"] == "engineer"
    resp = await api.get("/api/users/user_9", headers={"If-None-Match": "*"})
    await error_of(resp, 404)


# Content-Encoding


def body_routes() -> list[Route]:
    return [r for r in route_table(MF) if r.body]


@pytest.mark.parametrize("coding", ["foo", "gzip, foo", "gzip, gzip", "x-gzip", "compress"])
async def test_an_unsupported_content_encoding_is_415_on_every_route_with_a_body(
    api: Client, coding: str
) -> None:
    await created(api, "users", user_body("Coded", role="admin"))
    headers = {"Content-Type": "application/json", "Content-Encoding": coding}
    for route in body_routes():
        path = concrete(route).replace("chip_unknown", "chip_quantum_1")
        resp = await api.request(route.method, path, data=b'{"role": "engineer"}', headers=headers)
        error = await error_of(resp, 415)
        assert error["code"] == "unsupported_media_type", (route.method, path)
        assert error["details"] == {"accepted_encodings": ["identity", "gzip", "deflate"]}
        assert resp.headers["Accept-Encoding"] == "gzip, deflate"
        await documented(api, route.method, route.path, 415)
    user = await (await api.get("/api/users/user_1")).json()
    assert user["role"] == "admin"  # nothing was applied as if it were identity


async def test_identity_gzip_and_deflate_bodies_are_read(api: Client) -> None:
    await created(api, "users", user_body("Plain"))
    plain = b'{"role": "engineer"}'
    for coding, body in (
        ("identity", plain),
        ("gzip", gzip.compress(plain)),
        ("GZIP", gzip.compress(plain)),
        ("deflate", zlib.compress(plain)),
    ):
        resp = await api.patch(
            "/api/users/user_1",
            data=body,
            headers={"Content-Type": "application/json", "Content-Encoding": coding},
        )
        assert resp.status == 200, (coding, await resp.text())
    resp = await api.patch(
        "/api/users/user_1",
        data=plain,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert (await error_of(resp, 400))["code"] == "malformed_body"


# Minting for a user deleted meanwhile


async def test_minting_for_a_user_deleted_after_its_lookup_is_404(
    api: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    await created(api, "users", user_body("Doomed"))
    ks: Keyspace = api.app[KEYSPACE]
    mint = ks.tokens.mint

    async def delete_first(user_id: str, *args: Any, **kwargs: Any) -> Minted:
        await ks.delete(USER, user_id)  # the user goes between the handler's read and commit
        return await mint(user_id, *args, **kwargs)

    monkeypatch.setattr(ks.tokens, "mint", delete_first)
    resp = await api.post("/api/users/user_1/tokens", json={"kind": "api_key"})
    error = await error_of(resp, 404)
    assert error["code"] == "not_found"
    await documented(api, "POST", "/api/users/{id}/tokens", 404)
    user_key = keys.doc_key(USER.prefix, "user_1")
    assert await ks.client.exists(user_key, keys.user_tokens_key("user_1")) == 0
    assert [k async for k in ks.client.scan_iter(match=keys.token_key("*"))] == []


@pytest.mark.redis
@pytest.mark.parametrize("coding", ["br", "zstd"])
async def test_codings_the_parser_refuses_are_415_too(
    redis_server: EmbeddedRedis, coding: str
) -> None:
    """aiohttp refuses br and zstd itself (no decoder installed) before the app runs: the
    runner ``python -m app`` uses answers that 415 in the error format as well."""
    settings = Settings(admin_token=ADMIN_TOKEN, port=0, shutdown_timeout=1)
    async with served(redis_server.url, settings) as live:
        reader, writer = await raw(live.port)
        body = b'{"role": "engineer"}'
        writer.write(
            b"PATCH /api/users/user_1 HTTP/1.1\r\nHost: t\r\n"
            + b"Authorization: Bearer %s\r\n" % ADMIN_TOKEN.encode()
            + b"Content-Type: application/json\r\nContent-Encoding: %s\r\n" % coding.encode()
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body
        )
        await writer.drain()
        response, _ = await read_until_closed(reader)
        writer.close()
    status, headers, payload = split(response)
    assert status == 415, response[:300]
    assert headers["accept-encoding"] == "gzip, deflate"
    error = orjson.loads(payload)["error"]
    assert error["code"] == "unsupported_media_type"
    assert error["details"] == {"accepted_encodings": ["identity", "gzip", "deflate"]}


async def test_if_none_match_on_a_write_never_writes_through(api: Client) -> None:
    # `If-None-Match: *` (write only if absent) was ignored: a PATCH overwrote the document.
    made = await created(api, "users", user_body("Guarded"))
    path = f"/api/users/{made['user_id']}"
    before = await (await api.get(path)).read()
    tag = (await api.get(path)).headers["ETag"]
    writes = [
        ("PATCH", path, {"username": "Changed"}),
        ("PUT", path, {**orjson.loads(before), "username": "Changed"}),
        ("PUT", "/api/config/system", {}),
        ("DELETE", path, None),
    ]
    for method, target, body in writes:
        for header, status in (("*", 412), (tag, 400), (f'"x", {tag}', 400)):
            resp = await api.request(method, target, json=body, headers={"If-None-Match": header})
            code = (await error_of(resp, status))["code"]
            assert code == ("precondition_failed" if status == 412 else "invalid_header")
    assert await (await api.get(path)).read() == before
