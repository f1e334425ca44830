"""Shared fixtures: one embedded real server per session, and a ``ks`` fixture that runs a
behavioural test on every backend that can run it. The fakeredis side is the testing kit's
(keyspace.testing, the plugin consumers use): the helpers its fixtures are made of build
every fakeredis client and Keyspace here, so the kit is exercised by the whole suite."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from keyspace import MULTIFRAME, Keyspace, connect
from keyspace.server import EmbeddedRedis
from keyspace.testing import fake_redis_client, keyspace_on
from keyspace.testing.fakes import give_sha1hex

# Tests that build fakeredis clients themselves run commit.lua too, which calls redis.sha1hex.
give_sha1hex()

# A suite started in the background by a shell without job control (`make test &`, nohup)
# inherits an ignored SIGINT, and so would every service and CLI the tests start and then
# stop with Ctrl-C: they would never see it. Handled here, the children start with the default.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


class OperatorServer(EmbeddedRedis):
    """The session server as most tests use it: they flush it and look into it, so ``url``
    is the ACL admin user's. Tests of the least-privilege service user start their own
    servers (tests/security, tests/reliability ``private_server``)."""

    @property
    def url(self) -> str:
        return self.admin_url


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """One real redis-server with RedisJSON and RediSearch for the whole session."""
    server = OperatorServer(Path(tmp_path_factory.mktemp("redis")))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def real_client(redis_server: EmbeddedRedis) -> AsyncIterator[Redis]:
    """A client on the embedded server, which is flushed before each test."""
    client = connect(redis_server.url)
    await client.flushall()
    yield client
    await client.aclose()


BACKENDS = [
    pytest.param("fake", id="fakeredis"),
    pytest.param("real", id="redis-search", marks=pytest.mark.redis),
    pytest.param("real-scan", id="redis-scan", marks=pytest.mark.redis),
]


async def client_for(request: pytest.FixtureRequest, backend: str) -> Redis:
    """An empty client of one of BACKENDS: the kit's fakeredis client (a server of the test's
    own), or the session's real server flushed (tests declaring their own schema build their
    Keyspace on it)."""
    if backend == "fake":
        return fake_redis_client()
    server: EmbeddedRedis = request.getfixturevalue("redis_server")
    client = connect(server.url)
    await client.flushall()
    return client


@pytest.fixture(params=BACKENDS)
async def ks(request: pytest.FixtureRequest) -> AsyncIterator[Keyspace]:
    """The kit's ``ks`` (MultiFrame's declarations as written: the entity constants of
    ``keyspace`` are its specs) on fakeredis (scan path), and on the real server through
    RediSearch and through the scan path."""
    backend: str = request.param
    client = await client_for(request, backend)
    yield await keyspace_on(
        client, MULTIFRAME, use_search=None if backend != "real-scan" else False
    )
    await client.aclose()
