"""Start-up errors of ``python -m app`` are one clear line and a non-zero exit, never a
traceback: a malformed replica URL (exit 2, said once by the parent of ``--workers``), an
unreachable one (exit 1, as an unreachable REDIS_URL), and a port in use with one process as
with several."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from keyspace.server import free_port

from .test_service_process import environment

pytestmark = pytest.mark.redis

START_SECONDS = 60


def _start(tmp_path: Path, port: int, *args: str, **extra: str) -> tuple[int, str]:
    env = {**environment(tmp_path / "data", port), **extra}
    done = subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=START_SECONDS,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def _errors(output: str) -> list[str]:
    """The lines that are not log lines (the logs start with a date)."""
    return [line for line in output.splitlines() if line and not line[:1].isdigit()]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_malformed_replica_url_is_one_line_and_exit_2(tmp_path: Path, workers: str) -> None:
    code, output = _start(
        tmp_path,
        free_port(),
        "--workers",
        workers,
        MULTIFRAME_READ_FROM="replica",
        MULTIFRAME_REPLICA_URL="garbage",
    )
    assert code == 2, output
    assert "Traceback" not in output
    assert _errors(output) == [
        "multiframe: MULTIFRAME_REPLICA_URL (garbage): not a Redis URL; use "
        "redis://[user:password@]host:port/db or "
        "redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]"
    ]


def test_an_unreachable_replica_stops_the_start(tmp_path: Path) -> None:
    dead = free_port()
    code, output = _start(
        tmp_path,
        free_port(),
        MULTIFRAME_READ_FROM="replica",
        MULTIFRAME_REPLICA_URL=f"redis://u:secretpw@127.0.0.1:{dead}/0",
    )
    assert code == 1, output
    assert "Traceback" not in output and "secretpw" not in output
    (line,) = _errors(output)
    assert line.startswith(f"cannot use MULTIFRAME_REPLICA_URL (redis://127.0.0.1:{dead}/0): ")
    assert not (tmp_path / "data").exists()  # refused before the embedded Redis started


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_one_line(tmp_path: Path, workers: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code, output = _start(tmp_path, port, "--workers", workers)
    assert code == 1, output
    assert "Traceback" not in output
    assert _errors(output) == [f"cannot listen on 127.0.0.1:{port}: Address already in use"]


@pytest.mark.parametrize(
    ("args", "extra", "line"),
    [
        ((), {"MULTIFRAME_PORT": "99999"}, "MULTIFRAME_PORT must be a port from 1 to 65535"),
        (("--workers", "2"), {"MULTIFRAME_PORT": "99999"}, "MULTIFRAME_PORT must be a port"),
        (("--port", "99999"), {}, "--port must be a port from 1 to 65535"),
        ((), {"MULTIFRAME_REDIS_TIMEOUT_SECONDS": "0"}, "MULTIFRAME_REDIS_TIMEOUT_SECONDS must be"),
    ],
)
def test_a_setting_out_of_bounds_is_one_line_and_exit_2(
    tmp_path: Path, args: tuple[str, ...], extra: dict[str, str], line: str
) -> None:
    # The port used to be taken modulo 65536 (served elsewhere), the timeout of 0 to retry
    # "redis not ready" for ever (review 17b finding 3).
    code, output = _start(tmp_path, free_port(), *args, **extra)
    assert code == 2, output
    (error,) = _errors(output)
    assert error.startswith(line) and "Traceback" not in output, output
    assert not (tmp_path / "data").exists()  # refused before the embedded Redis started
