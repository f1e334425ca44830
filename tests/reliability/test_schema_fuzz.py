"""Scenario 7: schemathesis against the served /openapi.json. Every operation, as the admin,
with schema-valid (positive) and schema-violating (negative) inputs, plus a few without a
token: never a 5xx, and every response conforms to the document (status code listed, body
valid against the response schema, content type, headers). Afterwards the keyspace passes
the integrity checker, so thousands of accepted and refused writes left nothing behind.

Schemathesis sends requests with ``requests`` (blocking), so the generated tests run in a
worker thread while the event loop of the test serves the app."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, timedelta, timezone
from typing import Any

import hypothesis.errors
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from keyspace import COLLAB, DRIVER, NFT, PROCESS, QUEST, USER, Keyspace, KeyspaceError, connect
from keyspace.server import EmbeddedRedis
from keyspace.tokens import TokenKind
from scripts.inspection import inspect
from tests import factories as f

from .conftest import AUTH, Figures
from .serving import served

pytestmark = pytest.mark.redis

Operation = Any  # schemathesis.APIOperation[...]: its type parameters are internal
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# aiohttp's HTTP parser refuses a request line or header field over 8190 bytes before the app
# sees it: app/server.py answers that 400 in the error format and closes the connection.
PARSER_LIMIT = 8190

SEED_USERS = ("user_1", "user_2", "user_3")
SEEDED: dict[str, tuple[str, ...]] = {
    "users": SEED_USERS,
    "drivers": ("driver_1", "driver_2"),
    "collabs": ("collab_1",),
    "processes": ("process_1",),
    "nfts": ("nft_user_1_chip_seed_1",),
    "quests": ("quest_1",),
}
CHIPS = ("chip_quantum_1", "chip_seed_1")
TIME_FIELDS = {"created_at", "timestamp"}
OFFSETS = [None, UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=14))]
ISO_TIMES = st.builds(
    lambda moment, spec: moment.isoformat(timespec=spec),
    st.datetimes(timezones=st.sampled_from(OFFSETS)),
    st.sampled_from(["auto", "seconds", "milliseconds"]),
)


@dataclass(frozen=True)
class Budget:
    """Generated cases per operation: schema-valid, schema-violating, and without a token."""

    name: str
    positive: int
    negative: int
    anonymous: int


async def seed(ks: Keyspace) -> None:
    """Recreate whatever of the seed documents is missing (the fuzzer deletes and edits them),
    so that path parameters and references can name existing documents."""
    user_docs = [
        {"user_id": uid, "username": f"seed{uid}", "email": f"{uid}@seed.example", "role": role}
        for uid, role in zip(SEED_USERS, ("designer", "engineer", "admin"), strict=True)
    ]
    docs = [
        *((USER, doc) for doc in user_docs),
        (DRIVER, {"driver_id": "driver_1", "user_id": "user_1", "chip_id": CHIPS[1],
                  "chip_data": f.chip(64), "version": "1.0"}),
        (DRIVER, {"driver_id": "driver_2", "user_id": "user_2", "chip_id": CHIPS[0],
                  "chip_data": f.chip(8), "version": "2.0", "status": "optimized"}),
        (COLLAB, {"collab_id": "collab_1", "user_id": "user_1", "chip_id": CHIPS[1],
                  "chip_data": f.chip(), "collaborators": ["user_2", "user_3"]}),
        (PROCESS, {"process_id": "process_1", "user_id": "user_2", "chip_data": f.chip()}),
        (NFT, {"user_id": "user_1", "chip_id": CHIPS[1],
               "owner": "0x1234567890123456789012345678901234567890"}),
        (QUEST, {"quest_id": "quest_1", "user_id": "user_3", "title": "Seed quest",
                 "reward": "nft_seed"}),
    ]  # fmt: skip
    for spec, doc in docs:
        # present already, or blocked by what the fuzzer wrote: fewer hits, no harm
        with contextlib.suppress(KeyspaceError):
            await ks.create(spec, doc)


async def fresh_token(ks: Keyspace) -> str | None:
    """A new API key of the first seed user there is (the fuzzer may have deleted some)."""
    for user_id in SEED_USERS:
        with contextlib.suppress(KeyspaceError):
            user = await ks.get(USER, user_id)
            return (await ks.tokens.mint(user_id, user.raw, TokenKind.API_KEY)).token
    return None


def path_choices(operation: Operation) -> dict[str, tuple[str, ...]]:
    """Existing ids each path parameter of ``operation`` may be given instead of a random one."""
    parts = operation.path.strip("/").split("/")
    out: dict[str, tuple[str, ...]] = {}
    if operation.path.startswith("/api/analytics/metrics/"):
        out["chip_id"] = CHIPS
    elif len(parts) >= 3 and parts[0] == "api" and parts[2] == "{id}":
        out["id"] = SEEDED.get(parts[1], ())
    if "{user_id}" in operation.path:
        out["user_id"] = SEED_USERS
    return {name: ids for name, ids in out.items() if ids}


def over_parser_limits(request: requests.PreparedRequest) -> bool:
    if len((request.path_url or "").encode()) > PARSER_LIMIT:
        return True
    return any(len(str(v).encode()) > PARSER_LIMIT for v in request.headers.values())


@dataclass
class Fuzz:
    """Runs every operation's generated tests (in a worker thread) and collects the outcome."""

    schema: Any
    base_url: str
    ks: Keyspace
    loop: asyncio.AbstractEventLoop
    budget: Budget
    statuses: Counter[int] = field(default_factory=Counter)
    modes: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    over_limits: int = 0
    labels: set[str] = field(default_factory=set)
    succeeded: set[str] = field(default_factory=set)  # operations with at least one 2xx

    def wait(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on the serving loop (the keyspace's client belongs to it)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def run(self) -> None:
        with requests.Session() as session:
            for result in self.schema.get_all_operations():
                operation = result.ok()
                self.labels.add(operation.label)
                self.wait(seed(self.ks))
                self.one(session, operation, GenerationMode.POSITIVE, self.budget.positive)
                if len(operation.body) or len(operation.query):  # else nothing to violate
                    self.one(session, operation, GenerationMode.NEGATIVE, self.budget.negative)
                if operation.path.startswith("/api/"):
                    self.one(session, operation, "anonymous", self.budget.anonymous)

    def one(
        self,
        session: requests.Session,
        operation: Operation,
        mode: GenerationMode | str,
        examples: int,
    ) -> None:
        generation = mode if isinstance(mode, GenerationMode) else GenerationMode.POSITIVE
        choices = path_choices(operation)
        revoking = operation.path == "/api/tokens/current"

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            print_blob=True,
        )
        @given(case=operation.as_strategy(generation_mode=generation), data=st.data())
        def test(case: Any, data: st.DataObject) -> None:
            for name, ids in choices.items():
                if data.draw(st.booleans(), label=f"existing {name}"):
                    case.path_parameters[name] = data.draw(st.sampled_from(ids), label=name)
            body = case.body if isinstance(case.body, dict) else {}
            if "user_id" in body and data.draw(st.booleans(), label="existing user_id"):
                body["user_id"] = data.draw(st.sampled_from(SEED_USERS), label="user_id")
            for name in TIME_FIELDS & body.keys():  # random text is hardly ever an ISO time
                if data.draw(st.booleans(), label=f"iso {name}"):
                    body[name] = data.draw(ISO_TIMES, label=name)
            if "collaborators" in body and data.draw(st.booleans(), label="existing members"):
                members = st.lists(st.sampled_from(SEED_USERS), max_size=3)
                body["collaborators"] = data.draw(members, label="collaborators")
            headers = dict(AUTH)
            if revoking:  # the operator's token cannot be revoked (403): revoke a fresh one
                token = self.wait(fresh_token(self.ks))
                headers = {"Authorization": f"Bearer {token}"} if token else headers
            if mode == "anonymous":
                headers = {}
            response = case.call(base_url=self.base_url, session=session, headers=headers)
            self.statuses[response.status_code] += 1
            if response.status_code < 300:
                self.succeeded.add(operation.label)
            self.modes[str(getattr(mode, "value", mode))] += 1
            if over_parser_limits(response.request):
                self.over_limits += 1
                assert response.status_code == 400, response.status_code
                assert response.json()["error"]["code"] == "bad_request"
                return
            if mode == "anonymous":
                assert response.status_code == 401, response.status_code
            case.validate_response(response, checks=CHECKS, headers=headers)

        try:
            test()
        except hypothesis.errors.Unsatisfiable:
            pass  # e.g. no query value the schema forbids can be sent: nothing to test
        except (Exception, BaseExceptionGroup) as exc:  # FailureGroup is a BaseExceptionGroup
            notes = "\n".join(getattr(exc, "__notes__", []))
            self.failures.append(f"{operation.label} [{mode}]: {exc}\n{notes}")


BUDGETS = [
    pytest.param(Budget("ci", positive=16, negative=8, anonymous=2), id="ci"),
    pytest.param(Budget("soak", 400, 200, 20), id="soak", marks=pytest.mark.soak),
]


@pytest.mark.parametrize("budget", BUDGETS)
async def test_every_operation_conforms_to_its_schema(
    redis_server: EmbeddedRedis, figures: Figures, budget: Budget
) -> None:
    started = time.perf_counter()
    client = connect(redis_server.url)
    await client.flushall()
    await client.aclose()
    async with served(redis_server.url) as live:
        schema = await asyncio.to_thread(schemathesis.openapi.from_url, live.url("/openapi.json"))
        fuzz = Fuzz(schema, live.url(), live.keyspace, asyncio.get_running_loop(), budget)
        await asyncio.to_thread(fuzz.run)
        report = await inspect(live.keyspace)
    cases = sum(fuzz.statuses.values())
    classes = Counter(f"{status // 100}xx" for status in fuzz.statuses.elements())
    figures.record(
        f"schema fuzz ({budget.name})",
        operations=len(fuzz.labels),
        operations_with_2xx=len(fuzz.succeeded),
        cases=cases,
        **dict(sorted(fuzz.modes.items())),
        **dict(sorted(classes.items())),
        over_parser_limits=fuzz.over_limits,
        documents_after=report.documents,
        failures=len(fuzz.failures),
        seconds=round(time.perf_counter() - started, 1),
    )
    assert not fuzz.failures, "\n\n".join(fuzz.failures)
    assert not any(status >= 500 for status in fuzz.statuses)
    documented = {f"{m.upper()} {p}" for p, ops in schema.raw_schema["paths"].items() for m in ops}
    # schemathesis leaves out the document it was loaded from (that GET did happen)
    assert fuzz.labels == documented - {"GET /openapi.json"}
    assert classes["2xx"] > cases // 20, "the fuzzer hardly ever got past validation"
    assert report.clean, report.problems
