"""Pure reads whose replica cannot be reached are answered by the primary (keyspace.replica):
never a 503 for a replica that is down while the primary serves; readiness names the
replica's state and stays ready; the replica is asked again once it answers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import fakeredis
import pytest

from keyspace import USER, Keyspace, Query, connect, replica
from keyspace.server import free_port
from keyspace.viewing import by_unique

from ..factories import user


@pytest.fixture
async def ks() -> AsyncIterator[Keyspace]:
    primary = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), protocol=2)
    # Nobody listens there: every connection is refused, as to a killed replica.
    dead = connect(f"redis://127.0.0.1:{free_port()}/0", timeout=1.0)
    keyspace = Keyspace(primary, reader=dead)
    await keyspace.setup()
    yield keyspace
    await primary.aclose()
    await dead.aclose()


async def test_reads_fall_back_to_the_primary_and_are_counted(ks: Keyspace) -> None:
    made = await user(ks, "Ada")
    assert ks.replica.client() is ks.reader  # nothing failed yet: reads go to the replica

    assert (await ks.read(USER, made.doc["user_id"])).doc == made.doc
    assert ks.replica.fallbacks == 1
    assert ks.replica.client() is ks.client  # left alone for a while: no failed attempt each
    page = await ks.list(USER, Query())
    assert [d["user_id"] for d in page.items] == [made.doc["user_id"]]
    assert (await by_unique(ks, USER, "username", "ada")).doc["user_id"] == made.doc["user_id"]
    assert ks.replica.fallbacks == 3


async def test_the_replica_is_tried_again_after_the_retry_period(
    ks: Keyspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = await user(ks, "Ada")
    await ks.read(USER, made.doc["user_id"])
    assert ks.replica.client() is ks.client
    later = time.monotonic() + replica.RETRY_SECONDS + 0.1
    monkeypatch.setattr(time, "monotonic", lambda: later)  # the module's, patched here
    assert ks.replica.client() is ks.reader


async def test_readiness_names_the_replica_and_stays_ready(ks: Keyspace) -> None:
    report = await ks.readiness()
    assert report["ready"] is True
    assert report["replica"] == "unreachable"
    assert ks.replica.client() is ks.client


async def test_fresh_reads_and_a_keyspace_without_replica_are_not_fallbacks() -> None:
    primary = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), protocol=2)
    try:
        alone = Keyspace(primary)
        await alone.setup()
        made = await user(alone, "Ada")
        await alone.read(USER, made.doc["user_id"])
        await alone.list(USER, Query(), fresh=True)
        assert alone.replica.fallbacks == 0
        assert "replica" not in await alone.readiness()
    finally:
        await primary.aclose()


@pytest.fixture
async def on_primary(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Keyspace]:
    """A reader whose server is a primary (a replica promoted while connected, or a replica
    URL naming a primary): another client of the primary's own server."""
    server = fakeredis.FakeServer()
    primary = fakeredis.FakeAsyncRedis(server=server, protocol=2)
    reader = fakeredis.FakeAsyncRedis(server=server, protocol=2)

    async def info(section: str) -> dict[str, str]:
        return {"role": "master"}  # fakeredis has no INFO: what a primary answers

    monkeypatch.setattr(reader, "info", info)
    keyspace = Keyspace(primary, reader=reader)
    await keyspace.setup()
    yield keyspace
    await primary.aclose()
    await reader.aclose()


async def test_a_reader_on_a_primary_is_reported_and_its_reads_counted(
    on_primary: Keyspace,
) -> None:
    made = await user(on_primary, "Ada")
    report = await on_primary.readiness()
    assert report["ready"] is True
    assert report["replica"] == "primary"
    assert on_primary.replica.client() is on_primary.client  # the primary, counted
    page = await on_primary.list(USER, Query())
    assert [d["user_id"] for d in page.items] == [made.doc["user_id"]]
    assert on_primary.replica.fallbacks == 1


async def test_a_reader_without_info_that_answers_is_ok(
    on_primary: Keyspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.undo()  # fakeredis refuses INFO: unknown, and PING answers
    assert (await on_primary.readiness())["replica"] == "ok"
    assert on_primary.replica.client() is on_primary.reader
