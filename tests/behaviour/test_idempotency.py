"""Idempotency-Key's commits (keyspace.idempotency, commit.lua ``claimed`` and ``outcome``):
the outcome is written by the commit that writes the document, and only while the claim is
the request's own; fakeredis and the real server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import pytest

from keyspace import USER, Keyspace
from keyspace import idempotency as idem
from keyspace.plan import Plan
from tests import factories as f
from tests.behaviour.test_upsert import SPEC as UPSERTED
from tests.behaviour.test_upsert import SYSTEM as UPSERTS
from tests.behaviour.test_upsert import A
from tests.conftest import BACKENDS, client_for

FP = "f" * 64


@pytest.fixture(params=BACKENDS)
async def uks(request: pytest.FixtureRequest) -> AsyncIterator[Keyspace]:
    """A keyspace of tests/behaviour/test_upsert.py's system (an entity declaring upsert)."""
    backend: str = request.param
    client = await client_for(request, backend)
    keyspace = Keyspace(
        client, UPSERTS.schema, use_search=None if backend != "real-scan" else False
    )
    await keyspace.setup()
    yield keyspace
    await client.aclose()


async def _claimed(ks: Keyspace, status: int | None, fp: str = FP) -> idem.Claim:
    key = ks.schema.names.idempotency_key("user_9", idem.key_digest("k-1"))
    held = await idem.claim(ks.client, key, fp, status=status, pending_ms=60_000, done_ms=90_000)
    assert isinstance(held, idem.Claim)
    return held


@contextmanager
def holding(claim: idem.Claim) -> Iterator[None]:
    token = idem.current.set(claim)
    try:
        yield
    finally:
        idem.current.reset(token)


async def _record(ks: Keyspace, claim: idem.Claim) -> idem.Record | None:
    raw = await ks.client.get(claim.key)
    return idem.parse(raw) if raw is not None else None


async def test_a_create_stores_its_outcome_with_the_drawn_id_in_the_same_commit(
    ks: Keyspace,
) -> None:
    owner = (await f.user(ks, "Owner")).doc["user_id"]
    claim = await _claimed(ks, 201)
    with holding(claim):
        created = await f.driver(ks, owner)
    assert claim.committed
    record = await _record(ks, claim)
    assert record == idem.Record("done", FP, 201, "doc", created.raw)
    assert created.doc["driver_id"] == "driver_1"
    assert 60_000 < await ks.client.pttl(claim.key) <= 90_000


async def test_a_second_claim_meets_the_request_in_flight_then_its_outcome(
    ks: Keyspace,
) -> None:
    claim = await _claimed(ks, 201)
    again = await idem.claim(ks.client, claim.key, FP, status=201, pending_ms=1000, done_ms=1000)
    assert again == idem.Record("pending", FP)
    with holding(claim):
        stored = await f.user(ks, "Ada")
    done = await idem.claim(ks.client, claim.key, "other", status=201, pending_ms=1, done_ms=1)
    assert done == idem.Record("done", FP, 201, "doc", stored.raw)


async def test_a_claim_taken_over_writes_nothing(ks: Keyspace) -> None:
    claim = await _claimed(ks, 201)
    await ks.client.set(claim.key, idem.pending_record(FP, "someone-else"))
    with holding(claim), pytest.raises(idem.KeyInFlight):
        await f.user(ks, "Ada")
    assert not claim.committed
    assert [k async for k in ks.client.scan_iter(match="user:*")] == []
    assert await ks.client.get("user_counter") is None
    assert await _record(ks, claim) == idem.Record("pending", FP)


async def test_a_delete_stores_its_204_once_its_fences_are_down(ks: Keyspace) -> None:
    owner = (await f.user(ks, "Owner")).doc["user_id"]
    await f.driver(ks, owner)
    claim = await _claimed(ks, 204)
    with holding(claim):
        await ks.delete(USER, owner)  # cascades to the driver, behind delete fences
    assert await _record(ks, claim) == idem.Record("done", FP, 204, "none", b"")
    assert [k async for k in ks.client.scan_iter(match="mf:deleting:*")] == []
    assert not await ks.client.exists("driver:driver_1")


async def test_an_upsert_or_update_records_200(ks: Keyspace) -> None:
    owner = (await f.user(ks, "Owner")).doc["user_id"]
    claim = await _claimed(ks, None)
    with holding(claim):
        patched = await ks.patch(USER, owner, {"username": "Renamed"})
    assert await _record(ks, claim) == idem.Record("done", FP, 200, "doc", patched.raw)


async def test_a_refusal_is_stored_and_a_failure_gives_the_key_back(ks: Keyspace) -> None:
    names = ks.schema.names
    claim = await _claimed(ks, 201)
    assert (await ks.commit(idem.settled_plan(names, claim, 409, b'{"e":1}'), durable=False)).ok
    assert await _record(ks, claim) == idem.Record("done", FP, 409, "body", b'{"e":1}')
    # Given back only while it is still the claim: a stored outcome stays.
    refused = await ks.commit(idem.release_plan(names, claim), durable=False)
    assert refused.error == idem.LOST
    assert await ks.client.exists(claim.key)
    await ks.client.delete(claim.key)
    mine = await _claimed(ks, 201)
    assert (await ks.commit(idem.release_plan(names, mine), durable=False)).ok
    assert not await ks.client.exists(mine.key)


async def test_an_outcome_ttl_that_is_no_positive_integer_is_a_bad_plan(ks: Keyspace) -> None:
    key = ks.schema.names.idempotency_key("user_9", "d")
    await ks.client.set(key, idem.pending_record(FP, "t"))
    plan = idem.remember(Plan(ks.schema.names.pause_key()), idem.Claim(key, FP, "t", 200, 0))
    with pytest.raises(RuntimeError, match="malformed plan"):
        await ks.commit(plan)
    assert idem.parse(await ks.client.get(key) or b"") == idem.Record("pending", FP)


async def test_an_upsert_records_201_when_it_creates_and_200_when_it_replaces(
    uks: Keyspace,
) -> None:
    names = uks.schema.names
    first = idem.Claim(names.idempotency_key("u", "1"), FP, "t1", None)
    second = idem.Claim(names.idempotency_key("u", "2"), FP, "t2", None)
    for claim in (first, second):
        await uks.client.set(claim.key, claim.held())
    with holding(first):
        made = await uks.upsert(UPSERTED, A, {"state": "on"})
    with holding(second):
        replaced = await uks.upsert(UPSERTED, A, {"state": "off"})
    assert made.created and not replaced.created
    assert await _record(uks, first) == idem.Record("done", FP, 201, "doc", made.stored.raw)
    assert await _record(uks, second) == idem.Record("done", FP, 200, "doc", replaced.stored.raw)
