"""The client keyspace.connect builds: packing with hiredis must send the same bytes."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio.connection import Connection, SSLConnection

from keyspace import connect

COMMANDS: list[tuple[Any, ...]] = [
    ("JSON.SET", "driver:driver_1", "$", b'{"driver_id":"driver_1"}'),
    ("EVALSHA", "a" * 40, 2, "user:", "user_counter", 1, 0, "user_", "h\u00e9", b"\x00\xff"),
    ("CLIENT SETNAME", "multiframe"),
    (b"SCRIPT LOAD", "return 1"),
    ("SET", "k", 1.5),
]


@pytest.mark.parametrize("args", COMMANDS)
def test_packing_matches_redis_py(args: tuple[Any, ...]) -> None:
    client = connect("redis://127.0.0.1:1/0")
    ours = client.connection_pool.make_connection()  # type: ignore[no-untyped-call]
    assert isinstance(ours, Connection)
    assert b"".join(ours.pack_command(*args)) == b"".join(Connection().pack_command(*args))


def test_tls_urls_keep_tls() -> None:
    pool = connect("rediss://127.0.0.1:1/0").connection_pool
    assert issubclass(pool.connection_class, SSLConnection)
