"""Every error status in the one error format, and no 5xx for anything a client sends."""

from __future__ import annotations

import asyncio
from typing import Any

import fakeredis
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app import create_app
from app.config import Settings
from app.state import KEYSPACE
from keyspace import Keyspace, connect
from tests import factories as f
from tests.api.conftest import AUTH, SMALL_BODY_LIMIT

Client = TestClient[web.Request, web.Application]
USER = {"username": "HoloMisha", "email": "holo@misha.com", "role": "admin"}


async def error_of(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


async def test_400_malformed_json_and_parameters(api: Client) -> None:
    resp = await api.post("/api/users", data=b"{nope", headers={"Content-Type": "application/json"})
    assert (await error_of(resp, 400))["code"] == "malformed_json"
    resp = await api.get("/api/drivers", params={"cores_min": "lots"})
    assert (await error_of(resp, 400))["details"][0]["field"] == "cores_min"
    resp = await api.get("/api/drivers", params={"colour": "red"})
    await error_of(resp, 400)
    resp = await api.get("/api/drivers", params={"limit": "0"})
    await error_of(resp, 400)
    resp = await api.get("/api/drivers", params={"limit": "ten"})
    await error_of(resp, 400)
    resp = await api.patch("/api/users/user_1", json={}, headers={"If-Match": '"a", "b"'})
    await error_of(resp, 400)


async def test_404_unknown_id_and_route(api: Client) -> None:
    assert (await error_of(await api.get("/api/users/user_404"), 404))["code"] == "not_found"
    await error_of(await api.get("/api/nothing-here"), 404)
    await error_of(await api.get("/api/users/user_1/drivers"), 404)
    await error_of(await api.delete("/api/quests/quest_9"), 404)


async def test_405_wrong_method(api: Client) -> None:
    resp = await api.delete("/api/users")
    await error_of(resp, 405)
    assert "GET" in resp.headers["Allow"]


async def test_409_unique_conflict_names_the_field(api: Client) -> None:
    assert (await api.post("/api/users", json=USER)).status == 201
    clash = {**USER, "email": "other@x.io", "username": "holomisha"}
    error = await error_of(await api.post("/api/users", json=clash), 409)
    assert error["code"] == "unique_conflict"
    assert error["details"]["field"] == "username"


async def test_409_state_conflicts(api: Client) -> None:
    await api.post("/api/users", json=USER)
    driver = {
        "user_id": "user_1",
        "chip_id": "c1",
        "version": "1",
        "status": "optimized",
        "chip_data": {
            "type": "neural_processor",
            "cores": 8,
            "frequency": "1GHz",
            "architecture": "A",
        },
    }
    assert (await api.post("/api/drivers", json=driver)).status == 201
    error = await error_of(
        await api.patch("/api/drivers/driver_1", json={"status": "generated"}), 409
    )
    assert error["code"] == "invalid_transition"
    error = await error_of(
        await api.post("/api/drivers", json={**driver, "user_id": "user_9"}), 409
    )
    assert error["details"]["field"] == "user_id"


async def test_412_stale_if_match_writes_nothing(api: Client) -> None:
    created = await api.post("/api/users", json=USER)
    old_tag = created.headers["ETag"]
    first = await api.patch(
        "/api/users/user_1", json={"role": "engineer"}, headers={"If-Match": old_tag}
    )
    assert first.status == 200
    assert first.headers["ETag"] != old_tag
    resp = await api.patch(
        "/api/users/user_1", json={"role": "designer"}, headers={"If-Match": old_tag}
    )
    assert (await error_of(resp, 412))["code"] == "stale_revision"
    resp = await api.put("/api/users/user_1", json=USER, headers={"If-Match": old_tag})
    await error_of(resp, 412)
    await error_of(await api.delete("/api/users/user_1", headers={"If-Match": old_tag}), 412)
    assert (await (await api.get("/api/users/user_1")).json())["role"] == "engineer"


async def test_413_body_over_limit(api: Client) -> None:
    big = b'{"username": "' + b"x" * (SMALL_BODY_LIMIT + 10) + b'"}'
    resp = await api.post("/api/users", data=big, headers={"Content-Type": "application/json"})
    assert (await error_of(resp, 413))["code"] == "payload_too_large"


async def test_415_wrong_content_type(api: Client) -> None:
    resp = await api.post("/api/users", data=b"username=x", headers={"Content-Type": "text/plain"})
    await error_of(resp, 415)


async def test_422_validation_names_field_and_reason(api: Client) -> None:
    error = await error_of(await api.post("/api/users", json={**USER, "role": "wizard"}), 422)
    assert error["code"] == "validation_failed"
    assert error["details"][0]["field"] == "role"
    await error_of(await api.post("/api/users", json=[1, 2]), 422)
    await error_of(await api.post("/api/users", json={**USER, "user_id": "a:b"}), 422)
    await error_of(await api.post("/api/users", json={**USER, "extra": True}), 422)
    nested: Any = 1
    for _ in range(100):
        nested = {"a": nested}
    await error_of(await api.post("/api/users", json={**USER, "username": nested}), 422)
    await error_of(
        await api.put("/api/analytics/metrics/chip_1", json={"performance": "fast"}), 422
    )


async def test_hostile_ids_never_touch_other_keys(api: Client) -> None:
    for bad in ("user:1", "*", "user_1%0A", "{x}", "a" * 400):
        resp = await api.get(f"/api/users/{bad}")
        await error_of(resp, 404)
    resp = await api.put(
        "/api/analytics/metrics/x%22%5D", json={"performance": 1, "efficiency": 1, "temperature": 1}
    )
    await error_of(resp, 422)


async def test_503_when_redis_is_unreachable(unused_tcp_port: int) -> None:
    redis = connect(f"redis://127.0.0.1:{unused_tcp_port}/0", timeout=0.5)
    app = create_app(Settings(), client=redis)
    app.cleanup_ctx.clear()  # nothing to set up: the server is gone
    app[KEYSPACE] = Keyspace(redis)
    client: Client = TestClient(TestServer(app), headers=AUTH)
    await client.start_server()
    try:
        resp = await client.get("/api/users/user_1")
        error = await error_of(resp, 503)
        assert error["code"] == "redis_unavailable"
        assert resp.headers["Retry-After"]
        resp = await client.get("/ready")
        await error_of(resp, 503)
        resp = await client.get("/health")  # liveness includes reaching Redis
        health = await error_of(resp, 503)
        assert health["code"] == "redis_unavailable"
        assert health["details"]["redis"] == "unreachable"
    finally:
        await client.close()
        await redis.aclose()


async def test_if_match_that_no_read_produced_is_refused(api: Client) -> None:
    created = await api.post("/api/users", json=USER)
    tag = created.headers["ETag"]
    # ETags are strong; a weak validator never matches (RFC 9110 strong comparison).
    resp = await api.patch(
        "/api/users/user_1", json={"role": "engineer"}, headers={"If-Match": "W/" + tag}
    )
    assert (await error_of(resp, 412))["code"] == "stale_revision"
    resp = await api.patch(
        "/api/users/user_1", json={"role": "engineer"}, headers={"If-Match": '"é"'}
    )
    assert (await error_of(resp, 400))["code"] == "invalid_header"
    assert api.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", api.server.port)
    writer.write(
        b"DELETE /api/users/user_1 HTTP/1.1\r\nHost: t\r\nAuthorization: "
        + AUTH["Authorization"].encode()
        + b'\r\nIf-Match: "\xe9\xff"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'
    )
    raw = await reader.read()
    writer.close()
    assert raw.startswith(b"HTTP/1.1 400"), raw[:200]
    assert b'"invalid_header"' in raw
    assert (await api.get("/api/users/user_1")).status == 200


async def test_a_body_that_does_not_decompress_is_400(api: Client) -> None:
    resp = await api.post(
        "/api/users",
        data=b"abcd",
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert (await error_of(resp, 400))["code"] == "malformed_body"


async def test_keys_still_in_the_old_string_layout_are_409_not_500(api: Client) -> None:
    ks: Keyspace = api.app[KEYSPACE]
    if isinstance(ks.client, fakeredis.FakeAsyncRedis):
        pytest.skip("fakeredis runs JSON commands on a string key instead of refusing them")
    legacy = b'{"user_id": "user_900", "username": "Old", "email": "o@x.io", "role": "admin"}'
    await ks.client.set("user:user_900", legacy)
    await ks.client.set("config:system", b'{"system": {}}')
    await ks.client.set("analytics:metrics", b'{"chip_metrics": {}}')
    metrics = {"performance": 1, "efficiency": 2, "temperature": 3}
    declared = (await (await api.get("/openapi.json")).json())["paths"]
    calls: list[tuple[str, str, str, Any]] = [
        ("PATCH", "/api/users/user_900", "/api/users/{id}", {"role": "engineer"}),
        ("PUT", "/api/users/user_900", "/api/users/{id}", USER),
        ("DELETE", "/api/users/user_900", "/api/users/{id}", None),
        ("GET", "/api/users/user_900/drivers", "/api/users/{id}/drivers", None),
        ("GET", "/api/users/user_900/collaborations", "/api/users/{id}/collaborations", None),
        ("POST", "/api/users/user_900/tokens", "/api/users/{id}/tokens", {}),
        ("GET", "/api/config/system", "/api/config/system", None),
        ("PATCH", "/api/config/system", "/api/config/system", {"system": {"mode": "production"}}),
        ("GET", "/api/analytics/metrics", "/api/analytics/metrics", None),
        ("PUT", "/api/analytics/metrics", "/api/analytics/metrics", {"chip_metrics": {}}),
        ("GET", "/api/analytics/metrics/c1", "/api/analytics/metrics/{chip_id}", None),
        ("PUT", "/api/analytics/metrics/c1", "/api/analytics/metrics/{chip_id}", metrics),
    ]
    for method, path, template, body in calls:
        resp = await api.request(method, path, json=body)
        assert resp.status < 500, (method, path, await resp.text())
        assert resp.content_type == "application/json", (method, path)
        responses = declared[template][method.lower()]["responses"]
        assert str(resp.status) in responses, (method, path, resp.status)
    resp = await api.patch("/api/users/user_900", json={"role": "engineer"})
    error = await error_of(resp, 409)
    assert error["code"] == "wrong_type"
    assert "import-legacy" in error["message"]
    assert await ks.client.get("user:user_900") == legacy  # untouched


async def test_expect_other_than_100_continue_is_417_in_the_format(api: Client) -> None:
    resp = await api.post("/api/users", json=USER, headers={"Expect": "bogus"})
    assert (await error_of(resp, 417))["code"] == "expectation_failed"
    resp = await api.post("/api/users", json=USER, headers={"Expect": "100-continue"})
    assert resp.status == 201, await resp.text()


async def test_a_reference_to_a_key_in_the_old_layout_is_missing(api: Client) -> None:
    ks: Keyspace = api.app[KEYSPACE]
    if isinstance(ks.client, fakeredis.FakeAsyncRedis):
        pytest.skip("fakeredis runs JSON commands on a string key instead of refusing them")
    await api.post("/api/users", json=USER)
    await api.post(
        "/api/collabs",
        json={
            "user_id": "user_1",
            "chip_id": "c",
            "chip_data": f.chip(),
        },
    )
    await ks.client.set("user:user_900", b'{"user_id": "user_900"}')
    driver = {
        "user_id": "user_900",
        "chip_id": "c",
        "version": "1",
        "chip_data": f.chip(),
    }
    resp = await api.post("/api/drivers", json=driver)
    assert (await error_of(resp, 409))["code"] == "missing_reference"
    resp = await api.post("/api/collabs/collab_1/collaborators", json={"user_id": "user_900"})
    assert (await error_of(resp, 409))["code"] == "missing_reference"
    assert await ks.client.exists("driver:driver_1") == 0


async def test_merge_patch_media_type_and_bare_if_match(api: Client) -> None:
    created = await api.post("/api/users", json=USER)
    tag = created.headers["ETag"]
    resp = await api.patch(
        "/api/users/user_1",
        data=b'{"role": "engineer"}',
        headers={"Content-Type": "application/merge-patch+json", "If-Match": tag.strip('"')},
    )
    assert resp.status == 200, await resp.text()
    resp = await api.post(
        "/api/users", data=b"{}", headers={"Content-Type": "application/merge-patch+json"}
    )
    await error_of(resp, 415)
    resp = await api.patch("/api/users/user_1", json={}, headers={"If-Match": "];qFm"})
    assert (await error_of(resp, 400))["code"] == "invalid_header"


async def test_if_match_on_one_chips_metrics_is_refused_not_ignored(api: Client) -> None:
    metrics = {"performance": 90.5, "efficiency": 80.0, "temperature": 45.0}
    resp = await api.put(
        "/api/analytics/metrics/chip_a", json=metrics, headers={"If-Match": '"deadbeef"'}
    )
    assert (await error_of(resp, 400))["code"] == "invalid_header"
    assert (await api.get("/api/analytics/metrics/chip_a")).status == 404
    resp = await api.put("/api/analytics/metrics/chip_a", json=metrics)  # the same body is fine
    assert resp.status == 200, await resp.text()


async def test_the_operators_token_cannot_be_revoked_while_it_is_configured(api: Client) -> None:
    resp = await api.delete("/api/tokens/current")
    error = await error_of(resp, 403)
    assert error["details"]["rule"] == "operator-token"
    assert (await api.get("/api/users")).status == 200


async def test_a_mint_meeting_a_wrong_typed_token_set_is_409_wrong_type(api: Client) -> None:
    ks: Keyspace = api.app[KEYSPACE]
    resp = await api.post("/api/users", json=USER)
    user_id = (await resp.json())["user_id"]
    await ks.client.set(f"mf:tokens:{user_id}", "junk")
    resp = await api.post(f"/api/users/{user_id}/tokens", json={"kind": "session"})
    error = await error_of(resp, 409)
    assert error["code"] == "wrong_type"
    assert error["details"] == {"key": f"mf:tokens:{user_id}"}
    assert await ks.client.get(f"mf:tokens:{user_id}") == b"junk"
