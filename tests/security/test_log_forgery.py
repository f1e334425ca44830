"""No client can write a log line (review 18 finding 1): ``GET /x%0a<text>`` once put a raw
newline in the text access log, and the attacker's text read as a line of the service's own.
Served as ``python -m app`` serves it, through the service's own log handler set-up."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from app.tracing import RequestIdFilter, TextFormatter, json_formatter

from .served import raw, read_until_closed, running

FORGED = "2026-01-01 00:00:00,000 multiframe.api POST /api/admin/tokens 201 1.0ms"
ENCODED = FORGED.replace(" ", "%20")
# LF, CR, ESC, and U+2028 (a line separator to some log viewers), in the path and the query.
TARGET = f"/x%0a{ENCODED}%0d%1b%E2%80%A8end?q=%0a{ENCODED}%0d%1b"
CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


@pytest.fixture
def service_log() -> Iterator[logging.StreamHandler[io.StringIO]]:
    """The root logger's handler as app/tracing.py configure_logging sets it up, into a string."""
    handler = logging.StreamHandler(io.StringIO())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    api = logging.getLogger("multiframe")
    level = api.level
    root.addHandler(handler)
    api.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    api.setLevel(level)


async def exchange(port: int, head: bytes) -> bytes:
    reader, writer = await raw(port)
    writer.write(head)
    await writer.drain()
    response, _ = await read_until_closed(reader)
    writer.close()
    return response


async def test_a_path_and_query_cannot_forge_a_text_line(
    service_log: logging.StreamHandler[io.StringIO],
) -> None:
    service_log.setFormatter(TextFormatter("%(asctime)s %(name)s %(message)s"))
    async with running() as server:
        request = f"GET {TARGET} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        response = await exchange(server.port, request.encode())
        # The parser refuses a raw control character in the target before the app sees it.
        refused = await exchange(
            server.port, b"GET /x\x1b\r\n" + FORGED.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        )
    assert response.startswith(b"HTTP/1.1 404 ") and refused.startswith(b"HTTP/1.0 400 ")
    text = service_log.stream.getvalue()
    lines = text.splitlines()
    assert not CONTROL.search(text.replace("\n", "")), text
    assert not [line for line in lines if line.startswith("2026-01-01")], text
    (access,) = [line for line in lines if " multiframe.api GET " in line]
    # The path as sent (percent-encoded), without the query: one field, no spaces in it.
    assert access.split(" ")[3:5] == ["GET", TARGET.partition("?")[0]]
    assert re.search(r" 404 [0-9.]+ms request_id=[0-9a-f]{32}$", access), access
    assert "%0a" not in access.partition("?")[2]
    (refusal,) = [line for line in lines if "refused a malformed request" in line]
    assert refusal.split(" request_id=")[0].endswith(
        "multiframe refused a malformed request from 127.0.0.1: Invalid char in url path:"
    )


async def test_the_json_format_keeps_the_path_in_one_object(
    service_log: logging.StreamHandler[io.StringIO],
) -> None:
    service_log.setFormatter(json_formatter())
    async with running() as server:
        request = f"GET {TARGET} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        await exchange(server.port, request.encode())
    lines = [json.loads(line) for line in service_log.stream.getvalue().splitlines()]
    (access,) = [line for line in lines if line["message"].startswith("GET ")]
    assert access["message"].startswith(f"GET {TARGET.partition('?')[0]} 404 ")
    assert access["logger"] == "multiframe.api" and access["request_id"]
