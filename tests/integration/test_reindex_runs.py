"""reindex one run at a time, never leaving a half-built index behind; check reports (and
--repair drops) such strays, and tells an index still building from a problem."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from app import startup
from app.startup import IndexWork
from keyspace import USER, Keyspace, keys, search, upgrade
from keyspace.connection import call
from keyspace.server import EmbeddedRedis
from scripts import check as check_module
from scripts.cli import run_cli
from scripts.exits import BUSY, NOT_READY, OK, PROBLEMS

pytestmark = pytest.mark.redis


async def cli(server: EmbeddedRedis, *argv: str) -> int:
    return await run_cli(["--redis-url", server.url, *argv])


async def ours(client: Redis) -> set[str]:
    """Every index of this service's naming scheme."""
    names = await search.list_indexes(client)
    return {n for spec in Keyspace(client).schema.entities for n in search.versions(spec, names)}


async def aliased(client: Redis) -> set[str]:
    ks = Keyspace(client)
    return {t for spec in ks.schema.entities if (t := await search.alias_target(client, spec))}


async def test_reindex_runs_one_at_a_time_and_again_right_after(
    redis_server: EmbeddedRedis, real_client: Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli(redis_server, "generate", "--users", "600", "--seed", "3") == OK
    first = asyncio.create_task(cli(redis_server, "reindex"))
    while not await real_client.exists(keys.lock_key("reindex")) and not first.done():  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    second = await cli(redis_server, "reindex")
    assert (await first, second) == (OK, BUSY)
    err = capsys.readouterr().err
    assert "another reindex is running" in err
    assert not await real_client.exists(keys.lock_key("reindex"))
    assert await cli(redis_server, "reindex") == OK  # at once again: a fresh name
    assert await cli(redis_server, "reindex") == OK
    assert await ours(real_client) == await aliased(real_client)


async def test_ctrl_c_mid_reindex_drops_the_unfinished_index(
    redis_server: EmbeddedRedis, real_client: Redis
) -> None:
    assert await cli(redis_server, "generate", "--users", "3000", "--seed", "4") == OK
    live = await aliased(real_client)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "scripts", "--redis-url", redis_server.url, "reindex",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        while not (await ours(real_client)) - live:  # a rebuild has begun
            assert proc.returncode is None
            await asyncio.sleep(0.002)
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 130, err.decode()[-2000:]
    assert b"Traceback" not in err
    assert await ours(real_client) == await aliased(real_client)  # no stray left indexing
    assert not await real_client.exists(keys.lock_key("reindex"))
    assert await cli(redis_server, "check") == OK


async def test_check_reports_and_repairs_a_stray_index_but_not_a_running_rebuild(
    redis_server: EmbeddedRedis, real_client: Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    ks = Keyspace(real_client)
    await ks.setup()
    stray = f"{search.current_name(USER)}.1700000000"
    await search.rebuild(real_client, USER, stray)  # what an interrupted old reindex left
    await call(real_client, "FT.CREATE", "someone-elses", "ON", "JSON", "SCHEMA", "$.a", "TAG")
    await real_client.set(keys.lock_key("reindex"), "a running reindex")
    assert await cli(redis_server, "check") == OK  # it may be that run's rebuild
    await real_client.delete(keys.lock_key("reindex"))
    capsys.readouterr()
    assert await cli(redis_server, "check") == PROBLEMS
    assert f"{stray}: no alias points at it" in capsys.readouterr().out
    assert await cli(redis_server, "check", "--repair") == OK
    assert stray not in await search.list_indexes(real_client)
    assert "someone-elses" in await search.list_indexes(real_client)  # not ours: left alone


async def test_check_waits_for_building_indexes_or_says_not_yet_checkable(
    redis_server: EmbeddedRedis,
    real_client: Redis,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ks = Keyspace(real_client)
    await ks.setup()
    real = search.is_building
    until = [float("inf")]

    def building(info: Any) -> bool:  # as right after a server start: RediSearch rebuilds
        return asyncio.get_running_loop().time() < until[0] or real(info)

    monkeypatch.setattr(search, "is_building", building)
    assert await cli(redis_server, "check", "--wait", "0") == NOT_READY
    out = capsys.readouterr()
    assert "not yet checkable" in out.out and "Traceback" not in out.err
    assert await cli(redis_server, "check", "--wait", "0.5") == NOT_READY
    assert "waiting for indexes to build" in capsys.readouterr().err

    until[0] = asyncio.get_running_loop().time() + 1.0
    assert await cli(redis_server, "check") == OK  # waited (default --wait), then checked
    out = capsys.readouterr()
    assert "waiting for indexes to build" in out.err
    assert "clean" in out.out
    assert check_module.WAIT_S >= 60


async def test_an_index_a_first_start_or_an_upgrade_is_building_is_not_yet_checkable(
    redis_server: EmbeddedRedis,
    real_client: Redis,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ks = Keyspace(real_client)
    await ks.setup()
    alias, current = USER.names.index_alias(USER.prefix), search.current_name(USER)
    real = search.is_building
    still = [True]

    def building(info: Any) -> bool:  # the current definition's index, not yet built
        name = info.get("index_name", b"")
        named = name.decode() if isinstance(name, bytes) else str(name)
        return (still[0] and named == current) or real(info)

    monkeypatch.setattr(search, "is_building", building)
    await call(real_client, "FT.ALIASDEL", alias)  # a first start: no alias until it is built
    assert await cli(redis_server, "check", "--wait", "0") == NOT_READY
    out = capsys.readouterr().out
    assert "not yet checkable" in out and "its alias moves to it once built" in out
    assert await cli(redis_server, "check", "--wait", "0.3") == NOT_READY
    assert "waiting for indexes to build (users its new index)" in capsys.readouterr().err

    # An upgrade: the alias still on an older definition while the new one builds.
    old = USER.names.index_name(USER.prefix, "0ld")
    await call(real_client, "FT.CREATE", old, *search.definition(USER))
    await call(real_client, "FT.ALIASADD", alias, old)
    assert await cli(redis_server, "check", "--wait", "0") == NOT_READY

    still[0] = False  # built, but nobody moved the alias: a problem check --repair fixes
    assert await cli(redis_server, "check", "--wait", "0") == PROBLEMS
    assert f"{old}, not the current definition {current}" in capsys.readouterr().out
    assert await cli(redis_server, "check", "--repair") == OK
    assert await search.alias_target(real_client, USER) == current


async def test_indexes_a_service_has_still_to_build_are_not_yet_checkable(
    redis_server: EmbeddedRedis, real_client: Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review 41: a first start builds one index at a time; those whose turn had not come
    (no alias, no index yet) were problems (exit 1). While a service's index work keeps its
    heartbeat alive they are not yet checkable; once it lapses (the service died) they are
    problems again, which --repair fixes."""
    ks = Keyspace(real_client)
    await ks.setup()
    await call(real_client, "FT.DROPINDEX", search.current_name(USER))  # drops the alias too
    assert await cli(redis_server, "check", "--wait", "0") == PROBLEMS
    capsys.readouterr()
    await upgrade.mark_indexing(real_client, ks.schema.names, ["users"])
    assert await cli(redis_server, "check", "--wait", "0") == NOT_READY
    assert "waiting for a service's index work" in capsys.readouterr().out
    assert await cli(redis_server, "check", "--wait", "0.3") == NOT_READY
    assert "users not started" in capsys.readouterr().err
    assert 0 < await real_client.pttl(ks.schema.names.lock_key(upgrade.INDEXING)) <= 10_000
    # A service whose attempts keep failing (review 42): a problem naming why, not a wait.
    failure = "ResponseError: NOPERM User multiframe has no permissions to run 'FT.CREATE'"
    await upgrade.mark_indexing(real_client, ks.schema.names, ["users"], failure)
    assert await cli(redis_server, "check", "--wait", "5") == PROBLEMS  # no wait for it
    assert f"a service's index work keeps failing: {failure}" in capsys.readouterr().out
    await real_client.delete(ks.schema.names.lock_key(upgrade.INDEXING))  # the service died
    assert await cli(redis_server, "check", "--wait", "0") == PROBLEMS
    assert await cli(redis_server, "check", "--repair") == OK


async def test_the_service_keeps_its_index_work_heartbeat_while_it_builds(
    real_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    ks = Keyspace(real_client)
    await ks.setup()
    await call(real_client, "FT.DROPINDEX", search.current_name(USER))
    await ks.setup_basics()
    assert ks.pending_indexes == ["users"]
    release = asyncio.Event()
    real_upgrade = ks.upgrade_indexes

    async def slow(**kwargs: Any) -> None:
        await release.wait()
        await real_upgrade(**kwargs)

    monkeypatch.setattr(ks, "upgrade_indexes", slow)
    monkeypatch.setattr(upgrade, "INDEXING_BEAT_S", 0.05)
    work = IndexWork(ks)
    task = work.start()
    assert task is not None
    key = ks.schema.names.lock_key(upgrade.INDEXING)
    await asyncio.sleep(0.3)
    assert await upgrade.indexing(real_client, ks.schema.names) == upgrade.Indexing(["users"], None)
    await real_client.delete(key)
    await asyncio.sleep(0.2)
    assert await real_client.exists(key)  # renewed
    release.set()
    await asyncio.wait_for(task, 30)
    await real_client.delete(key)
    await asyncio.sleep(0.2)
    assert not await real_client.exists(key)  # the beat ended with the work
    assert await search.alias_target(real_client, USER) == search.current_name(USER)


async def test_index_work_that_keeps_failing_says_why_and_stops_with_the_service(
    real_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review 42: the heartbeat lived as long as the retry loop, so check waited (75) for
    work that failed on every attempt; and stop() could return with the beat still renewing."""
    ks = Keyspace(real_client)
    await ks.setup()
    await call(real_client, "FT.DROPINDEX", search.current_name(USER))
    await ks.setup_basics()

    async def refused(**kwargs: Any) -> None:
        raise ResponseError("NOPERM this user has no permissions to run the 'FT.CREATE' command")

    monkeypatch.setattr(ks, "upgrade_indexes", refused)
    monkeypatch.setattr(upgrade, "INDEXING_BEAT_S", 0.05)
    monkeypatch.setattr(startup, "RETRY_FIRST_SECONDS", 0.01)
    work = IndexWork(ks)
    assert work.start() is not None
    for _ in range(100):
        said = await upgrade.indexing(real_client, ks.schema.names)
        if said is not None and said.failure is not None:
            break
        await asyncio.sleep(0.05)
    assert said is not None and said.pending == ["users"]
    assert said.failure is not None and "NOPERM" in said.failure
    await work.stop()
    assert work.beat is not None and work.beat.done()
    await real_client.delete(ks.schema.names.lock_key(upgrade.INDEXING))
    await asyncio.sleep(0.2)
    assert not await real_client.exists(ks.schema.names.lock_key(upgrade.INDEXING))


async def test_one_failed_attempt_is_what_the_retries_are_for_not_a_failure(
    redis_server: EmbeddedRedis, real_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review 43: one lost connection (a Redis restart) during a first start was reported as
    failing work, and check answered 1 while the next attempt built the index."""
    ks = Keyspace(real_client)
    await ks.setup()
    await call(real_client, "FT.DROPINDEX", search.current_name(USER))
    await ks.setup_basics()
    attempts, release = [0], asyncio.Event()
    real_upgrade = ks.upgrade_indexes

    async def flaky(**kwargs: Any) -> None:
        attempts[0] += 1
        if attempts[0] == 1:
            raise ConnectionError("Connection closed by server.")
        await release.wait()  # the healthy second attempt, slow
        await real_upgrade(**kwargs)

    monkeypatch.setattr(ks, "upgrade_indexes", flaky)
    monkeypatch.setattr(upgrade, "INDEXING_BEAT_S", 0.05)
    monkeypatch.setattr(startup, "RETRY_FIRST_SECONDS", 0.01)
    work = IndexWork(ks)
    task = work.start()
    assert task is not None
    while attempts[0] < 2:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)
    said = await upgrade.indexing(real_client, ks.schema.names)
    assert said is not None and said.failure is None
    assert await cli(redis_server, "check", "--wait", "0") == NOT_READY
    release.set()
    await asyncio.wait_for(task, 30)
    await work.stop()


async def test_a_heartbeat_is_read_whatever_its_writer(real_client: Redis) -> None:
    """Review 43: the version before wrote a plain list; a key without an expiry or of
    another type is nobody's heartbeat (written by hand)."""
    names = Keyspace(real_client).schema.names
    key = names.lock_key(upgrade.INDEXING)
    await real_client.set(key, "users, drivers", px=5000)
    assert await upgrade.indexing(real_client, names) == upgrade.Indexing(
        ["users", "drivers"], None
    )
    await real_client.set(key, "users")  # no expiry
    assert await upgrade.indexing(real_client, names) is None
    await real_client.delete(key)
    await real_client.hset(key, "a", "b")
    assert await upgrade.indexing(real_client, names) is None
    await real_client.delete(key)
    assert await upgrade.indexing(real_client, names) is None
