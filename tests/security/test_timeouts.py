"""Connections that hold the server without using it are closed by configured timeouts
(MULTIFRAME_KEEPALIVE_TIMEOUT_SECONDS, _BODY_, _SEND_), and a client hanging up is not
reported as a Redis outage. Served the way ``python -m app`` serves (``start_server``)."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest

from app.config import Settings
from app.server import server_options
from keyspace import QUEST, USER, codec
from keyspace.connection import call

from .conftest import ADMIN_TOKEN
from .served import no_connections, raw, read_until_closed, running

SHORT = 0.3
AUTH_LINE = f"Authorization: Bearer {ADMIN_TOKEN}\r\n"


def test_timeouts_come_from_the_environment() -> None:
    env = {
        "MULTIFRAME_KEEPALIVE_TIMEOUT_SECONDS": "5",
        "MULTIFRAME_BODY_TIMEOUT_SECONDS": "2.5",
        "MULTIFRAME_SEND_TIMEOUT_SECONDS": "7",
    }
    settings = Settings.from_env(env)
    assert (settings.keepalive_timeout, settings.body_timeout, settings.send_timeout) == (5, 2.5, 7)
    defaults = Settings.from_env({})
    assert (defaults.keepalive_timeout, defaults.body_timeout, defaults.send_timeout) == (
        75,
        60,
        60,
    )
    options = server_options(settings)
    assert options["keepalive_timeout"] == 5
    assert options["lingering_time"] == 2.5
    for bad in ("0", "-1", "nan", "inf", "soon"):
        with pytest.raises(SystemExit, match="MULTIFRAME_BODY_TIMEOUT_SECONDS"):
            Settings.from_env({"MULTIFRAME_BODY_TIMEOUT_SECONDS": bad})


async def test_idle_connections_and_half_sent_heads_are_closed() -> None:
    async with running(keepalive_timeout=SHORT) as server:
        idle_reader, _idle = await raw(server.port)
        loris_reader, loris = await raw(server.port)
        loris.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # the head never ends
        used_reader, used = await raw(server.port)
        used.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")  # then idles, kept alive
        for reader in (idle_reader, loris_reader):
            data, after = await read_until_closed(reader)
            assert data == b""
            assert after < SHORT + 1
        data, _ = await read_until_closed(used_reader)
        assert data.startswith(b"HTTP/1.1 200 ")
        assert await no_connections(server)


async def test_a_body_that_does_not_arrive_in_time_is_408_and_closed() -> None:
    async with running(body_timeout=SHORT) as server:
        reader, writer = await raw(server.port)
        writer.write(
            b"POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + AUTH_LINE.encode()
            + b'Content-Length: 100\r\n\r\n{"username": '
        )
        data, after = await read_until_closed(reader)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 ")
        assert b"application/json" in head.lower()
        assert orjson.loads(body)["error"]["code"] == "request_timeout"
        assert after < 2 * SHORT + 1  # the timeout, then at most as long again draining
        assert await server.keyspace.client.exists("user:user_1") == 0
        assert await no_connections(server)


async def test_a_client_that_stops_reading_is_cut_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="multiframe.api")
    async with running(send_timeout=SHORT) as server:
        ks = server.keyspace
        await ks.create(USER, {"username": "R", "email": "r@example.com", "role": "admin"})
        quest = {"user_id": "user_1", "title": "t", "description": "x" * 4900, "reward": "r"}
        async with ks.client.pipeline(transaction=False) as pipe:  # a ~5 MB page, quickly
            for n in range(1, 1001):
                doc = {**quest, "quest_id": f"quest_{n}", "status": "active"}
                pipe.execute_command("JSON.SET", f"quest:quest_{n}", "$", codec.dumps(doc))
            await pipe.execute()
        assert (await ks.get(QUEST, "quest_1")).doc["description"] == quest["description"]
        reader, writer = await raw(server.port, receive_buffer=4096)
        writer.write(f"GET /api/quests?limit=1000 HTTP/1.1\r\nHost: x\r\n{AUTH_LINE}\r\n".encode())
        assert await no_connections(server)  # not reading: aborted after SHORT
        assert any("did not take the response" in r.getMessage() for r in caplog.records)
        data, _ = await read_until_closed(reader)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert len(body) < int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await call(ks.client, "FLUSHALL")


async def test_a_client_hanging_up_mid_body_is_not_blamed_on_redis(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="multiframe.api")
    async with running() as server:
        _, writer = await raw(server.port)
        writer.write(
            b"POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + AUTH_LINE.encode()
            + b"Content-Length: 100\r\n\r\n{"
        )
        await writer.drain()
        await asyncio.sleep(0.1)  # the handler is reading the body
        writer.close()
        assert await no_connections(server)
        messages = [r.getMessage() for r in caplog.records]
        assert not [m for m in messages if "redis unavailable" in m]
        assert "POST /api/users 499" in " ".join(messages)
