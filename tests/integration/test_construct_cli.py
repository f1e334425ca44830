"""The Construct through its seed's ``manage_db`` verbs on the real server: ``seed`` loads the
demo world, ``validate``, ``status`` and ``health`` pass on it, and ``backup`` / ``clear`` /
``restore`` bring back the same world, whose computed routes then answer as before."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from keyspace import Keyspace, connect, systems, viewing
from keyspace.server import EmbeddedRedis
from scripts.cli import run_cli
from scripts.exits import OK, REFUSED

pytestmark = pytest.mark.redis
SYSTEM = systems.load("construct", cache_ttl=0)  # computed every time: what the data says


@pytest.fixture
async def client(redis_server: EmbeddedRedis) -> AsyncIterator[Redis]:
    redis = connect(redis_server.url)
    await redis.flushall()
    yield redis
    await redis.aclose()


async def answers(client: Redis) -> dict[str, bytes]:
    ks = Keyspace(client, SYSTEM.schema)
    await ks.setup()
    out = {}
    for view in SYSTEM.views:
        if view.params or view.document is not None:
            continue  # the routes of the whole world: analytics, active proposals, search
        body, _ = await viewing.answer(ks, view, SYSTEM.aggregates, None, {}, {})
        out[view.name] = body
    return out


async def test_the_verbs_on_the_construct(
    client: Redis,
    redis_server: EmbeddedRedis,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = ["--redis-url", redis_server.url, "--system", "construct"]

    async def run(*argv: str) -> int:
        return await run_cli([*base, *argv])

    assert await run("seed") == OK
    assert "75 created" in capsys.readouterr().out
    assert await run("seed") == OK  # again: everything present, nothing written
    assert "75 already present" in capsys.readouterr().out
    for verb in (("validate", "--verbose"), ("status",), ("health",)):
        assert await run(*verb) == OK, verb
    out = capsys.readouterr().out
    assert "status: 0 applied, 0 pending" in out and "health: ok" in out
    before = await answers(client)
    assert set(before) == {"market_analytics", "manufacturing_analytics", "active_proposals",
                           "asset_search"}  # fmt: skip
    assert b'"kyc_verified"' in before["market_analytics"]
    backup = tmp_path / "construct.jsonl.gz"
    assert await run("backup", "--backup-file", str(backup)) == OK
    assert await run("clear", "--force") == REFUSED  # production mode
    ks = Keyspace(client, SYSTEM.schema)
    await ks.setup()
    await ks.patch_settings({"system": {"mode": "development"}})
    assert await run("clear", "--force") == OK
    assert (await answers(client))["market_analytics"] != before["market_analytics"]
    assert await run("restore", str(backup)) == OK
    assert await answers(client) == before
    assert await run("validate") == OK
