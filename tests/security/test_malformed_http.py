"""Requests aiohttp's HTTP parser refuses before the app sees them (oversized request lines and
headers, malformed request lines and headers, broken framing) are answered in the service's
error format, and the connection is closed; the server keeps serving."""

from __future__ import annotations

import orjson
import pytest
from aiohttp import ClientSession

from app.server import parser_error

from .conftest import ADMIN_TOKEN
from .served import raw, read_until_closed, running

HOST = b"Host: t\r\n"
CASES = {
    "url over 8190 bytes": b"GET /api/users/" + b"u" * 9000 + b" HTTP/1.1\r\n" + HOST + b"\r\n",
    "header over 8190 bytes": b"GET /api/users HTTP/1.1\r\n"
    + HOST
    + b"X-Big: "
    + b"a" * 9000
    + b"\r\n\r\n",
    "too many headers": b"GET /health HTTP/1.1\r\n"
    + HOST
    + b"".join(b"X-%d: 1\r\n" % i for i in range(200))
    + b"\r\n",
    "bad method": b"G@T /health HTTP/1.1\r\n" + HOST + b"\r\n",
    "tls on the http port": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    "space in a header name": b"GET /health HTTP/1.1\r\n" + HOST + b"Bad Header: 1\r\n\r\n",
    "non-numeric content-length": b"POST /api/users HTTP/1.1\r\n"
    + HOST
    + b"Content-Length: abc\r\n\r\n",
    "bad chunk size": b"POST /api/users HTTP/1.1\r\n"
    + HOST
    + b"Authorization: Bearer "
    + ADMIN_TOKEN.encode()
    + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
}


def split(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize("request_bytes", CASES.values(), ids=list(CASES))
async def test_malformed_requests_get_the_error_format(request_bytes: bytes) -> None:
    async with running() as server:
        reader, writer = await raw(server.port)
        writer.write(request_bytes)
        await writer.drain()
        response, _ = await read_until_closed(reader)
        writer.close()
        status, headers, body = split(response)
        assert 400 <= status < 500, response[:200]
        assert headers["content-type"].startswith("application/json")
        error = orjson.loads(body)["error"]
        assert set(error) == {"code", "message", "details"}
        assert error["code"] == "bad_request"
        assert len(error["message"]) < 200  # a reason, not the offending bytes echoed back
        async with (
            ClientSession() as session,
            session.get(f"http://127.0.0.1:{server.port}/health") as ok,
        ):
            assert ok.status == 200  # the server is unharmed


def test_oversized_lines_name_the_limit() -> None:
    from aiohttp.http_exceptions import LineTooLong

    response = parser_error(400, LineTooLong(b"x" * 9000, 8190))
    assert response.status == 400
    assert isinstance(response.body, bytes)
    assert orjson.loads(response.body)["error"]["message"] == (
        "the request line or a header field is over 8190 bytes"
    )


def test_an_escaped_exception_is_a_500_in_the_format_without_details() -> None:
    response = parser_error(500, RuntimeError("secret internals"))
    assert response.status == 500
    assert isinstance(response.body, bytes)
    error = orjson.loads(response.body)["error"]
    assert error["code"] == "internal_error"
    assert b"secret" not in response.body
