"""A GET by id and a create each cost one Redis round trip: authorization runs in the same
script that reads or writes the document (scripts are loaded by a first request)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from app.feed_hub import READER_TASK
from app.state import KEYSPACE
from keyspace.pipelining import pipeliner

Client = TestClient[web.Request, web.Application]
USER = {"username": "Trip", "email": "trip@x.io", "role": "engineer"}


def count_calls(api: Client, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Every command the app's client sends from now on (each is one round trip here)."""
    connection_class = api.app[KEYSPACE].client.connection_pool.connection_class
    calls: list[tuple[Any, ...]] = []
    original = connection_class.send_command

    async def counted(self: Any, *args: Any, **options: Any) -> None:
        # The change feed's reader follows the stream from a task of its own (XREAD BLOCK on
        # a connection of its own, app/feed_hub.py): none of a request's round trips.
        task = asyncio.current_task()
        if task is None or task.get_name() != READER_TASK:
            calls.append(args)
        await original(self, *args, **options)

    monkeypatch.setattr(connection_class, "send_command", counted)
    piped = pipeliner(api.app[KEYSPACE].client)
    if piped is not None:  # automatic pipelining: each command is its request's one trip
        execute = piped.execute

        async def pipelined(*args: Any) -> Any:
            calls.append(args)
            return await execute(*args)

        monkeypatch.setattr(piped, "execute", pipelined)
    return calls


async def test_get_by_id_is_one_round_trip(api: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    created = await api.post("/api/users", json=USER)
    assert (await api.get("/api/users/user_1")).status == 200  # loads authorize.lua
    calls = count_calls(api, monkeypatch)
    resp = await api.get("/api/users/user_1")
    assert resp.status == 200
    assert await resp.json() == await created.json()
    assert resp.headers["ETag"] == created.headers["ETag"]
    assert len(calls) == 1
    assert calls[0][0] == "EVALSHA"
    missing = await api.get("/api/users/user_9")
    assert missing.status == 404
    assert len(calls) == 2


async def test_refused_requests_never_carry_the_document(api: Client) -> None:
    await api.post("/api/users", json=USER)
    resp = await api.get("/api/users/user_1", headers={"Authorization": "Bearer wrong"})
    assert resp.status == 401
    assert "Trip" not in await resp.text()


async def test_create_is_one_round_trip(api: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (await api.post("/api/users", json=USER)).status == 201  # loads the script
    calls = count_calls(api, monkeypatch)
    second = {**USER, "username": "Trip2", "email": "trip2@x.io"}
    resp = await api.post("/api/users", json=second)
    assert resp.status == 201
    assert (await resp.json())["user_id"] == "user_2"
    assert [c[0] for c in calls] == ["EVALSHA"]
    taken = await api.post("/api/users", json=second)
    assert taken.status == 409
    assert len(calls) == 2
    assert (await api.get("/api/users/user_2")).status == 200
