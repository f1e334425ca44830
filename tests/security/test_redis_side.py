"""The Redis side: a least-privilege ACL user, a disabled default user, and TLS (rediss://)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import trustme
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app import create_app
from app.config import Settings
from keyspace import DRIVER, USER, Keyspace, connect, parse
from keyspace.acl import AclUsers
from keyspace.server import EmbeddedRedis
from tests import factories as f

pytestmark = pytest.mark.redis

TOKEN = "acl-test-admin-token-0123456789"


@pytest.fixture(scope="module")
def acl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("acl"), acl=AclUsers())
    server.start()
    yield server
    server.stop()


async def test_service_runs_entirely_as_the_least_privilege_user(acl_server: EmbeddedRedis) -> None:
    admin = redis.Redis.from_url(acl_server.admin_url)
    admin.flushall()
    client = connect(acl_server.url)
    app = create_app(Settings(admin_token=TOKEN), client=client)
    api: TestClient[web.Request, web.Application] = TestClient(
        TestServer(app), headers={"Authorization": f"Bearer {TOKEN}"}
    )
    await api.start_server()
    try:
        user = {"username": "Acl", "email": "acl@x.io", "role": "engineer"}
        assert (await api.post("/api/users", json=user)).status == 201
        driver = {
            "user_id": "user_1",
            "chip_id": "c",
            "version": "1",
            "chip_data": {
                "type": "crypto_processor",
                "cores": 4,
                "frequency": "1GHz",
                "architecture": "A",
            },
        }
        assert (await api.post("/api/drivers", json=driver)).status == 201
        listed = await (await api.get("/api/users/user_1/drivers")).json()
        assert listed["total"] == 1
        minted = await api.post("/api/users/user_1/tokens", json={})
        assert minted.status == 201
        assert (await api.delete("/api/users/user_1")).status == 204
        assert (await api.get("/ready")).status == 200
    finally:
        await api.close()
        await client.aclose()
    assert admin.exists("user:user_1", "driver:driver_1") == 0


@pytest.mark.parametrize(
    "command",
    [
        ("FLUSHALL",),
        ("FLUSHDB",),
        ("CONFIG", "GET", "*"),
        ("KEYS", "*"),
        ("DEBUG", "SLEEP", "0"),
        ("SHUTDOWN", "NOSAVE"),
        ("MODULE", "LIST"),
        ("ACL", "LIST"),
        ("SET", "outside", "x"),
        ("GET", "session:1"),
        ("JSON.SET", "other:1", "$", "{}"),
    ],
)
def test_service_user_cannot_run_dangerous_commands_or_touch_other_keys(
    acl_server: EmbeddedRedis, command: tuple[str, ...]
) -> None:
    with redis.Redis.from_url(acl_server.url) as client, pytest.raises(redis.ResponseError):
        client.execute_command(*command)
    with redis.Redis.from_url(acl_server.admin_url) as admin:
        assert admin.ping()
        assert admin.exists("outside", "other:1") == 0


def test_default_user_is_disabled_and_passwords_are_checked(acl_server: EmbeddedRedis) -> None:
    with (
        redis.Redis(port=acl_server.port, protocol=2) as anonymous,
        pytest.raises(redis.AuthenticationError),
    ):
        anonymous.set("x", "y")
    wrong = acl_server.url.replace("@", "x@", 1)
    with (
        redis.Redis.from_url(wrong, protocol=2) as client,
        pytest.raises(redis.AuthenticationError),
    ):
        client.ping()
    acl_file = (acl_server.data_dir / "users.acl").read_text()
    assert "user default off" in acl_file
    assert acl_server.acl is not None
    assert acl_server.acl.service_password not in acl_file  # stored as a SHA-256 only
    assert (acl_server.data_dir / "users.acl").stat().st_mode & 0o077 == 0


async def test_scripted_writes_survive_a_restart_under_the_acl(tmp_path: Path) -> None:
    # A restart replays the AOF; EXEC blocks in it (scripts' effects) are re-checked against
    # the default user's rules, which once dropped every one of them silently.
    server = EmbeddedRedis(tmp_path / "data", acl=AclUsers())
    server.start()
    try:
        client = connect(server.url)
        ks = Keyspace(client)
        await ks.setup()
        owner = await f.user(ks, "Durable")
        driver = await f.driver(ks, "user_1")
        await client.aclose()
        server.stop()  # SHUTDOWN: the AOF is fsynced, then loaded on start

        server.start()
        client = connect(server.url)
        ks = Keyspace(client)
        assert (await ks.get(USER, "user_1")).doc == owner.doc
        assert (await ks.get(DRIVER, "driver_1")).doc == driver.doc
        assert await client.get("user_counter") == b"1"
        await client.aclose()
        log = (server.data_dir / "redis.log").read_text()
        assert "NOPERM" not in log
    finally:
        server.stop()


def test_the_default_user_cannot_be_authenticated_as(acl_server: EmbeddedRedis) -> None:
    for password in ("", "nopass", "default"):
        with (
            redis.Redis(port=acl_server.port, username="default", password=password) as client,
            pytest.raises(redis.AuthenticationError),
        ):
            client.ping()


class TlsProxy:
    """Terminates TLS on a loopback port and forwards bytes to a plain Redis port."""

    def __init__(self, target_port: int, context: ssl.SSLContext) -> None:
        self.target_port, self.context = target_port, context
        self.server: asyncio.Server | None = None

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.context)
        port: int = self.server.sockets[0].getsockname()[1]
        return port


@pytest.fixture
async def tls_url(redis_server: EmbeddedRedis, tmp_path: Path) -> AsyncIterator[str]:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    proxy = TlsProxy(redis_server.port, context)
    port = await proxy.start()
    base = redis_server.acl.url("127.0.0.1", port, scheme="rediss")  # the service user
    yield f"{base}?ssl_ca_certs={ca_file}&ssl_cert_reqs=required"
    assert proxy.server is not None
    proxy.server.close()


async def test_rediss_url_works_end_to_end(tls_url: str, redis_server: EmbeddedRedis) -> None:
    plain = connect(redis_server.url)
    await plain.flushall()
    client = connect(tls_url)
    try:
        ks = Keyspace(client)
        assert (await ks.setup()).search
        await f.user(ks, "Tls")
        await f.driver(ks, "user_1")
        page = await ks.list(DRIVER, parse(DRIVER, {"user_id": ["user_1"]}))
        assert page.total == 1
        assert (await ks.get(USER, "user_1")).doc["username"] == "Tls"
        conn_kwargs = client.connection_pool.connection_kwargs
        assert conn_kwargs.get("ssl_cert_reqs") == "required"
    finally:
        await client.aclose()
        await plain.aclose()
