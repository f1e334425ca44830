"""The Lua scripts, registered once and called by SHA as typed methods.

redis-py's ``register_script`` sends EVALSHA and reloads the script on NOSCRIPT,
so a server that restarted empty (or ran SCRIPT FLUSH) needs nothing from us.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from redis.asyncio import Redis

from .plan import Plan


def _source(name: str) -> str:
    return resources.files("keyspace").joinpath("lua", name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class CommitResult:
    """Outcome of one plan: the returned document, or which check failed."""

    raw: bytes | None = None
    error: str | None = None
    field: str = ""
    value: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Scripts:
    """Typed wrappers around ``lua/*.lua`` for one client."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self._commit = client.register_script(_source("commit.lua"))
        self._authorize = client.register_script(_source("authorize.lua"))
        self._chip_metrics = client.register_script(_source("chip_metrics.lua"))

    async def commit(self, plan: Plan) -> CommitResult:
        """Apply ``plan`` atomically (``commit.lua``)."""
        reply = await self._commit(keys=plan.keys, args=plan.args())
        status = _text(reply[0])
        if status == "ok":
            return CommitResult(raw=reply[1] or None)
        if status == "err" and _text(reply[1]) == "bad_plan":
            raise RuntimeError(f"commit.lua rejected a malformed plan: {reply!r}")
        return CommitResult(error=_text(reply[1]), field=_text(reply[2]), value=_text(reply[3]))

    async def authorize(self, keys: list[str], args: list[str | int]) -> list[bytes | int]:
        """Token, maintenance and rate-limit check (``authorize.lua``)."""
        reply: list[bytes | int] = await self._authorize(keys=keys, args=args)
        return reply

    async def set_chip_metrics(self, key: str, path: str, metrics: bytes, empty: bytes) -> bytes:
        """Write one chip's entry of the analytics document (``chip_metrics.lua``)."""
        reply: bytes = await self._chip_metrics(keys=[key], args=[path, metrics, empty])
        return reply
