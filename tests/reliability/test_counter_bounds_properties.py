"""Counters near the bounds the service accepts, over HTTP: Hypothesis runs random sequences
of generated creates, explicit-id imports by an admin and by an engineer (numbers around the
counter, the engineer's import window edge, 10^14, 2^53 - 1; leading zeros; huge digit
strings), reads, updates and deletes of drivers, starting from counters anywhere in the range.
A small model predicts every answer, and after every step:

- every generated id is ``driver_<plain decimal>`` one past the counter, and was never issued
  before; it can be read, updated and deleted by id;
- ``driver_counter`` is what the model says, and never behind the highest seed-style id
  stored;
- a counter at 2^53 - 1 answers 409 ``counter_exhausted`` (never 503 ``contention``), and an
  engineer's import past the window 403 ``import-window``, both writing nothing.

It runs against the embedded server and fakeredis; Hypothesis' machines are synchronous, so
the app and its client live on an event loop of the test's own."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import fakeredis
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from redis.asyncio import Redis

from app import create_app
from app.config import Settings
from app.policy import IMPORT_WINDOW
from keyspace import connect, keys
from keyspace.server import EmbeddedRedis

from .conftest import ADMIN_TOKEN, Figures

T = TypeVar("T")
Client = TestClient[web.Request, web.Application]

MAX = keys.MAX_COUNTER
GENERATED = re.compile(r"driver_[1-9][0-9]*")
# Where a machine's counter begins: empty, before 10^14, before the window's reach of the end,
# and at or just before the end.
STARTS = (0, 10**14 - 3, MAX - IMPORT_WINDOW - 2, MAX - 2, MAX)
CHIP = {"type": "quantum_processor", "cores": 8, "frequency": "1GHz", "architecture": "Q"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Stats:
    steps: int = 0
    generated: int = 0
    imported: int = 0
    exhausted: int = 0
    outside_window: int = 0


@dataclass
class Served:
    """One app for every machine of a run, with an admin and an engineer token."""

    api: Client
    redis: Redis
    admin: dict[str, str]
    engineer: dict[str, str]
    engineer_id: str


def seed_number(digits: str) -> int | None:
    """What the model expects ``driver_<digits>`` to move the counter to (None: nothing)."""
    if not digits.isdigit() or digits.startswith("0") or int(digits) > MAX:
        return None
    return int(digits)


class CounterMachine(RuleBasedStateMachine):
    """One example: drivers and driver_counter reset, then random steps against a model."""

    loop: ClassVar[asyncio.AbstractEventLoop]
    served: ClassVar[Served]
    stats: ClassVar[Stats]

    def __init__(self) -> None:
        super().__init__()
        self.counter = 0
        self.docs: set[str] = set()
        self.issued: set[str] = set()
        self.wait(self.reset())

    def wait(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)

    async def reset(self) -> None:
        redis = self.served.redis
        stale = [k async for k in redis.scan_iter(match="driver:*", count=1000)]
        # Drivers are projected (time shadows): a projection left behind takes its id.
        match = keys.projection_key("driver", "*")
        stale += [k async for k in redis.scan_iter(match=match, count=1000)]
        owner = keys.doc_key("user", self.served.engineer_id)
        await redis.delete(*stale, "driver_counter", keys.ref_key(owner, "driver", "user_id"))

    async def request(self, method: str, path: str, who: dict[str, str], **kw: Any) -> Any:
        resp = await self.served.api.request(method, path, headers=who, **kw)
        self.stats.steps += 1
        return resp.status, await resp.json() if resp.content_type == "application/json" else None

    def body(self, driver_id: str | None = None) -> dict[str, Any]:
        doc = {
            "user_id": self.served.engineer_id,
            "chip_id": "c",
            "version": "1",
            "chip_data": CHIP,
        }
        return doc if driver_id is None else {"driver_id": driver_id, **doc}

    def actor(self, admin: bool) -> dict[str, str]:
        return self.served.admin if admin else self.served.engineer

    @initialize(start=st.sampled_from(STARTS))
    def start_counter(self, start: int) -> None:
        """The history before this example: a counter somewhere in its range."""
        if start:
            self.wait(self.served.redis.set("driver_counter", start))
        self.counter = start

    @rule(admin=st.booleans())
    def create_generated(self, admin: bool) -> None:
        status, body = self.wait(
            self.request("POST", "/api/drivers", self.actor(admin), json=self.body())
        )
        if self.counter >= MAX:
            assert status == 409, body
            assert body["error"]["code"] == "counter_exhausted", body
            assert body["error"]["details"] == {"field": "driver_id", "counter": "driver_counter"}
            self.stats.exhausted += 1
            return
        assert status == 201, body
        driver_id = body["driver_id"]
        assert GENERATED.fullmatch(driver_id), driver_id
        assert int(driver_id.removeprefix("driver_")) == self.counter + 1
        assert driver_id not in self.issued and driver_id not in self.docs
        self.counter += 1
        self.issued.add(driver_id)
        self.docs.add(driver_id)
        self.stats.generated += 1

    @rule(
        admin=st.booleans(),
        near=st.sampled_from(["counter", "window", "10^14", "max", "anywhere"]),
        delta=st.integers(-3, 3),
        anywhere=st.integers(1, 2**70),
        form=st.sampled_from(["plain", "plain", "plain", "zeros", "huge"]),
        width=st.integers(1, 121),
    )
    def create_explicit(
        self, admin: bool, near: str, delta: int, anywhere: int, form: str, width: int
    ) -> None:
        n = (
            delta
            + {
                "counter": self.counter,
                "window": self.counter + IMPORT_WINDOW,
                "10^14": 10**14,
                "max": MAX,
                "anywhere": anywhere,
            }[near]
        )
        digits = str(max(n, 0))
        if form == "zeros":
            digits = digits.zfill(min(len(digits) + width, 121))
        elif form == "huge":
            digits = "9" * max(width, 17)  # past 2^53 - 1
        driver_id = f"driver_{digits}"
        status, body = self.wait(
            self.request("POST", "/api/drivers", self.actor(admin), json=self.body(driver_id))
        )
        moves_to = seed_number(digits)
        if driver_id in self.docs:
            assert status == 409 and body["error"]["code"] == "already_exists", body
            return
        if moves_to is not None and not admin and moves_to - self.counter > IMPORT_WINDOW:
            assert status == 403, body
            assert body["error"]["details"]["rule"] == "import-window", body
            highest = f"driver_{self.counter + IMPORT_WINDOW}"
            assert body["error"]["details"]["highest"] == highest, body
            self.stats.outside_window += 1
            return
        assert status == 201, body
        assert body["driver_id"] == driver_id
        self.docs.add(driver_id)
        self.counter = max(self.counter, moves_to or 0)
        self.stats.imported += 1

    @precondition(lambda self: bool(self.docs))
    @rule(data=st.data())
    def read_update_delete(self, data: st.DataObject) -> None:
        driver_id = data.draw(st.sampled_from(sorted(self.docs)), label="driver")
        path = f"/api/drivers/{driver_id}"
        who = self.served.engineer
        status, body = self.wait(self.request("GET", path, who))
        assert status == 200 and body["driver_id"] == driver_id, body
        status, body = self.wait(self.request("PATCH", path, who, json={"version": "2"}))
        assert status == 200 and body["version"] == "2", body
        if data.draw(st.booleans(), label="delete"):
            status, _ = self.wait(self.request("DELETE", path, who))
            assert status == 204
            self.docs.discard(driver_id)

    @invariant()
    def counter_matches_and_is_never_behind(self) -> None:
        redis = self.served.redis
        stored = self.wait(redis.get("driver_counter"))
        assert int(stored or 0) == self.counter
        found = self.wait(self.ids())
        assert found == self.docs
        seeded = [n for n in (seed_number(i.removeprefix("driver_")) for i in found) if n]
        assert max(seeded, default=0) <= self.counter

    async def ids(self) -> set[str]:
        return {
            keys.id_from_key("driver", k.decode())
            async for k in self.served.redis.scan_iter(match="driver:*", count=1000)
        }


@dataclass(frozen=True)
class Budget:
    name: str
    examples: int
    steps: int


BUDGETS = [
    pytest.param(Budget("ci", examples=30, steps=20), id="ci"),
    pytest.param(Budget("soak", examples=300, steps=50), id="soak", marks=pytest.mark.soak),
]


async def _serve(redis: Redis) -> Served:
    app_settings = Settings(admin_token=ADMIN_TOKEN, read_per_minute=10**6, write_per_minute=10**6)
    api: Client = TestClient(TestServer(create_app(app_settings, client=redis)))
    await api.start_server()
    admin = bearer(ADMIN_TOKEN)
    resp = await api.post(
        "/api/users",
        headers=admin,
        json={"username": "Eve", "email": "eve@example.com", "role": "engineer"},
    )
    assert resp.status == 201, await resp.text()
    engineer_id = (await resp.json())["user_id"]
    resp = await api.post(f"/api/users/{engineer_id}/tokens", headers=admin, json={})
    assert resp.status == 201, await resp.text()
    token = (await resp.json())["token"]
    return Served(api, redis, admin, bearer(token), engineer_id)


def run_machines(
    new_client: Callable[[], Awaitable[Redis]], budget: Budget, figures: Figures, backend: str
) -> None:
    loop = asyncio.new_event_loop()
    stats = Stats()
    served = loop.run_until_complete(_serve(loop.run_until_complete(new_client())))

    class Machine(CounterMachine):
        pass

    Machine.loop, Machine.served, Machine.stats = loop, served, stats
    started = time.perf_counter()
    try:
        run_state_machine_as_test(
            Machine,
            settings=settings(
                max_examples=budget.examples,
                stateful_step_count=budget.steps,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
    finally:
        loop.run_until_complete(served.api.close())
        loop.run_until_complete(served.redis.aclose())
        loop.close()
    figures.record(
        f"counter bounds ({backend}, {budget.name})",
        machines=budget.examples,
        requests=stats.steps,
        generated=stats.generated,
        imported=stats.imported,
        exhausted=stats.exhausted,
        outside_window=stats.outside_window,
        seconds=round(time.perf_counter() - started, 1),
    )


@pytest.mark.parametrize("budget", BUDGETS)
def test_counters_near_their_bounds_on_fakeredis(figures: Figures, budget: Budget) -> None:
    async def new_client() -> Redis:
        return fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), protocol=2)

    run_machines(new_client, budget, figures, "fakeredis")


@pytest.mark.redis
@pytest.mark.parametrize("budget", BUDGETS)
def test_counters_near_their_bounds_on_the_real_server(
    redis_server: EmbeddedRedis, figures: Figures, budget: Budget
) -> None:
    async def new_client() -> Redis:
        client = connect(redis_server.url)
        await client.flushall()
        return client

    run_machines(new_client, budget, figures, "redis")
