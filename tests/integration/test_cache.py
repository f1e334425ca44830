"""Cached list answers on the real server, through NeuraForge's API (issue 15: "cache
invalidation read-your-writes"): a client never reads a cached answer older than its own
acknowledged write, under concurrent writers and readers too, and a cached answer is the
uncached answer byte for byte."""

from __future__ import annotations

import asyncio
import gzip
import random
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from app import create_app
from app.config import Settings
from app.state import SYSTEM
from keyspace import connect
from keyspace.server import EmbeddedRedis
from scripts.cli import run_cli
from scripts.exits import OK
from tests.api.conftest import ADMIN_TOKEN, AUTH

pytestmark = pytest.mark.redis

Client = TestClient[web.Request, web.Application]
NS = "neuraforge:"


@pytest.fixture
async def redis(redis_server: EmbeddedRedis) -> AsyncIterator[Redis]:
    client = connect(redis_server.url)
    await client.flushall()
    yield client
    await client.aclose()


async def _serve(redis: Redis, *, cached: bool = True) -> Client:
    app = create_app(Settings(admin_token=ADMIN_TOKEN, system="neuraforge"), client=redis)
    if not cached:
        app[SYSTEM] = replace(app[SYSTEM], cache=None)
    client: Client = TestClient(TestServer(app), headers=AUTH)
    await client.start_server()
    return client


@pytest.fixture
async def api(redis: Redis) -> AsyncIterator[Client]:
    client = await _serve(redis)
    yield client
    await client.close()


async def _created(api: Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post(path, json=body)
    assert response.status == 201, await response.text()
    doc: dict[str, Any] = await response.json()
    return doc


async def _list(api: Client, path: str, **params: str) -> tuple[bytes, list[dict[str, Any]]]:
    response = await api.get(path, params=params)
    assert response.status == 200, await response.text()
    raw = await response.read()
    return raw, (await response.json())["items"]


async def _entries(redis: Redis) -> list[bytes]:
    # Answers only: each endpoint's entry index (``:#entries``) is not one.
    return [
        key
        async for key in redis.scan_iter(match=f"{NS}api:cache:*")
        if not key.endswith(b":#entries")
    ]


async def test_a_client_reads_its_own_writes_at_once(api: Client, redis: Redis) -> None:
    user = await _created(api, "/api/users", {"email": "ada@x.dev", "name": "Ada"})
    mine = f"/api/users/{user['id']}/projects"
    for path in ("/api/projects", mine):
        assert (await _list(api, path))[1] == []
        assert (await _list(api, path))[1] == []  # a hit
    assert len(await _entries(redis)) == 2  # both answers are cached

    project = await _created(api, "/api/projects", {"name": "P1", "owner_id": user["id"]})
    for path in ("/api/projects", mine):
        assert [p["id"] for p in (await _list(api, path))[1]] == [project["id"]]

    response = await api.patch(f"/api/projects/{project['id']}", json={"name": "P2"})
    assert response.status == 200
    for path in ("/api/projects", mine):
        assert [p["name"] for p in (await _list(api, path))[1]] == ["P2"]
        assert (await _list(api, path, status="active"))[1][0]["name"] == "P2"

    second = await _created(api, "/api/projects", {"name": "P3", "owner_id": user["id"]})
    assert (await api.delete(f"/api/projects/{project['id']}")).status == 204
    for path in ("/api/projects", mine):
        assert [p["id"] for p in (await _list(api, path))[1]] == [second["id"]]

    # A cascade (the owner's delete deletes its projects) moves the version too.
    assert (await _list(api, "/api/projects"))[1] != []
    assert (await api.delete(f"/api/users/{user['id']}")).status == 204
    assert (await _list(api, "/api/projects"))[1] == []
    assert (await api.get(mine)).status == 404  # the target is checked live


async def test_cached_answers_equal_uncached_answers(api: Client, redis: Redis) -> None:
    plain = await _serve(redis, cached=False)
    try:
        user = await _created(api, "/api/users", {"email": "bo@x.dev", "name": "Bo"})
        for n in range(7):
            status = "archived" if n % 3 == 0 else "active"
            body = {"name": f"P{n}", "owner_id": user["id"], "status": status}
            await _created(api, "/api/projects", body)
        queries: list[tuple[str, dict[str, str]]] = [
            ("/api/projects", {}),
            ("/api/projects", {"status": "active"}),
            ("/api/projects", {"limit": "2"}),
            ("/api/projects", {"sort": "-created_at", "limit": "3"}),
            (f"/api/users/{user['id']}/projects", {"status": "archived"}),
            ("/api/ai_agents", {}),
        ]
        for path, params in queries:
            miss, _ = await _list(api, path, **params)
            hit, _ = await _list(api, path, **params)
            uncached, _ = await _list(plain, path, **params)
            assert miss == hit == uncached, (path, params)
        assert len(await _entries(redis)) == len(queries)
        assert not [k async for k in redis.scan_iter(match=f"{NS}api:cache:users*")]
    finally:
        await plain.close()


async def test_concurrent_writers_always_read_their_own_writes(api: Client, redis: Redis) -> None:
    """Writers each create, rename and delete projects of their own user and list them right
    after every acknowledged write, while readers keep the same lists cached; every list a
    writer reads shows exactly its own projects as its last write left them."""
    second = await _serve(redis)  # two API processes' worth of clients on one server
    owners = [
        (await _created(api, "/api/users", {"email": f"w{n}@x.dev", "name": f"W{n}"}))["id"]
        for n in range(4)
    ]
    deadline = time.monotonic() + 3.0
    checked = [0]

    async def writer(n: int, owner: str) -> None:
        rng = random.Random(n)
        mine: dict[str, str] = {}  # id -> name, as this writer last wrote it
        via = (api, second)
        while time.monotonic() < deadline:
            client = via[rng.randrange(2)]
            if mine and rng.random() < 0.3:
                doomed = rng.choice(sorted(mine))
                assert (await client.delete(f"/api/projects/{doomed}")).status == 204
                del mine[doomed]
            elif mine and rng.random() < 0.5:
                target, name = rng.choice(sorted(mine)), f"r{rng.randrange(10**6)}"
                response = await client.patch(f"/api/projects/{target}", json={"name": name})
                assert response.status == 200
                mine[target] = name
            else:
                name = f"c{rng.randrange(10**6)}"
                created = await _created(client, "/api/projects", {"name": name, "owner_id": owner})
                mine[created["id"]] = name
            reader = via[rng.randrange(2)]
            for path, params in (
                ("/api/projects", {"owner_id": owner, "limit": "100"}),
                (f"/api/users/{owner}/projects", {"limit": "100"}),
            ):
                _, items = await _list(reader, path, **params)
                assert {p["id"]: p["name"] for p in items} == mine
                checked[0] += 1

    async def reader(n: int) -> None:
        while time.monotonic() < deadline:
            owner = owners[n % len(owners)]
            await _list((api, second)[n % 2], "/api/projects", owner_id=owner, limit="100")
            await _list(api, f"/api/users/{owner}/projects", limit="100")

    try:
        await asyncio.gather(
            *(writer(n, owner) for n, owner in enumerate(owners)), *(reader(n) for n in range(4))
        )
    finally:
        await second.close()
    assert checked[0] > 40
    assert await _entries(redis)  # the readers did fill the cache


async def test_an_answer_in_flight_across_a_wipe_is_never_met_again(
    api: Client, redis: Redis
) -> None:
    """A list looked up before a wipe (restore --replace, reset: the versions deleted with
    everything else) and stored after it must not be met by the versions that writes after
    the wipe reach: an absent version starts at random in a commit as in a lookup (review-15
    finding 4: commits counted it from 1 again, so the old answer came back under the same
    version and hid a client's own acknowledged create)."""
    from app.state import KEYSPACE
    from keyspace.cache import AnswerCache, params_hash

    assert api.app is not None
    ks = api.app[KEYSPACE]
    spec = ks.schema.entity("projects")
    cache = AnswerCache(ks.scripts, ks.schema.names, "projects", (spec,))
    owner = await _created(api, "/api/users", {"email": "ada@x.dev", "name": "Ada"})
    made = {"name": "before", "owner_id": owner["id"]}
    for _ in range(3):
        await _created(api, "/api/projects", made)
    found = await cache.get(params_hash({}))  # the in-flight lookup, before the wipe
    assert found.body is None
    version_key = ks.schema.names.collection_version_key(spec.prefix)
    async for key in redis.scan_iter(match=f"{NS}projects:*"):
        await redis.delete(key)
    await redis.delete(version_key)  # the wipe: documents and versions go alike
    mine = [await _created(api, "/api/projects", {"name": "after", "owner_id": owner["id"]})]
    # Had versions counted from 1 again, this many writes would reach the old version.
    while len(mine) < 4:
        mine.append(await _created(api, "/api/projects", {"name": "a", "owner_id": owner["id"]}))
    version = await redis.get(version_key)
    assert version is not None and int(version) > 4  # started at random, not at 1
    assert not await cache.put(params_hash({}), found, b'{"items": [], "stale": true}')
    listed = (await _list(api, "/api/projects"))[1]
    assert sorted(p["id"] for p in listed) == sorted(p["id"] for p in mine)


async def test_profiles_are_left_out_of_backups_and_check_passes_them(
    api: Client, redis: Redis, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    """A cached profile (user:profile:<id>) is state of the moment: not backed up (a restore's
    documents are not what it was computed from) and no finding of ``check``."""
    made = await _created(api, "/api/users", {"email": "ada@x.dev", "name": "Ada"})
    assert (await api.get(f"/api/users/{made['id']}/profile")).status == 200
    assert await redis.exists(f"{NS}user:profile:{made['id']}")
    path = tmp_path / "nf.mfbak"
    url = redis_server.url
    assert await run_cli(["--redis-url", url, "--system", "neuraforge", "backup", str(path)]) == OK
    with gzip.open(path, "rb") as lines:
        backed_up = {orjson.loads(line).get("k") for line in lines}
    assert f"{NS}users:{made['id']}" in backed_up
    assert not [k for k in backed_up if k and "user:profile" in k]
    assert await run_cli(["--redis-url", url, "--system", "neuraforge", "check"]) == OK


async def test_a_repaired_companion_set_takes_the_profile_computed_from_it(
    api: Client, redis: Redis, redis_server: EmbeddedRedis
) -> None:
    """A profile read finds the companion through the reference set; one computed while the
    set was damaged goes with ``check --repair``'s fix (review-15b finding 1)."""
    made = await _created(api, "/api/users", {"email": "ada@x.dev", "name": "Ada"})
    body = {"user_id": made["id"], "research_interests": ["graphs"], "embedding": [0.1] * 384}
    companion = await _created(api, "/api/user_profiles", body)
    ref_set = f"{NS}mf:ref:users:{made['id']}:user_profiles.user_id"
    assert await redis.srem(ref_set, companion["id"]) == 1  # the damage check exists to find
    path = f"/api/users/{made['id']}/profile"
    assert (await (await api.get(path)).json())["research_interests"] == []
    url = redis_server.url
    assert await run_cli(["--redis-url", url, "--system", "neuraforge", "check", "--repair"]) == OK
    assert await run_cli(["--redis-url", url, "--system", "neuraforge", "check"]) == OK
    assert (await (await api.get(path)).json())["research_interests"] == ["graphs"]
