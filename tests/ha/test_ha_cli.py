"""``multiframe-admin ha up|status|restart|down`` as the README runs it: five processes on
consecutive loopback ports, the printed operator URL usable by the CLI itself (load-demo, check;
with ``MULTIFRAME_MIN_REPLICAS`` a command fails while the replica is down and works once
``ha restart`` brought it back), a second ``up`` refused while the first runs, and ``down``
stopping exactly the recorded processes."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from keyspace import ha

pytestmark = pytest.mark.redis


def _free_base() -> int:
    """A port whose next four are free too, below the ephemeral range (where the kernel picks
    the local ports of outgoing connections, which could take one meanwhile)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(50):
        base = random.randrange(max(1024, low - 12_000), low - 5)
        try:
            for port in range(base, base + 5):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError("no five consecutive free ports")


def admin(*argv: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"} | extra
    return subprocess.run(
        [sys.executable, "-m", "scripts.cli", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def _stopped(pid: int) -> bool:
    """Gone, or a zombie its new parent has not reaped yet (the CLI that started it exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _exposed(directory: Path) -> list[str]:
    """Files and directories under ``directory`` that group or others may read or enter:
    the configs hold the admin password in clear (sentinel auth-pass, masterauth)."""
    found = [directory, *directory.rglob("*")]
    return sorted(
        f"{p.relative_to(directory)} {oct(p.stat().st_mode & 0o777)}"
        for p in found
        if not p.is_symlink() and p.stat().st_mode & 0o077
    )


def test_ha_up_status_down(tmp_path: Path) -> None:
    directory, base = tmp_path / "ha", _free_base()
    try:
        up = admin("ha", "up", "--dir", str(directory), "--port-base", str(base))
        assert up.returncode == 0, up.stderr
        lines = dict(
            line.split("=", 1)
            for line in up.stdout.splitlines()
            if line.startswith(("REDIS", "MULTI"))
        )
        sentinels = ",".join(f"127.0.0.1:{p}" for p in range(base + 2, base + 5))
        assert lines["REDIS_URL"].startswith("redis+sentinel://multiframe:")
        assert lines["REDIS_URL"].endswith(f"@{sentinels}/multiframe/0")
        assert (directory / "ha.json").stat().st_mode & 0o077 == 0  # it holds the passwords
        # Redis rewrote node.conf (CONFIG REWRITE) and each sentinel.conf: still private.
        assert (directory / "sentinel-1" / "sentinel.conf").is_file()
        assert _exposed(directory) == []

        again = admin("ha", "up", "--dir", str(directory), "--port-base", str(base))
        assert again.returncode == 1 and "is running" in again.stderr

        status = admin("ha", "status", "--dir", str(directory))
        assert status.returncode == 0, status.stderr
        assert "redis-1: master" in status.stdout and "redis-2: slave" in status.stdout
        assert status.stdout.count(f"primary at 127.0.0.1:{base}") == 3

        loaded = admin("--redis-url", lines["MULTIFRAME_ADMIN_REDIS_URL"], "load-demo")
        assert loaded.returncode == 0, loaded.stderr
        checked = admin("--redis-url", lines["MULTIFRAME_ADMIN_REDIS_URL"], "check")
        assert checked.returncode == 0, checked.stderr
        assert "clean" in checked.stdout

        # The replica down: with durability on, a command's commits are not confirmed.
        durable = {"MULTIFRAME_MIN_REPLICAS": "1", "MULTIFRAME_MIN_REPLICAS_TIMEOUT_MS": "200"}
        ha.kill(ha.Cluster.load(directory), "redis-2")
        generate = ("--redis-url", lines["MULTIFRAME_ADMIN_REDIS_URL"], "generate", "--users")
        failed = admin(*generate, "2", "--seed", "1", **durable)
        assert failed.returncode == 1 and "re-run the command once" in failed.stderr
        running = admin("ha", "restart", "redis-1", "--dir", str(directory))
        assert running.returncode == 1 and "redis-1 is running" in running.stderr
        restarted = admin("ha", "restart", "redis-2", "--dir", str(directory))
        assert restarted.returncode == 0, restarted.stderr
        assert _exposed(directory) == []  # redis-2's node.conf rewritten again
        assert "redis-2: slave" in admin("ha", "status", "--dir", str(directory)).stdout
        confirmed = admin(*generate, "2", "--seed", "2", **durable)
        assert confirmed.returncode == 0, confirmed.stderr

        pids = json.loads((directory / "ha.json").read_text())["pids"]
        down = admin("ha", "down", "--dir", str(directory))
        assert down.returncode == 0, down.stderr
        assert all(_stopped(pid) for pid in pids.values())
        assert not any(_listening(port) for port in range(base, base + 5))
        gone = admin("ha", "status", "--dir", str(directory))
        assert gone.returncode == 1 and "no HA cluster" in gone.stderr
    finally:
        if (directory / "ha.json").exists():  # stopped by pid, whatever failed above
            ha.down(directory)
