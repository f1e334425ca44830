"""When the delivery middleware may skip its send timeout: only when nothing can wait."""

from __future__ import annotations

import io

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from app.main import HEADERS_ALLOWANCE, _fits

HIGH = 65536


class Transport:
    """What _fits reads of a transport: its buffered bytes and its high-water mark."""

    def __init__(self, buffered: int) -> None:
        self.buffered = buffered

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (HIGH // 4, HIGH)

    def get_extra_info(self, name: str) -> None:
        return None


def request(buffered: int) -> web.Request:
    return make_mocked_request("GET", "/api/users/user_1", transport=Transport(buffered))


@pytest.mark.parametrize(
    ("buffered", "body", "fits"),
    [
        (0, 300, True),
        (0, HIGH - HEADERS_ALLOWANCE, True),
        (0, HIGH - HEADERS_ALLOWANCE + 1, False),
        (HIGH - HEADERS_ALLOWANCE - 300, 300, True),
        (HIGH - HEADERS_ALLOWANCE, 300, False),
        (HIGH, 0, False),
    ],
)
def test_a_body_fits_only_below_the_high_water_mark(buffered: int, body: int, fits: bool) -> None:
    assert _fits(request(buffered), web.Response(body=b"x" * body)) is fits


def test_a_streamed_or_payload_body_never_fits() -> None:
    assert not _fits(request(0), web.StreamResponse())
    assert not _fits(request(0), web.Response(body=io.BytesIO(b"{}")))  # a payload: size unknown


def test_a_request_without_a_transport_never_fits() -> None:
    bare = make_mocked_request("GET", "/api/users/user_1")
    bare.protocol.transport = None
    assert not _fits(bare, web.Response(body=b"{}"))
