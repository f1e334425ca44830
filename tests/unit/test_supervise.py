"""The embedded-Redis supervisor's give-up rule, without a server: repeated failed restarts
end the service (non-zero exit through a graceful SIGTERM) instead of retrying forever."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from app import supervise
from keyspace.server import EmbeddedRedisError


class DeadServer:
    """A server that died and cannot be started again."""

    running = False
    pid = 4242
    exit_code = -9

    def __init__(self) -> None:
        self.restarts = 0

    def restart(self) -> str:
        self.restarts += 1
        raise EmbeddedRedisError("the data directory is in use")


async def test_gives_up_after_repeated_failed_restarts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    signals: list[tuple[int, int]] = []
    monkeypatch.setattr("app.supervise.os.kill", lambda pid, sig: signals.append((pid, sig)))
    monkeypatch.setattr(supervise, "POLL_SECONDS", 0.0)
    monkeypatch.setattr(supervise, "FIRST_DELAY_SECONDS", 0.0)
    server: Any = DeadServer()
    watcher = supervise.Supervisor(server, tmp_path / "redis.url")
    await watcher.run()  # returns only when it gives up
    assert watcher.gave_up
    assert server.restarts == supervise.MAX_FAILURES - 1  # the crash itself counts once
    assert [sig for _, sig in signals] == [signal.SIGTERM]
    assert not (tmp_path / "redis.url").exists()
