"""Log lines (``MULTIFRAME_LOG_FORMAT``) and the settings of issue 18's metrics section."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from app.config import Settings
from app.errors import current, traced
from app.tracing import RequestIdFilter, TextFormatter, bound, choose, json_formatter


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, logging.StreamHandler[io.StringIO]]]:
    """A logger of its own with the service's handler set-up, writing to a string."""
    handler = logging.StreamHandler(io.StringIO())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("tests.tracing")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield logger, handler
    logger.removeHandler(handler)


def test_json_lines_are_one_object_each_with_the_request_id(
    logged: tuple[logging.Logger, logging.StreamHandler[io.StringIO]],
) -> None:
    logger, handler = logged
    handler.setFormatter(json_formatter())
    logger.info("outside %s", "any request")
    with bound("req-42"):
        try:
            raise ValueError("boom\nwith a second line")
        except ValueError:
            logger.exception("failed: %s", 'quote " and newline \n inside')
    lines = handler.stream.getvalue().splitlines()
    assert len(lines) == 2  # a traceback and newlines stay inside their line's JSON
    outside, failed = (json.loads(line) for line in lines)
    assert outside["message"] == "outside any request" and "request_id" not in outside
    assert set(outside) >= {"time", "level", "logger", "pid", "message"}
    assert outside["level"] == "INFO" and outside["logger"] == "tests.tracing"
    assert outside["time"].endswith("Z") and outside["time"][10] == "T"
    assert failed["request_id"] == "req-42" and failed["level"] == "ERROR"
    assert failed["message"] == 'failed: quote " and newline \n inside'
    assert "ValueError: boom" in failed["exc_info"]


def test_text_lines_name_the_request_after_the_message(
    logged: tuple[logging.Logger, logging.StreamHandler[io.StringIO]],
) -> None:
    logger, handler = logged
    handler.setFormatter(TextFormatter("%(name)s %(message)s"))
    with bound("req-7"):
        logger.info("GET /api/users 200 1.0ms")
    logger.info("no request")
    assert handler.stream.getvalue().splitlines() == [
        "tests.tracing GET /api/users 200 1.0ms request_id=req-7",
        "tests.tracing no request",
    ]


def test_5xx_details_take_the_request_id_whatever_their_shape() -> None:
    assert traced({"a": 1}) == {"a": 1}  # outside a request: unchanged
    with bound("r-1"):
        assert current.get() == "r-1"
        assert traced(None) == {"request_id": "r-1"}
        assert traced({"a": 1}) == {"a": 1, "request_id": "r-1"}
        assert traced(["x"]) == {"request_id": "r-1", "details": ["x"]}
    assert current.get() is None


def test_choose() -> None:
    assert choose({"X-Request-ID": "a.b:c_d-9"}) == "a.b:c_d-9"
    assert len(choose({"X-Request-ID": "a/b"})) == 32
    assert choose({}) != choose({})


def test_the_settings() -> None:
    env = {
        "MULTIFRAME_METRICS_TOKEN": "t0ken",
        "MULTIFRAME_METRICS_LISTEN": "[::1]:9464",
        "MULTIFRAME_LOG_FORMAT": "JSON",
    }
    settings = Settings.from_env(env)
    assert settings.metrics_token == "t0ken"
    assert settings.metrics_listen == ("::1", 9464)
    assert settings.log_format == "json"
    assert Settings.from_env({}).metrics_listen is None
    assert Settings.from_env({}).log_format == "text"
    assert Settings.from_env({"MULTIFRAME_METRICS_LISTEN": "0.0.0.0:9100"}).metrics_listen == (
        "0.0.0.0",
        9100,
    )
    for wrong in ("9464", "host:", "host:99999", ":9464", "host:port"):
        with pytest.raises(SystemExit, match="MULTIFRAME_METRICS_LISTEN"):
            Settings.from_env({"MULTIFRAME_METRICS_LISTEN": wrong})
    with pytest.raises(SystemExit, match="MULTIFRAME_LOG_FORMAT"):
        Settings.from_env({"MULTIFRAME_LOG_FORMAT": "xml"})
