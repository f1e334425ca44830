"""``X-Request-ID`` (issue 18, "Metrics and request tracing"): echoed when valid, made
otherwise, on every response (errors, the parser's refusals); in a 5xx error's
``details.request_id`` and in the log lines of the request."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator

import fakeredis
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app import create_app, health
from app.config import Settings
from app.tracing import RequestIdFilter
from tests.api.conftest import ADMIN_TOKEN, AUTH
from tests.api.test_collections import Client
from tests.api.test_errors import error_of
from tests.security.served import raw, read_until_closed, running
from tests.security.test_malformed_http import split

MADE = re.compile(r"[0-9a-f]{32}")


async def test_a_valid_request_id_is_echoed(api: Client) -> None:
    for given in ("abc-123.def:ghi_J", "0" * 128, "00-4bf92f3577b34da6a3ce929d0e0e4736-01"):
        resp = await api.get("/api/users", headers={"X-Request-ID": given})
        assert resp.status == 200
        assert resp.headers["X-Request-ID"] == given


async def test_an_id_is_made_when_none_is_sent(api: Client) -> None:
    first = (await api.get("/health")).headers["X-Request-ID"]
    second = (await api.get("/health")).headers["X-Request-ID"]
    assert MADE.fullmatch(first) and MADE.fullmatch(second) and first != second


@pytest.mark.parametrize(
    "given", ["", "a b", "x" * 129, 'say"hi', "semi;colon", "tab\there"], ids=repr
)
async def test_an_invalid_request_id_is_replaced(api: Client, given: str) -> None:
    resp = await api.get("/api/users", headers={"X-Request-ID": given})
    assert resp.status == 200
    assert MADE.fullmatch(resp.headers["X-Request-ID"]), resp.headers["X-Request-ID"]


async def test_every_kind_of_response_carries_it(api: Client) -> None:
    no_route = await api.get("/no/such/route", headers={"X-Request-ID": "r-404"})
    unauthorized = await api.get("/api/users", headers={"Authorization": "", "X-Request-ID": "r"})
    options = await api.options("/api/users", headers={"X-Request-ID": "r-options"})
    assert (await error_of(no_route, 404))["details"] is None  # a 4xx's details are its own
    assert no_route.headers["X-Request-ID"] == "r-404"
    assert unauthorized.status == 401 and unauthorized.headers["X-Request-ID"] == "r"
    assert options.headers["X-Request-ID"] == "r-options"


async def test_a_request_the_parser_refuses_carries_one_too() -> None:
    async with running() as server:  # served as python -m app serves it (its parser errors)
        reader, writer = await raw(server.port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-ID: p-1\r\nno colon\r\n\r\n")
        await writer.drain()
        response, _ = await read_until_closed(reader)
        writer.close()
    status, headers, _ = split(response)
    assert status == 400
    # A request the parser refused has no headers to trust: its id is made.
    assert MADE.fullmatch(headers["x-request-id"]), headers


@pytest.fixture
async def flaky() -> AsyncIterator[tuple[Client, fakeredis.FakeServer]]:
    """An app whose Redis can be made unreachable (``server.connected = False``)."""
    server = fakeredis.FakeServer()
    redis = fakeredis.FakeAsyncRedis(server=server, protocol=2)
    app = create_app(Settings(admin_token=ADMIN_TOKEN), client=redis)
    client: Client = TestClient(TestServer(app), headers=AUTH)
    await client.start_server()
    yield client, server
    await client.close()
    await redis.aclose()


async def test_a_503_names_the_request_in_its_details(
    flaky: tuple[Client, fakeredis.FakeServer],
) -> None:
    api, server = flaky
    server.connected = False
    listed = await api.get("/api/users", headers={"X-Request-ID": "trace-503"})
    body = await error_of(listed, 503)
    assert body["code"] == "redis_unavailable"
    assert body["details"] == {"request_id": "trace-503"}
    assert listed.headers["X-Request-ID"] == "trace-503"
    # Details of its own keep theirs, with the id beside them.
    health_check = await api.get("/health")
    details = (await error_of(health_check, 503))["details"]
    assert details["redis"] == "unreachable"
    assert details["request_id"] == health_check.headers["X-Request-ID"]
    assert MADE.fullmatch(details["request_id"])


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """What multiframe.api logs, through the filter the service's log handler has."""
    kept: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            kept.append(record)

    handler = Keep()
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("multiframe.api")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield kept
    logger.removeHandler(handler)
    logger.setLevel(level)


async def test_a_500_names_the_request_in_its_details_and_its_log_lines(
    monkeypatch: pytest.MonkeyPatch, records: list[logging.LogRecord]
) -> None:
    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    monkeypatch.setattr(health, "openapi", broken)  # the route table takes it from there
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), protocol=2)
    app = create_app(Settings(admin_token=ADMIN_TOKEN), client=redis)
    async with TestClient(TestServer(app)) as api:
        resp = await api.get("/openapi.json", headers={"X-Request-ID": "bug-7"})
        body = await error_of(resp, 500)
    await redis.aclose()
    assert body["code"] == "internal_error"
    assert body["details"] == {"request_id": "bug-7"}
    ours = [r for r in records if getattr(r, "request_id", None) == "bug-7"]
    failure = [r for r in ours if r.exc_info is not None]
    assert failure and "GET /openapi.json" in failure[0].getMessage()
    assert any(r.getMessage().startswith("GET /openapi.json 500 ") for r in ours)  # access line
    assert not [r for r in records if r not in ours and "openapi" in r.getMessage()]
