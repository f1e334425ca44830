"""An exclusive lock for an admin operation (``reindex``, ``migrate``), and cleanup that
Ctrl-C cannot cut short.

The lock is one key (``keys.lock_key``) taken with SET NX and an expiry, holding who took
it; the holder renews it while it works, so a second run is refused cleanly and the lock
of a process that died expires by itself. Renewing and releasing go through commit.lua and
first check the key still holds this holder's value, so nobody else's lock is touched.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from .errors import Held
from .plan import Plan

if TYPE_CHECKING:
    from .engine import Keyspace

T = TypeVar("T")
TTL_MS = 30_000
RENEW_S = 5.0
CLEANUP_S = 10.0  # the most a cleanup may take once Ctrl-C was pressed


@dataclass
class AdminLock:
    ks: Keyspace
    name: str
    holder: str = field(
        default_factory=lambda: f"{socket.gethostname()} pid {os.getpid()} {uuid.uuid4().hex[:8]}"
    )
    renewed: float = 0.0

    @property
    def key(self) -> str:
        return self.ks.schema.names.lock_key(self.name)

    async def take(self) -> None:
        """Take the lock, or Held naming who holds it."""
        if await self.ks.client.set(self.key, self.holder, nx=True, px=TTL_MS):
            self.renewed = time.monotonic()
            return
        other = await self.ks.client.get(self.key)
        who = other.decode(errors="replace") if isinstance(other, bytes) else other
        raise Held(
            f"another {self.name} is running ({who or 'just ending'}; lock {self.key}); "
            "wait for it to finish, or if that process is gone, run again once its lock "
            f"expires (within {TTL_MS // 1000} s)"
        )

    async def renew(self) -> bool:
        """Extend the lock (at most every RENEW_S); False when it is no longer ours."""
        if time.monotonic() - self.renewed < RENEW_S:
            return True
        plan = Plan(self.ks.schema.names.pause_key())
        plan.check("string", self.key, self.holder.encode())
        plan.write("pexpire", self.key, TTL_MS)
        self.renewed = time.monotonic()
        # Not waited for (nor the release): a lock a failover undoes expires by itself.
        return (await self.ks.scripts.commit(plan, durable=False)).ok

    async def release(self) -> None:
        plan = Plan(self.ks.schema.names.pause_key())
        plan.write("delif", self.key, self.holder)  # only our own value
        await self.ks.scripts.commit(plan, durable=False)


async def settled(cleanup: Callable[[], Awaitable[T]]) -> T:
    """Run ``cleanup`` to its end even while the caller is being cancelled again and again
    (``cli.interruptible`` re-cancels after Ctrl-C until the command ends), for at most
    CLEANUP_S; returns its result, its errors propagate."""
    task = asyncio.ensure_future(cleanup())
    deadline = time.monotonic() + CLEANUP_S
    while not task.done() and time.monotonic() < deadline:
        try:
            await asyncio.wait({task}, timeout=max(0.0, deadline - time.monotonic()))
        except asyncio.CancelledError:
            continue
    if not task.done():
        task.cancel()
        raise TimeoutError(f"cleanup did not finish in {CLEANUP_S} s")
    return task.result()
