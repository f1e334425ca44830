"""A server busy with a script says nothing about its modules: the probe raises its BUSY
reply instead of reporting RedisJSON missing (review 24: `multiframe-admin` answered "the
Redis server lacks the RedisJSON module" while a long script ran)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from keyspace.capabilities import probe


class Replying:
    def __init__(self, error: str | None) -> None:
        self.error = error

    async def execute_command(self, *args: Any) -> Any:
        if self.error is not None:
            raise ResponseError(self.error)
        return None if args[0] == "JSON.TYPE" else []


async def test_a_busy_server_is_no_missing_module() -> None:
    busy = Replying("BUSY Redis is busy running a script. You can only call SCRIPT KILL.")
    with pytest.raises(ResponseError, match=r"^BUSY "):
        await probe(cast(Redis, busy), "mf:probe")


async def test_an_unknown_command_is_a_missing_module() -> None:
    found = await probe(cast(Redis, Replying("ERR unknown command 'JSON.TYPE'")), "mf:probe")
    assert (found.json, found.search) == (False, False)
    found = await probe(cast(Redis, Replying(None)), "mf:probe")
    assert (found.json, found.search) == (True, True)
