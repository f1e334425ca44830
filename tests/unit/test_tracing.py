"""Log lines (``MULTIFRAME_LOG_FORMAT``) and the settings of issue 18's metrics section."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from app.config import Settings
from app.errors import current, traced
from app.tracing import (
    RequestIdFilter,
    TextFormatter,
    bound,
    choose,
    json_formatter,
    printable,
)


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


def test_a_text_record_is_one_line_whatever_its_message_holds(
    logged: tuple[logging.Logger, logging.StreamHandler[io.StringIO]],
) -> None:
    logger, handler = logged
    handler.setFormatter(TextFormatter("%(name)s %(message)s"))
    with bound("req-8"):
        logger.warning("redis unavailable during GET %s: %s", "/a\nb", "err\r\x1b[2J\u2028x")
    assert handler.stream.getvalue() == (
        "tests.tracing redis unavailable during GET /a\\x0ab: err\\x0d\\x1b[2J\\u2028x"
        " request_id=req-8\n"
    )


def test_a_text_traceback_keeps_its_frames_and_escapes_its_messages(
    logged: tuple[logging.Logger, logging.StreamHandler[io.StringIO]],
) -> None:
    logger, handler = logged
    handler.setFormatter(TextFormatter("%(name)s %(message)s"))
    try:
        try:
            raise KeyError("inner")
        except KeyError as exc:
            raise ValueError("echoed\nFORGED line\x1b") from exc
    except ValueError:
        logger.exception("unhandled error in GET /x")
    lines = handler.stream.getvalue().splitlines()
    assert lines[0] == "tests.tracing unhandled error in GET /x"
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[2].startswith('  File "') and lines[3].strip() == 'raise KeyError("inner")'
    assert "KeyError: 'inner'" in lines
    assert "The above exception was the direct cause of the following exception:" in lines
    assert lines[-1] == "ValueError: echoed\\x0aFORGED line\\x1b"
    assert not [line for line in lines if line.startswith("FORGED")]


def test_printable() -> None:
    assert printable("GET /api/users 200 1.0ms") == "GET /api/users 200 1.0ms"
    assert printable("caf\u00e9 \\x0a") == "caf\u00e9 \\x0a"  # printable stays as it is
    assert printable("\t\x00\x7f\x85\u202e\U000e0001") == (  # controls, C1, bidi, tag
        "\\x09\\x00\\x7f\\x85\\u202e\\U000e0001"
    )


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
