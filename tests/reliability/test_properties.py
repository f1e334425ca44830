"""Scenario 7 (data layer): Hypothesis runs random sequences of creates, updates, membership
changes, token mints and deletes across users, drivers, collabs, processes, NFTs and quests,
with colliding unique values, NFT pairs that derive one id, references to missing users,
forbidden transitions, stale revisions and cascading deletes. After every step:

- the stored documents are exactly those of a small model that predicts each outcome
  (which call succeeds, which error a refused one raises, what a cascade deletes and pulls),
  so a refused write provably wrote nothing;
- every token hash belongs to an existing user and carries that user's current role;
- ``scripts/inspection.py inspect`` finds nothing: unique claims, reference sets, counters and
  (on the real server) index counts all agree with the documents.

It runs on fakeredis (the scan path) and on the embedded server (RediSearch). Hypothesis'
stateful machines are synchronous, so each machine drives the async keyspace through an
event loop of its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import fakeredis
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from redis.asyncio import Redis

from keyspace import (
    COLLAB,
    DRIVER,
    NFT,
    PROCESS,
    QUEST,
    USER,
    AlreadyExists,
    EntitySpec,
    IdCollision,
    InvalidTransition,
    Keyspace,
    KeyspaceError,
    MissingReference,
    NotFound,
    StaleRevision,
    UniqueConflict,
    codec,
    connect,
    keys,
    parse,
)
from keyspace.connection import call
from keyspace.server import EmbeddedRedis
from keyspace.tokens import token_hash
from scripts.inspection import inspect
from tests import factories as f

from .conftest import Figures

T = TypeVar("T")

NAMES = ("ann", "bob", "cid", "dee", "eve", "fay")  # few, so that unique values collide often
GHOST = "user_ghost"  # an id no rule ever creates: references to it must be refused
CHIPS = ("chip_a", "chip_b")
OWNED = (DRIVER, COLLAB, PROCESS, NFT, QUEST)
ALL = (USER, *OWNED)
STATUSES = {
    DRIVER.name: ("generated", "optimized"),
    PROCESS.name: ("running", "completed"),
    COLLAB.name: ("active", "completed"),
    QUEST.name: ("active", "completed"),
}
OWNER_ADDRESS = "0x1234567890123456789012345678901234567890"


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


cased = st.sampled_from([str.lower, str.upper, str.title])


@dataclass
class Stats:
    """What the runs did, for the figures line."""

    steps: int = 0
    accepted: int = 0
    refused: int = 0
    cascaded: int = 0
    checks: int = 0


def owned_body(spec: EntitySpec, owner: str, chip_id: str, members: list[str]) -> dict[str, Any]:
    """A valid create body of an owned entity; only the references vary."""
    if spec is DRIVER:
        return {"user_id": owner, "chip_id": chip_id, "chip_data": f.chip(8), "version": "1.0"}
    if spec is COLLAB:
        return {
            "user_id": owner,
            "chip_id": chip_id,
            "chip_data": f.chip(),
            "collaborators": members,
        }
    if spec is PROCESS:
        return {"user_id": owner, "chip_data": f.chip()}
    if spec is NFT:
        return {"user_id": owner, "chip_id": chip_id, "owner": OWNER_ADDRESS}
    return {"user_id": owner, "title": "Quest", "reward": "nft_x"}


class KeyspaceMachine(RuleBasedStateMachine):
    """One example: a fresh keyspace and a model of what it must hold."""

    # Bound per backend by ``run_machines`` below.
    loop: ClassVar[asyncio.AbstractEventLoop]
    new_client: ClassVar[Callable[[], Awaitable[Redis]]]
    stats: ClassVar[Stats]

    def __init__(self) -> None:
        super().__init__()
        self.client: Redis = self.wait(type(self).new_client())
        self.ks = Keyspace(self.client)
        self.wait(self.ks.setup())
        self.docs: dict[str, dict[str, dict[str, Any]]] = {spec.prefix: {} for spec in ALL}
        self.tokens: dict[str, str] = {}  # token hash -> user id

    def wait(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.wait(self.client.aclose())

    # model helpers -------------------------------------------------------------------------

    def ids(self, spec: EntitySpec) -> list[str]:
        return sorted(self.docs[spec.prefix])

    def users(self) -> list[str]:
        return self.ids(USER)

    def pick(self, data: st.DataObject, spec: EntitySpec, label: str) -> str:
        """An existing id of ``spec``, or now and then one that does not exist."""
        ids = self.ids(spec)
        existing = data.draw(st.integers(0, 5), label=f"existing {spec.name}") > 0
        if ids and existing:
            return data.draw(st.sampled_from(ids), label=label)
        return f"{spec.prefix}_missing"

    def holder(self, field: str, value: str, other_than: str | None = None) -> bool:
        """Does any user other than ``other_than`` hold ``value`` (case-insensitively)?"""
        return any(
            doc[field].casefold() == value.casefold()
            for uid, doc in self.docs[USER.prefix].items()
            if uid != other_than
        )

    def attempt(self, expected: set[type[KeyspaceError]], coro: Awaitable[T]) -> T | None:
        """Run a keyspace call that must succeed when ``expected`` is empty, else raise
        exactly one of ``expected``."""
        self.stats.steps += 1
        refused: KeyspaceError | None = None
        try:
            result = self.wait(coro)
        except KeyspaceError as exc:
            refused = exc
        if refused is not None:
            assert type(refused) in expected, f"unexpected {type(refused).__name__}: {refused}"
            self.stats.refused += 1
            return None
        assert not expected, f"succeeded, but expected one of {expected}"
        self.stats.accepted += 1
        return result

    def store(self, spec: EntitySpec, doc: dict[str, Any]) -> None:
        self.docs[spec.prefix][doc[spec.id_field]] = doc

    # rules ---------------------------------------------------------------------------------

    @initialize(data=st.data())
    def populate(self, data: st.DataObject) -> None:
        """Start from a few users owning a few documents, so that updates, memberships and
        cascades have something to work on from the first step."""
        for name in NAMES[:3]:
            self.create_user(name, name, str.lower, str.lower, "designer", None)
        for spec in data.draw(st.lists(st.sampled_from(OWNED), max_size=8), label="owned"):
            self.create_owned(data, spec, data.draw(st.sampled_from(CHIPS), label="chip"))

    @rule(
        name=st.sampled_from(NAMES),
        mail=st.sampled_from(NAMES),
        name_case=cased,
        mail_case=cased,
        role=st.sampled_from(["admin", "designer", "engineer"]),
        # user_1_chip: its NFT of chip "a" and user_1's of chip_a share an id
        explicit=st.none() | st.integers(1, 6).map(lambda n: f"user_{n}") | st.just("user_1_chip"),
    )
    def create_user(
        self, name: str, mail: str, name_case: Any, mail_case: Any, role: str, explicit: str | None
    ) -> None:
        body = {
            "username": name_case(name),
            "email": mail_case(f"{mail}@example.com"),
            "role": role,
        }
        expected: set[type[KeyspaceError]] = set()
        if self.holder("username", body["username"]) or self.holder("email", body["email"]):
            expected.add(UniqueConflict)
        if explicit is not None:
            body["user_id"] = explicit
            if explicit in self.docs[USER.prefix]:
                expected.add(AlreadyExists)
        stored = self.attempt(expected, self.ks.create(USER, body))
        if stored is not None:
            assert stored.doc["user_id"] not in self.docs[USER.prefix], "overwrote a user"
            assert explicit in (None, stored.doc["user_id"])
            assert {k: stored.doc[k] for k in ("username", "email", "role")} == {
                k: body[k] for k in ("username", "email", "role")
            }
            self.store(USER, stored.doc)

    @rule(data=st.data(), spec=st.sampled_from(OWNED), chip_id=st.sampled_from(CHIPS))
    def create_owned(self, data: st.DataObject, spec: EntitySpec, chip_id: str) -> None:
        candidates = [*self.users(), GHOST]
        owner = data.draw(st.sampled_from(candidates), label="owner")
        members = data.draw(
            st.lists(st.sampled_from(candidates), max_size=4, unique=True), label="members"
        )
        self.create(spec, owner, chip_id, members)

    @rule(first=st.booleans())
    def mint_colliding_nft(self, first: bool) -> None:
        """user_1 + chip_a and user_1_chip + a derive one NFT id: the later pair is refused."""
        self.create(NFT, *(("user_1", "chip_a") if first else ("user_1_chip", "a")), [])

    def create(self, spec: EntitySpec, owner: str, chip_id: str, members: list[str]) -> None:
        body = owned_body(spec, owner, chip_id, members)
        expected: set[type[KeyspaceError]] = set()
        referenced = [owner, *(members if spec is COLLAB else [])]
        if any(uid not in self.docs[USER.prefix] for uid in referenced):
            expected.add(MissingReference)
        if spec is NFT and (held := self.docs[NFT.prefix].get(f"nft_{owner}_{chip_id}")):
            same = (held["user_id"], held["chip_id"]) == (owner, chip_id)
            expected.add(AlreadyExists if same else IdCollision)
        stored = self.attempt(expected, self.ks.create(spec, body))
        if stored is not None:
            assert stored.doc[spec.id_field] not in self.docs[spec.prefix]
            assert {k: stored.doc[k] for k in body} == body
            self.store(spec, stored.doc)

    @rule(data=st.data(), spec=st.sampled_from([DRIVER, PROCESS, COLLAB, QUEST]))
    def change_status(self, data: st.DataObject, spec: EntitySpec) -> None:
        doc_id = self.pick(data, spec, "doc")
        status = data.draw(st.sampled_from(STATUSES[spec.name]), label="status")
        old = self.docs[spec.prefix].get(doc_id)
        expected: set[type[KeyspaceError]] = set()
        if old is None:
            expected.add(NotFound)
        elif old["status"] != status and status == STATUSES[spec.name][0]:
            expected.add(InvalidTransition)  # every declared transition is first -> second
        stored = self.attempt(expected, self.ks.patch(spec, doc_id, {"status": status}))
        if stored is not None and old is not None:
            assert stored.doc["status"] == status
            unchanged = set(old) - {"status", *spec.touch_on_update}
            assert {k: stored.doc[k] for k in unchanged} == {k: old[k] for k in unchanged}
            self.store(spec, stored.doc)

    @rule(data=st.data(), spec=st.sampled_from([DRIVER, PROCESS, COLLAB, QUEST]))
    def move_to_another_owner(self, data: st.DataObject, spec: EntitySpec) -> None:
        doc_id = self.pick(data, spec, "doc")
        owner = data.draw(st.sampled_from([*self.users(), GHOST]), label="owner")
        old = self.docs[spec.prefix].get(doc_id)
        expected: set[type[KeyspaceError]] = set()
        if old is None:
            expected.add(NotFound)
        elif owner not in self.docs[USER.prefix]:
            expected.add(MissingReference)
        stored = self.attempt(expected, self.ks.patch(spec, doc_id, {"user_id": owner}))
        if stored is not None:
            assert stored.doc["user_id"] == owner
            self.store(spec, stored.doc)

    @rule(
        data=st.data(),
        name=st.none() | st.sampled_from(NAMES),
        mail=st.none() | st.sampled_from(NAMES),
        case=cased,
        role=st.none() | st.sampled_from(["admin", "designer", "engineer"]),
    )
    def patch_user(
        self, data: st.DataObject, name: str | None, mail: str | None, case: Any, role: str | None
    ) -> None:
        user_id = self.pick(data, USER, "user")
        changes = {
            k: v
            for k, v in (
                ("username", None if name is None else case(name)),
                ("email", None if mail is None else case(f"{mail}@example.com")),
                ("role", role),
            )
            if v is not None
        }
        expected: set[type[KeyspaceError]] = set()
        if user_id not in self.docs[USER.prefix]:
            expected.add(NotFound)
        elif any(
            self.holder(k, changes[k], user_id) for k in ("username", "email") if k in changes
        ):
            expected.add(UniqueConflict)
        stored = self.attempt(expected, self.ks.patch(USER, user_id, changes))
        if stored is not None:
            assert stored.doc == {**self.docs[USER.prefix][user_id], **changes}
            self.store(USER, stored.doc)

    @rule(data=st.data())
    def replace_collaborators(self, data: st.DataObject) -> None:
        collab_id = self.pick(data, COLLAB, "collab")
        members = data.draw(
            st.lists(st.sampled_from([*self.users(), GHOST]), max_size=4, unique=True)
        )
        old = self.docs[COLLAB.prefix].get(collab_id)
        expected: set[type[KeyspaceError]] = set()
        if old is None:
            expected.add(NotFound)
            body: dict[str, Any] = owned_body(COLLAB, GHOST, CHIPS[0], members)
        else:
            body = {k: v for k, v in old.items() if k != "collab_id"} | {"collaborators": members}
            if any(m not in self.docs[USER.prefix] for m in members):
                expected.add(MissingReference)
        stored = self.attempt(expected, self.ks.replace(COLLAB, collab_id, body))
        if stored is not None:
            assert stored.doc["collaborators"] == members
            self.store(COLLAB, stored.doc)

    @rule(data=st.data(), adding=st.booleans())
    def change_membership(self, data: st.DataObject, adding: bool) -> None:
        collab_id = self.pick(data, COLLAB, "collab")
        member = data.draw(st.sampled_from([*self.users(), GHOST]), label="member")
        old = self.docs[COLLAB.prefix].get(collab_id)
        current: list[str] = old["collaborators"] if old is not None else []
        expected: set[type[KeyspaceError]] = set()
        if old is None:
            expected.add(NotFound)
        elif adding and member not in current and member not in self.docs[USER.prefix]:
            expected.add(MissingReference)
        elif not adding and member not in current:
            expected.add(NotFound)
        change = self.ks.add_member if adding else self.ks.remove_member
        stored = self.attempt(expected, change(COLLAB, collab_id, "collaborators", member))
        if stored is not None:
            if adding:
                want = current if member in current else [*current, member]
            else:
                want = [m for m in current if m != member]
            assert stored.doc["collaborators"] == want
            self.store(COLLAB, stored.doc)

    @rule(data=st.data(), spec=st.sampled_from(ALL))
    def write_with_a_stale_revision(self, data: st.DataObject, spec: EntitySpec) -> None:
        doc_id = self.pick(data, spec, "doc")
        missing = doc_id not in self.docs[spec.prefix]
        expected: set[type[KeyspaceError]] = {NotFound if missing else StaleRevision}
        stale = "0" * 24
        if data.draw(st.booleans(), label="delete"):
            self.attempt(expected, self.ks.delete(spec, doc_id, if_revision=stale))
        else:
            self.attempt(expected, self.ks.patch(spec, doc_id, {}, if_revision=stale))

    @rule(data=st.data())
    def mint_token(self, data: st.DataObject) -> None:
        if not self.users():
            return
        user_id = data.draw(st.sampled_from(self.users()), label="user")
        user = self.wait(self.ks.get(USER, user_id))
        minted = self.wait(self.ks.tokens.mint(user_id, user.raw))
        self.tokens[token_hash(minted.token)] = user_id
        self.stats.steps += 1

    @rule(data=st.data())
    def delete_a_user(self, data: st.DataObject) -> None:
        self.delete(data, USER)  # a rule of its own: the cascade is the interesting delete

    @rule(data=st.data(), spec=st.sampled_from(ALL))
    def delete(self, data: st.DataObject, spec: EntitySpec) -> None:
        doc_id = self.pick(data, spec, "doc")
        if doc_id not in self.docs[spec.prefix]:
            self.attempt({NotFound}, self.ks.delete(spec, doc_id))
            return
        gone = {(spec.prefix, doc_id)}
        if spec is USER:  # CASCADE: everything the user owns; PULL: its memberships
            gone |= {
                (o.prefix, i) for o in OWNED for i, d in self.docs[o.prefix].items()
                if d["user_id"] == doc_id
            }  # fmt: skip
        count = self.attempt(set(), self.ks.delete(spec, doc_id))
        assert count == len(gone)
        self.stats.cascaded += len(gone) - 1
        for prefix, gone_id in gone:
            del self.docs[prefix][gone_id]
        if spec is USER:
            for collab in self.docs[COLLAB.prefix].values():
                collab["collaborators"] = [m for m in collab["collaborators"] if m != doc_id]
            self.tokens = {h: uid for h, uid in self.tokens.items() if uid != doc_id}

    @rule(data=st.data(), spec=st.sampled_from(OWNED))
    def list_what_a_user_owns(self, data: st.DataObject, spec: EntitySpec) -> None:
        user_id = self.pick(data, USER, "user")
        page = self.wait(self.ks.list(spec, parse(spec, {"user_id": [user_id], "limit": ["1000"]})))
        want = {i for i, d in self.docs[spec.prefix].items() if d["user_id"] == user_id}
        assert page.total == len(want)
        assert {d[spec.id_field] for d in page.items} == want

    # invariants ----------------------------------------------------------------------------

    @invariant()
    def documents_are_the_model(self) -> None:
        for spec in ALL:
            stored = self.wait(self.stored(spec))
            assert stored == self.docs[spec.prefix], spec.name

    @invariant()
    def tokens_follow_their_users(self) -> None:
        hashes = self.wait(self.token_hashes())
        assert set(hashes) == set(self.tokens)
        for digest, (user_id, role) in hashes.items():
            assert user_id == self.tokens[digest]
            assert role == self.docs[USER.prefix][user_id]["role"]

    @invariant()
    def integrity_checker_is_clean(self) -> None:
        report = self.wait(inspect(self.ks))
        self.stats.checks += 1
        assert report.clean, report.problems

    async def stored(self, spec: EntitySpec) -> dict[str, dict[str, Any]]:
        found = [k async for k in self.client.scan_iter(match=keys.doc_match(spec.prefix))]
        if not found:
            return {}
        raws = await call(self.client, "JSON.MGET", *found, ".")
        return {
            keys.id_from_key(spec.prefix, text(k)): codec.loads(r)
            for k, r in zip(found, raws, strict=True)
        }

    async def token_hashes(self) -> dict[str, tuple[str, str]]:
        out: dict[str, tuple[str, str]] = {}
        async for key in self.client.scan_iter(match=keys.token_key("*")):
            fields = await self.client.hgetall(key)
            digest = text(key).rsplit(":", 1)[1]
            out[digest] = (text(fields[b"user_id"]), text(fields[b"role"]))
        return out


@dataclass(frozen=True)
class Budget:
    name: str
    examples: int  # machines (each on an empty keyspace)
    steps: int  # rules per machine, each followed by every invariant


BUDGETS = [
    pytest.param(Budget("ci", examples=20, steps=25), id="ci"),
    pytest.param(Budget("soak", examples=400, steps=60), id="soak", marks=pytest.mark.soak),
]


def run_machines(
    new_client: Callable[[], Awaitable[Redis]], budget: Budget, figures: Figures, backend: str
) -> None:
    loop = asyncio.new_event_loop()
    stats = Stats()

    class Machine(KeyspaceMachine):
        pass

    Machine.loop, Machine.new_client, Machine.stats = loop, staticmethod(new_client), stats
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
        loop.close()
    figures.record(
        f"keyspace properties ({backend}, {budget.name})",
        machines=budget.examples,
        steps=stats.steps,
        accepted=stats.accepted,
        refused=stats.refused,
        cascaded_deletes=stats.cascaded,
        integrity_checks=stats.checks,
        failures=0,
        seconds=round(time.perf_counter() - started, 1),
    )


@pytest.mark.parametrize("budget", BUDGETS)
def test_any_sequence_of_writes_keeps_fakeredis_consistent(
    figures: Figures, budget: Budget
) -> None:
    async def new_client() -> Redis:
        return fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), protocol=2)

    run_machines(new_client, budget, figures, "fakeredis")


@pytest.mark.redis
@pytest.mark.parametrize("budget", BUDGETS)
def test_any_sequence_of_writes_keeps_the_real_server_consistent(
    redis_server: EmbeddedRedis, figures: Figures, budget: Budget
) -> None:
    async def new_client() -> Redis:
        client = connect(redis_server.url)
        await client.flushall()
        return client

    run_machines(new_client, budget, figures, "redis-search")
