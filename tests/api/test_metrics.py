"""``GET /metrics`` in one process (issue 18, "Metrics and request tracing"): a scrape after a
load, parsed with prometheus-client's own parser; rate-limit refusals and authentication
failures; Redis round trips; documents and index state; the metrics token; a listener of
its own. Several workers: tests/integration/test_metrics_workers.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import fakeredis
import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from app.config import Settings
from app.state import KEYSPACE
from keyspace import Keyspace, connect, observe_round_trips, search, server_stats, systems
from keyspace.connection import call
from keyspace.server import EmbeddedRedis, free_port
from tests.api.conftest import ADMIN_TOKEN, AUTH
from tests.api.test_collections import Client, created, user_body
from tests.api.test_errors import error_of

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
HEX_ID = r"[0-9a-f]{32}"


def parse(text: str) -> Samples:
    """Every sample of a scrape, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every sample of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


async def scrape(client: Client, headers: Mapping[str, str] | None = None) -> Samples:
    resp = await client.get("/metrics", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "text/plain"
    return parse(await resp.text())


REQUESTS = "multiframe_http_requests_total"
LATENCY = "multiframe_http_request_duration_seconds"


async def test_a_scrape_after_a_load_counts_by_route_template(api: Client) -> None:
    ids = [(await created(api, "users", user_body(f"Load{n}")))["user_id"] for n in range(3)]
    for user_id in ids:
        assert (await api.get(f"/api/users/{user_id}")).status == 200
    assert (await api.get("/api/users/user_999")).status == 404
    assert (await api.get("/no/such/route")).status == 404
    assert (await api.get("/api/users", headers={"Authorization": ""})).status == 401
    assert (await api.get("/api/users", headers={"Authorization": "Bearer nope"})).status == 401
    listed = await (await api.get("/api/users")).json()

    samples = await scrape(api)
    # The template, never the raw path: one series for every id.
    item = {"route": "/api/users/{id}", "method": "GET"}
    assert value(samples, REQUESTS, **item, status="200") == 3
    assert value(samples, REQUESTS, **item, status="404") == 1
    assert value(samples, REQUESTS, route="/api/users", method="POST", status="201") == 3
    assert value(samples, REQUESTS, route="/api/users", method="GET", status="401") == 2
    assert value(samples, REQUESTS, route="unmatched", method="GET", status="404") == 1
    assert not [k for k in samples if dict(k[1]).get("route", "").startswith("/api/users/user")]
    # The histogram: every request of the route in its count, buckets cumulative.
    assert value(samples, f"{LATENCY}_count", **item) == 4
    buckets = sorted(
        (float(dict(labels)["le"]), v)
        for (name, labels), v in samples.items()
        if name == f"{LATENCY}_bucket" and {("route", item["route"]), ("method", "GET")} <= labels
    )
    assert [v for _, v in buckets] == sorted(v for _, v in buckets) and buckets[-1][1] == 4
    assert 0 < value(samples, f"{LATENCY}_sum", **item) < 4 * 10
    assert value(samples, "multiframe_auth_failures_total", reason="missing_token") == 1
    assert value(samples, "multiframe_auth_failures_total", reason="invalid_token") == 1
    assert value(samples, "multiframe_http_requests_in_progress") == 1  # this scrape
    assert value(samples, "multiframe_service_info", system="multiframe") == 1
    assert value(samples, "multiframe_redis_up") == 1
    # Per collection: documents where an index counts them (the real server's RediSearch),
    # and the index state either way (fakeredis has no RediSearch: lists scan).
    state = "multiframe_index_state"
    if api.app[KEYSPACE].capabilities.search:
        assert value(samples, "multiframe_documents", collection="users") == listed["total"]
        assert value(samples, state, collection="users", multiframe_index_state="ready") == 1
        assert value(samples, "multiframe_index_indexed_ratio", collection="users") == 1
        assert value(samples, "multiframe_redis_memory_used_bytes") > 0
    else:
        assert value(samples, state, collection="users", multiframe_index_state="no_search") == 1
        assert total(samples, "multiframe_documents") == 0
    assert total(samples, state, multiframe_index_state="building") == 0
    # HEAD answers like GET, without the body.
    head = await api.head("/metrics")
    assert head.status == 200 and await head.read() == b""


async def test_the_scrape_is_also_openmetrics_and_gzip_when_asked(api: Client) -> None:
    resp = await api.get(
        "/metrics",
        headers={
            "Accept": "application/openmetrics-text; version=1.0.0",
            "Accept-Encoding": "gzip",
        },
    )
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
    assert resp.headers["Content-Encoding"] == "gzip"
    assert (await resp.text()).rstrip().endswith("# EOF")


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Client]:
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), protocol=2)
    client: Client = TestClient(TestServer(create_app(settings, client=redis)), headers=AUTH)
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
        await redis.aclose()


async def test_rate_limit_refusals_are_counted() -> None:
    async with serving(Settings(admin_token=ADMIN_TOKEN, admin_read_per_minute=3)) as api:
        statuses = [(await api.get("/api/users")).status for _ in range(8)]
        assert 429 in statuses and 200 in statuses
        samples = await scrape(api)
    refusals = value(
        samples, "multiframe_rate_limit_refusals_total", route="/api/users", method="GET"
    )
    assert refusals == statuses.count(429)
    assert value(samples, REQUESTS, route="/api/users", method="GET", status="429") == refusals


@pytest.mark.redis
async def test_redis_round_trips_of_the_service_pool_are_timed(
    redis_server: EmbeddedRedis,
) -> None:
    flush = connect(redis_server.url)
    await flush.flushall()
    await flush.aclose()
    app = create_app(Settings(redis_url=redis_server.url, admin_token=ADMIN_TOKEN))
    async with TestClient(TestServer(app), headers=AUTH) as api:
        before = await scrape(api)
        for _ in range(5):  # one authorize.lua round trip each at least
            assert (await api.get("/api/users/user_999")).status == 404
        after = await scrape(api)
    name = "multiframe_redis_round_trip_seconds"
    assert value(after, f"{name}_count", client="primary") >= (
        value(before, f"{name}_count", client="primary") + 5
    )
    assert 0 < value(after, f"{name}_sum", client="primary") < 5.0


def test_observing_again_replaces_the_observer() -> None:
    redis = connect("redis://127.0.0.1:1")  # no connection is opened
    seen: list[str] = []
    observe_round_trips(redis, lambda _: seen.append("first"))
    observe_round_trips(redis, lambda _: seen.append("second"))
    timed = redis.connection_pool.connection_class
    assert [c.__name__ for c in timed.__mro__].count("_Timed") == 1
    timed.observe(0.001)  # type: ignore[attr-defined]
    assert seen == ["second"]


async def test_the_metrics_token_guards_the_scrape() -> None:
    token = "metrics-token-0123456789"
    async with serving(Settings(admin_token=ADMIN_TOKEN, metrics_token=token)) as api:
        missing = await error_of(await api.get("/metrics", headers={"Authorization": ""}), 401)
        assert missing["code"] == "unauthorized"
        # The API's own tokens do not open it: the admin's is the wrong token here.
        wrong = await api.get("/metrics")
        assert wrong.status == 401
        assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
        samples = await scrape(api, {"Authorization": f"Bearer {token}"})
    assert value(samples, REQUESTS, route="/metrics", method="GET", status="401") == 2
    assert value(samples, "multiframe_auth_failures_total", reason="invalid_token") == 1
    assert value(samples, "multiframe_auth_failures_total", reason="missing_token") == 1


async def test_a_listener_of_its_own_serves_the_scrape_instead_of_the_api_port() -> None:
    port = free_port()
    settings = Settings(admin_token=ADMIN_TOKEN, metrics_listen=("127.0.0.1", port))
    async with serving(settings) as api:
        assert (await api.get("/api/users")).status == 200
        assert (await api.get("/metrics")).status == 404
        spec = await (await api.get("/openapi.json")).json()
        assert "/metrics" not in spec["paths"]
        async with ClientSession() as session:
            resp = await session.get(f"http://127.0.0.1:{port}/metrics")
            assert resp.status == 200
            assert resp.headers["X-Request-ID"]
            samples = parse(await resp.text())
            elsewhere = await session.get(f"http://127.0.0.1:{port}/api/users")
            await error_of(elsewhere, 404)
    assert value(samples, REQUESTS, route="/api/users", method="GET", status="200") == 1
    assert value(samples, REQUESTS, route="unmatched", method="GET", status="404") == 1


async def test_wrong_metrics_tokens_on_the_listener_are_counted_as_auth_failures() -> None:
    port, token = free_port(), "metrics-token-0123456789"
    settings = Settings(
        admin_token=ADMIN_TOKEN, metrics_listen=("127.0.0.1", port), metrics_token=token
    )
    async with serving(settings) as api:
        assert (await api.get("/api/users", headers={"Authorization": "Bearer nope"})).status == 401
        async with ClientSession() as session:
            url = f"http://127.0.0.1:{port}/metrics"
            for headers in ({}, {}, {"Authorization": "Bearer wrong"}, AUTH):
                assert (await session.get(url, headers=headers)).status == 401
            resp = await session.get(url, headers={"Authorization": f"Bearer {token}"})
            assert resp.status == 200
            samples = parse(await resp.text())
    assert value(samples, "multiframe_auth_failures_total", reason="missing_token") == 2
    assert value(samples, "multiframe_auth_failures_total", reason="invalid_token") == 3
    # The listener's scrapes are not the API's requests.
    assert total(samples, REQUESTS, route="/metrics") == 0


async def test_openapi_documents_metrics_as_text(api: Client) -> None:
    spec = await (await api.get("/openapi.json")).json()
    op = spec["paths"]["/metrics"]["get"]
    assert set(op["responses"]["200"]["content"]) == {"text/plain"}
    assert "401" in op["responses"] and "security" not in op


@pytest.mark.parametrize("name", systems.names())
async def test_every_system_is_scraped_with_its_own_collections(name: str) -> None:
    system = systems.load(name)
    async with serving(Settings(admin_token=ADMIN_TOKEN, system=name)) as api:
        collection = system.schema.entities[0].collection
        assert (await api.get(f"/api/{collection}")).status == 200
        samples = await scrape(api)
    assert value(samples, "multiframe_service_info", system=name) == 1
    listed = value(samples, REQUESTS, route=f"/api/{collection}", method="GET", status="200")
    assert listed == 1
    states = {
        dict(labels)["collection"]
        for (metric, labels), v in samples.items()
        if metric == "multiframe_index_state" and v == 1
    }
    assert states == {spec.collection for spec in system.schema.entities}


@pytest.mark.redis
async def test_a_lost_index_is_reported_missing(redis_server: EmbeddedRedis) -> None:
    redis = connect(redis_server.url)
    await redis.flushall()
    try:
        ks = Keyspace(redis)
        await ks.setup()
        assert {s.state for s in (await server_stats(ks)).indexes.values()} == {"ready"}
        users = ks.schema.entity("user")
        await call(redis, "FT.DROPINDEX", search.current_name(users))
        stats = await server_stats(ks)
    finally:
        await redis.aclose()
    assert stats.indexes["users"].state == "missing"
    assert stats.indexes["users"].documents is None
    assert stats.indexes["drivers"].state == "ready"
    assert stats.memory["used_memory"] > 0
