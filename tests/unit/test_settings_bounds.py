"""Every numeric setting of ``python -m app`` has bounds: a value outside them stops the start
with one line naming the setting and exit 2, as a malformed REDIS_URL does, instead of serving
somewhere else (a port taken modulo 65536) or retrying for ever (a Redis timeout of 0)."""

from __future__ import annotations

import sys

import pytest

import app.__main__ as app_main
from app.__main__ import USAGE, main
from app.config import BadSetting, Settings


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MULTIFRAME_PORT", "99999"),
        ("MULTIFRAME_PORT", "65536"),
        ("MULTIFRAME_PORT", "-1"),
        ("MULTIFRAME_REDIS_TIMEOUT_SECONDS", "0"),
        ("MULTIFRAME_REDIS_TIMEOUT_SECONDS", "-5"),
        ("MULTIFRAME_REDIS_TIMEOUT_SECONDS", "86401"),  # past what a socket can wait
        ("MULTIFRAME_SHUTDOWN_TIMEOUT_SECONDS", "-1"),
        ("MULTIFRAME_KEEPALIVE_TIMEOUT_SECONDS", "1e12"),
        ("MULTIFRAME_BODY_TIMEOUT_SECONDS", "0"),
        ("MULTIFRAME_SEND_TIMEOUT_SECONDS", "nan"),
        ("MULTIFRAME_MAX_BODY_BYTES", "0"),  # aiohttp would take 0 as no limit at all
        ("MULTIFRAME_REDIS_MAX_CONNECTIONS", "0"),
        ("MULTIFRAME_REDIS_MAX_CONNECTIONS", "10001"),
        ("MULTIFRAME_RATE_READ_PER_MINUTE", "-1"),
        ("MULTIFRAME_RATE_WRITE_PER_MINUTE", "-1"),
        ("MULTIFRAME_RATE_TOKENS_PER_MINUTE", "-1"),
        ("MULTIFRAME_RATE_ADMIN_READ_PER_MINUTE", "-1"),
        ("MULTIFRAME_RATE_ADMIN_WRITE_PER_MINUTE", "-1"),
    ],
)
def test_a_value_out_of_bounds_is_refused_naming_the_setting(name: str, value: str) -> None:
    with pytest.raises(BadSetting) as refused:
        Settings.from_env({name: value})
    assert str(refused.value).startswith(f"{name} must be ")
    assert value in str(refused.value)


def test_the_bounds_themselves_are_taken() -> None:
    edges = {
        "MULTIFRAME_PORT": "65535",
        "MULTIFRAME_REDIS_TIMEOUT_SECONDS": "1",
        "MULTIFRAME_SHUTDOWN_TIMEOUT_SECONDS": "0",  # requests in flight are not waited for
        "MULTIFRAME_KEEPALIVE_TIMEOUT_SECONDS": "86400",
        "MULTIFRAME_MAX_BODY_BYTES": "1",
        "MULTIFRAME_REDIS_MAX_CONNECTIONS": "10000",
        "MULTIFRAME_RATE_READ_PER_MINUTE": "0",  # unlimited
    }
    settings = Settings.from_env(edges)
    assert (settings.port, settings.redis_timeout, settings.shutdown_timeout) == (65535, 1.0, 0.0)
    assert (settings.keepalive_timeout, settings.max_body) == (86400.0, 1)
    assert (settings.max_connections, settings.read_per_minute) == (10000, 0)
    assert Settings.from_env({"MULTIFRAME_PORT": "0"}).port == 0  # any free port, logged


@pytest.mark.parametrize(
    ("env", "argv", "line"),
    [
        (
            {"MULTIFRAME_PORT": "99999"},
            [],
            "MULTIFRAME_PORT must be a port from 1 to 65535 (0: any free port), got 99999",
        ),
        (
            {},
            ["--port", "99999"],
            "--port must be a port from 1 to 65535 (0: any free port), got 99999",
        ),
        (
            {"MULTIFRAME_REDIS_TIMEOUT_SECONDS": "0"},
            ["--workers", "2"],
            "MULTIFRAME_REDIS_TIMEOUT_SECONDS must be a whole number of seconds from 1 to 86400, "
            "got '0'",
        ),
        (
            {"MULTIFRAME_WORKERS": "0"},
            [],
            "MULTIFRAME_WORKERS must be from 1 to 64 API processes, got 0",
        ),
        (
            {"MULTIFRAME_MIN_REPLICAS": "1"},  # the embedded server has no replicas
            [],
            "MULTIFRAME_MIN_REPLICAS needs replicas, and the embedded server has none: "
            "REDIS_URL=redis+sentinel://... (see `multiframe-admin ha up`), or unset it",
        ),
    ],
)
def test_the_service_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    argv: list[str],
    line: str,
) -> None:
    for name in ("REDIS_URL", "MULTIFRAME_PORT", "MULTIFRAME_WORKERS", "MULTIFRAME_MIN_REPLICAS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "argv", ["multiframe", *argv])
    monkeypatch.setattr(app_main, "configure_logging", lambda *_: None)  # this process's
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == USAGE == 2
    assert capsys.readouterr().err == line + "\n"


@pytest.mark.parametrize(("value", "expected"), [("", True), ("on", True), ("OFF", False)])
def test_pipelining_is_on_unless_turned_off(value: str, expected: bool) -> None:
    assert Settings.from_env({"MULTIFRAME_PIPELINING": value}).pipelining is expected


def test_pipelining_takes_only_on_or_off() -> None:
    with pytest.raises(BadSetting, match="MULTIFRAME_PIPELINING must be on or off"):
        Settings.from_env({"MULTIFRAME_PIPELINING": "yes"})
