"""With ``MULTIFRAME_READ_FROM=replica`` and the replica down, the API keeps answering lists
(from the primary) and ``/ready`` stays 200 naming the replica ``unreachable``; ``/health``
(liveness: the primary) stays 200."""

from __future__ import annotations

import fakeredis
from aiohttp.test_utils import TestClient, TestServer

from app import create_app
from app.config import Settings
from keyspace import connect
from keyspace.server import free_port

from .conftest import ADMIN_TOKEN, AUTH


async def test_a_dead_replica_is_reported_and_reads_go_to_the_primary() -> None:
    primary = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), protocol=2)
    dead = connect(f"redis://127.0.0.1:{free_port()}/0", timeout=1.0)  # nobody listens
    try:
        app = create_app(Settings(admin_token=ADMIN_TOKEN), client=primary, reader=dead)
        async with TestClient(TestServer(app), headers=AUTH) as client:
            made = await client.post(
                "/api/users",
                json={"username": "Ada", "email": "ada@example.com", "role": "designer"},
            )
            assert made.status == 201, await made.text()
            listed = await client.get("/api/users")
            assert listed.status == 200, await listed.text()
            assert [u["username"] for u in (await listed.json())["items"]] == ["Ada"]
            ready = await client.get("/ready")
            assert ready.status == 200
            report = await ready.json()
            assert report["replica"] == "unreachable"
            assert report["replica_fallbacks"] >= 1
            assert (await client.get("/health")).status == 200
    finally:
        await primary.aclose()
        await dead.aclose()
