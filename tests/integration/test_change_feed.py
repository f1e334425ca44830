"""The change feed on the real server (issue 20): under concurrent writes from two app
instances a subscriber that disconnects and resumes with Last-Event-ID sees every acknowledged
write exactly once and in commit order; 200 concurrent SSE subscribers all see all events; a
subscriber that never reads is dropped once its queue is full, and resumes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from app import create_app
from app.changes import HUB
from app.config import Settings
from app.state import KEYSPACE
from keyspace import USER, connect, feed
from keyspace.changes import parse_id
from keyspace.server import EmbeddedRedis
from tests.api.conftest import ADMIN_TOKEN, AUTH

pytestmark = pytest.mark.redis

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def redis(redis_server: EmbeddedRedis) -> AsyncIterator[Redis]:
    client = connect(redis_server.url)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
async def apps(redis_server: EmbeddedRedis, redis: Redis) -> AsyncIterator[list[Client]]:
    """Two app instances, each with its own pool on the one server."""
    out: list[Client] = []
    pools: list[Redis] = []
    for _ in range(2):
        pool = connect(redis_server.url)
        pools.append(pool)
        settings = Settings(admin_token=ADMIN_TOKEN, changes_heartbeat=0.5, changes_queue=50)
        client: Client = TestClient(TestServer(create_app(settings, client=pool)), headers=AUTH)
        await client.start_server()
        out.append(client)
    yield out
    for client in out:
        await client.close()
    for pool in pools:
        await pool.aclose()


def user_body(n: int) -> dict[str, Any]:
    return {"username": f"u{n}", "email": f"u{n}@example.com", "role": "designer"}


async def read_events(content: aiohttp.StreamReader, count: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(30):
        while len(out) < count:
            line = await content.readline()
            if not line:
                raise AssertionError(f"the stream ended after {len(out)} events")
            if line.startswith(b"data: "):
                out.append(orjson.loads(line[6:]))
    return out


async def opened(api: Client, **headers: str) -> aiohttp.ClientResponse:
    resp = await api.get("/api/changes?collections=users", headers=headers)
    assert resp.status == 200, await resp.text()
    assert await resp.content.readline() == b": keep-alive\n"  # subscribed: it follows now
    return resp


async def test_a_resumed_subscriber_sees_each_acknowledged_write_once_in_commit_order(
    apps: list[Client], redis: Redis
) -> None:
    first, second = apps
    acknowledged: list[tuple[str, str]] = []
    per_writer = 60

    async def writer(api: Client, offset: int) -> None:
        for n in range(offset, offset + per_writer):
            resp = await api.post("/api/users", json=user_body(n))
            assert resp.status == 201, await resp.text()
            doc_id = (await resp.json())["user_id"]
            acknowledged.append((doc_id, resp.headers["ETag"].strip('"')))
            if n % 3 == 0:
                resp = await api.patch(f"/api/users/{doc_id}", json={"role": "engineer"})
                assert resp.status == 200
                acknowledged.append((doc_id, resp.headers["ETag"].strip('"')))

    stream = await opened(first)
    writers = [
        asyncio.create_task(writer(first, 0)),
        asyncio.create_task(writer(second, 1000)),
        asyncio.create_task(writer(second, 2000)),
    ]
    seen = await read_events(stream.content, 40)
    stream.close()  # mid-way: the writers go on
    await asyncio.sleep(0.2)
    await asyncio.gather(*writers)
    total = len(acknowledged)
    again = await opened(second, **{"Last-Event-ID": seen[-1]["id"]})
    seen += await read_events(again.content, total - len(seen))
    again.close()

    ids = [parse_id(e["id"]) for e in seen]
    assert ids == sorted(ids) and len(set(ids)) == total
    assert sorted((e["doc_id"], e["revision"]) for e in seen) == sorted(acknowledged)
    stored = await feed.after(redis, "mf:changes", None, 10_000)
    assert [e["id"] for e in stored] == [e["id"] for e in seen]  # commit order


async def test_two_hundred_subscribers_all_see_every_event(apps: list[Client]) -> None:
    api = apps[0]
    url = str(api.make_url("/api/changes?collections=users"))
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), headers=AUTH
    ) as session:
        streams = await asyncio.gather(*(session.get(url) for _ in range(200)))
        assert {s.status for s in streams} == {200}
        await asyncio.gather(*(s.content.readline() for s in streams))  # each subscribed
        assert len(api.app[HUB].subscribers) == 200
        written = 30
        for n in range(written):
            assert (await api.post("/api/users", json=user_body(n))).status == 201
        got = await asyncio.gather(*(read_events(s.content, written) for s in streams))
        for s in streams:
            s.close()
    expected = [e["id"] for e in got[0]]
    assert len(expected) == written
    assert all([e["id"] for e in events] == expected for events in got)


async def test_a_subscriber_that_never_reads_is_dropped_and_resumes(
    apps: list[Client],
) -> None:
    api = apps[0]
    hub = api.app[HUB]
    ks = api.app[KEYSPACE]
    assert api.server.port is not None
    fast = await opened(api)  # reads all along: never dropped
    (reader,) = hub.subscribers
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", api.server.port))
    request = (
        "GET /api/changes?collections=users HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {ADMIN_TOKEN}\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    async with asyncio.timeout(5):
        while len(hub.subscribers) < 2:  # noqa: ASYNC110 (the hub has no event to wait on)
            await asyncio.sleep(0.01)
    (slow,) = hub.subscribers - {reader}
    # The kernel would buffer ~4 MB for it first (send buffer autotuning): not the bound this
    # test is about, and 15k writes long. Its server side socket gets a small send buffer.
    transport = slow.on_drop.__self__  # type: ignore[attr-defined]
    server_side = transport.get_extra_info("socket")
    server_side.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    made = 0
    received: list[dict[str, Any]] = []
    async with asyncio.timeout(60):
        while hub.dropped == 0:
            # Bursts smaller than a queue: only a subscriber that does not read falls behind.
            await asyncio.gather(*(ks.create(USER, user_body(made + n)) for n in range(20)))
            made += 20
            received += await read_events(fast.content, 20)
            assert slow.queue.qsize() <= slow.queue.maxsize  # never more than the bound
    assert slow.dropped.is_set()
    assert hub.subscribers == {reader}  # the one that reads is still followed
    assert slow.queue.qsize() <= 1  # what it held was let go (only the end marker)
    assert len({e["id"] for e in received}) == made
    sock.close()
    fast.close()
    resumed = await opened(api, **{"Last-Event-ID": received[0]["id"]})
    again = await read_events(resumed.content, 5)
    assert [e["id"] for e in again] == [e["id"] for e in received[1:6]]
    resumed.close()
