"""Asking the sentinels (:mod:`keyspace.sentinel`'s clients), within a bound.

redis-py's Sentinel client asks the sentinels in turn, each through a client with redis-py's
default retries (ten, with backoff): a sentinel that hangs rather than dies (a stopped
process, a stalled host) held a request for about a minute before the next one was asked.
Here each sentinel gets no retry and at most :data:`SENTINEL_TIMEOUT_S` per question, one
discovery (of the primary, or of the replicas) at most the service's Redis timeout, and a
sentinel that did not answer in time is asked after the others, and not at all for three
times that long: with every sentinel hung, a discovery fails at once (MasterNotFoundError, a
connection error: 503 ``redis_unavailable``) rather than waiting again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import Any, TypeVar, cast

from redis.asyncio import Redis
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

# A sentinel answers a question about its state at once; one that takes longer hangs, and
# the next one is asked.
SENTINEL_TIMEOUT_S = 1.0

# How long a sentinel that did not answer is left alone, in discovery budgets: the longest a
# request may take (README: up to three times the Redis timeout, its retries included), so
# that one request, which may discover several times, waits for each hung sentinel once.
ASIDE_BUDGETS = 3

R = TypeVar("R")


class BoundedSentinel(Sentinel):
    """redis-py's Sentinel client, remembering each service's ``down-after-milliseconds``
    from the state it already reads to find the primary, and bounding each discovery.

    redis-py asks the sentinels in turn, each with its client's retries; here one discovery
    takes at most ``budget`` seconds (the service's Redis timeout), a sentinel that did not
    answer in time is asked after the others and not at all for :data:`ASIDE_BUDGETS`
    budgets, and with every sentinel set aside a discovery fails at once
    (MasterNotFoundError: 503)."""

    def __init__(self, *args: Any, budget: float = 5.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self.down_after_s: dict[str, float] = {}
        self.budget = budget
        self._aside_until: dict[int, float] = {}  # id(sentinel client): when to ask again

    def check_master_state(self, state: dict[str, Any], service_name: str) -> bool:
        usable: bool = super().check_master_state(state, service_name)
        if usable and "down-after-milliseconds" in state:
            self.down_after_s[service_name] = int(state["down-after-milliseconds"]) / 1000
        return usable

    async def _first(
        self, ask: Callable[[Redis], Awaitable[Any]], accept: Callable[[Any], R | None]
    ) -> tuple[R | None, list[str]]:
        """The first sentinel answer ``accept`` makes something of, asking the sentinels in
        turn within the budget (set-aside ones skipped), and what the others did instead."""
        errors: list[str] = []
        now = monotonic()
        deadline = now + self.budget
        for sentinel in list(self.sentinels):  # a copy: other questions reorder it
            if self._aside_until.get(id(sentinel), 0.0) > now:
                errors.append(f"{_address(sentinel)}: no answer lately")
                continue
            left = deadline - monotonic()
            if left <= 0:
                errors.append(f"{_address(sentinel)}: not asked ({self.budget:g}s spent)")
                continue
            try:
                async with asyncio.timeout(left):
                    answer = await ask(sentinel)
            except (RedisConnectionError, RedisTimeoutError, TimeoutError, ResponseError) as exc:
                errors.append(f"{_address(sentinel)}: {exc!r}")
                if isinstance(exc, RedisTimeoutError | TimeoutError):  # hung: set aside
                    self._aside_until[id(sentinel)] = monotonic() + ASIDE_BUDGETS * self.budget
                    self._move(sentinel, first=False)
                continue
            self._aside_until.pop(id(sentinel), None)
            if (found := accept(answer)) is not None:
                self._move(sentinel, first=True)
                return found, errors
        return None, errors

    def _move(self, sentinel: Redis, *, first: bool) -> None:
        if sentinel in self.sentinels:
            self.sentinels.remove(sentinel)
            self.sentinels.insert(0 if first else len(self.sentinels), sentinel)

    async def discover_master(self, service_name: str) -> tuple[str, int]:
        def primary(masters: dict[str, Any]) -> tuple[str, int] | None:
            state = masters.get(service_name)
            if not state or not self.check_master_state(state, service_name):
                return None
            ip = self._force_master_ip if self._force_master_ip is not None else state["ip"]
            return ip, state["port"]

        found, errors = await self._first(lambda s: s.sentinel_masters(), primary)
        if found is None:
            raise MasterNotFoundError(f"No master found for {service_name!r}: {'; '.join(errors)}")
        return found

    async def discover_slaves(self, service_name: str) -> list[tuple[str, int]]:
        def up(replicas: list[dict[str, Any]]) -> list[tuple[str, int]] | None:
            return cast(list[tuple[str, int]], list(self.filter_slaves(replicas))) or None

        found, _ = await self._first(lambda s: s.sentinel_slaves(service_name), up)
        return found or []


def _address(sentinel: Redis) -> str:
    options = sentinel.connection_pool.connection_kwargs
    return f"{options.get('host')}:{options.get('port')}"
