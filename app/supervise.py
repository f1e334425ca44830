"""Keep the embedded Redis of ``python -m app`` running: restart it when it dies.

A restart uses the same port, data directory (RDB + AOF: what was acknowledged per the
fsync policy is there again) and ACL users, so the service's connection pool reconnects by
itself. Restarts back off; after ``MAX_FAILURES`` failed starts, or crashes each within
``STABLE_SECONDS`` of the last start, the supervisor gives up and the process exits non-zero
so an outer supervisor (systemd, a container runtime) takes over.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

from keyspace import EmbeddedRedis, EmbeddedRedisError

log = logging.getLogger("multiframe.supervise")

POLL_SECONDS = 0.2
FIRST_DELAY_SECONDS, MAX_DELAY_SECONDS = 0.5, 8.0
MAX_FAILURES = 5
STABLE_SECONDS = 30.0  # a server up this long has recovered: its next crash starts afresh


def write_url_file(path: Path, url: str) -> None:
    """``multiframe-admin`` finds the running server through this file (mode 0600: it holds
    the service user's password)."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(url + "\n")


class Supervisor:
    """Watches ``embedded``; :attr:`gave_up` is set when the process should exit non-zero."""

    def __init__(self, embedded: EmbeddedRedis, url_file: Path) -> None:
        self.embedded = embedded
        self.url_file = url_file
        self.gave_up = False

    async def run(self) -> None:
        """Watch until cancelled; on giving up, SIGTERM this process for a graceful stop."""
        loop = asyncio.get_running_loop()
        failures = 0
        started = loop.time()
        while True:
            await asyncio.sleep(POLL_SECONDS)
            if self.embedded.running:
                if failures and loop.time() - started >= STABLE_SECONDS:
                    failures = 0
                continue
            log.error(
                "the embedded redis-server (pid %s) exited with status %s; restarting it",
                self.embedded.pid,
                self.embedded.exit_code,
            )
            if loop.time() - started < STABLE_SECONDS:
                failures += 1  # a crash loop counts like a failed start
            while not await self._restart():
                failures += 1
                if failures >= MAX_FAILURES:
                    self._give_up(failures)
                    return
                delay = min(FIRST_DELAY_SECONDS * 2 ** (failures - 1), MAX_DELAY_SECONDS)
                log.warning("retrying in %.1fs", delay)
                await asyncio.sleep(delay)
            if failures >= MAX_FAILURES:
                self._give_up(failures)
                return
            started = loop.time()

    async def _restart(self) -> bool:
        try:
            # Blocking (waits for PING and the modules): in a thread, so requests get their
            # 503s meanwhile instead of waiting on a frozen loop.
            url = await asyncio.to_thread(self.embedded.restart)
        except EmbeddedRedisError as exc:
            log.error("restarting the embedded redis-server failed: %s", exc)
            return False
        write_url_file(self.url_file, url)
        log.warning("embedded redis-server restarted (pid %s)", self.embedded.pid)
        return True

    def _give_up(self, failures: int) -> None:
        log.critical(
            "the embedded redis-server failed %d times in a row; stopping the service so an "
            "outer supervisor can take over",
            failures,
        )
        self.gave_up = True
        os.kill(os.getpid(), signal.SIGTERM)  # serve() stops gracefully on it
