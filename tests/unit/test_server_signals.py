"""A stop signal while the embedded server is being spawned (keyspace.server): it takes
effect once the child is known, so the start that made the server stops it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from keyspace import server
from keyspace.server import EmbeddedRedis, free_port


def test_a_signal_inside_the_block_is_raised_at_its_end() -> None:
    reached = []

    def held() -> None:
        with server._signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # where the handler would otherwise run
            reached.append(True)

    with pytest.raises(KeyboardInterrupt):
        held()
    assert reached
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_ctrl_c_right_after_the_fork_leaves_no_child_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, spawned = subprocess.Popen, []

    def interrupted(cmd: list[str], **options: Any) -> subprocess.Popen[bytes]:
        child = real(["sleep", "60"], process_group=0)
        spawned.append(child)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C after the fork, before Popen returns
        time.sleep(0.05)
        return child

    monkeypatch.setattr(subprocess, "Popen", interrupted)  # the module keyspace.server calls
    embedded = EmbeddedRedis(tmp_path / "data", port=free_port())
    with pytest.raises(KeyboardInterrupt):
        embedded.start(timeout=5)
    assert spawned and spawned[0].poll() is not None, "the child outlived the start"
