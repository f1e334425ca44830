"""The testing kit: a pytest plugin for services built on the keyspace, and its helpers.

Installed with the package (entry point ``pytest11``, name ``keyspace.testing``), so its
fixtures are there in every test of a project that depends on ``multiframe-keyspace``:

- ``keyspace_system``: the :class:`~keyspace.System` served (MultiFrame unless a test says
  ``@pytest.mark.keyspace_system("normaldance")``, or parametrizes the fixture indirectly);
- ``fake_redis``: an empty fakeredis server of its own for each test;
- ``ks``: a set-up :class:`~keyspace.Keyspace` of that system on it (holding the encryption
  key of ``keyspace_settings``, if any, as the ``api`` app does);
- ``factory``: a :class:`Factory` building valid documents from the declarations and creating
  them (and what they refer to) in ``ks``;
- ``api``: an aiohttp test client over the app serving the system on the same Redis, sending
  the operator's admin token (``admin_token``) unless a request says otherwise;
- ``member``: a user of the system who is no admin, with a token (:class:`Member`).

fakeredis and pytest-asyncio come with the ``testing`` extra
(``pip install 'multiframe-keyspace[testing]'``). Nothing here imports them, nor the app, until
a fixture needs them: the plugin loads in every pytest run of the environment, and must not
break one that never uses it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from . import service
from .factories import CannotBuild, Entity, Factory

if TYPE_CHECKING:
    from aiohttp import web
    from aiohttp.test_utils import TestClient
    from redis.asyncio import Redis

    from app.config import Settings

    from ..engine import Keyspace
    from ..schema import Schema
    from ..system import System

    Client = TestClient[web.Request, web.Application]
    ApiClient = Client

__all__ = [
    "ADMIN_TOKEN",
    "ApiClient",
    "CannotBuild",
    "Entity",
    "Factory",
    "Member",
    "bearer",
    "fake_redis_client",
    "keyspace_on",
    "mint_member",
    "serving",
]

ADMIN_TOKEN = "keyspace-testing-admin-token-0123456789abcdef"
"""The operator's admin API key of the ``api`` fixture's app (``MULTIFRAME_ADMIN_TOKEN``)."""
MARKER = "keyspace_system"
EXTRA = "pip install 'multiframe-keyspace[testing]'"


def __getattr__(name: str) -> Any:
    # ApiClient, the ``api`` fixture's type for annotations, made on first use: aiohttp's
    # test utilities are not imported by a run that never asks for it.
    if name == "ApiClient":
        from aiohttp import web
        from aiohttp.test_utils import TestClient

        return TestClient[web.Request, web.Application]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def bearer(token: str) -> dict[str, str]:
    """Request headers authenticating with ``token``."""
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class Member:
    """A user of the served system who is no admin, and a token acting as it."""

    id: str
    token: str
    doc: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


def fake_redis_client() -> Redis:
    """An empty fakeredis client on a server of its own (RedisJSON and Lua, no RediSearch:
    keyspaces on it list through the scan path)."""
    try:
        import fakeredis  # only when a test asks for it (module docstring)
    except ImportError:
        pytest.fail(f"the keyspace.testing fixtures need fakeredis: {EXTRA}", pytrace=False)
    from .fakes import give_sha1hex

    give_sha1hex()
    client: Redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), protocol=2)
    return client


async def keyspace_on(
    client: Redis,
    schema: Schema,
    *,
    use_search: bool | None = None,
    encryption_key: bytes | None = None,
) -> Keyspace:
    """A set-up Keyspace of ``schema`` on ``client`` (``use_search=False``: the scan path even
    where RediSearch is loaded), holding ``encryption_key`` as the service does (its keyring
    made when there is none; docs/encryption.md). KeyringError, as at a service's start, when
    the key cannot serve the keyspace (missing, wrong, retired)."""
    from ..engine import Keyspace

    keyspace = Keyspace(client, schema, use_search=use_search)
    await keyspace.setup()
    await keyspace.unlock(encryption_key)
    return keyspace


@asynccontextmanager
async def serving(client: Redis, settings: Settings) -> AsyncIterator[Client]:
    """The app of ``settings`` on ``client``, started, and a test client over it sending
    ``settings.admin_token`` (when set) with every request that sends no Authorization."""
    from aiohttp.test_utils import TestClient, TestServer

    create_app = service.module("").create_app
    headers = bearer(settings.admin_token) if settings.admin_token else None
    api: Client = TestClient(TestServer(create_app(settings, client=client)), headers=headers)
    await api.start_server()
    try:
        yield api
    finally:
        await api.close()


async def mint_member(api: Client, factory: Factory, **fields: Any) -> Member:
    """Create a user who is no admin (``fields`` as given) and mint a token for it through the
    API, as the client's default (admin) credentials."""
    users = factory.system.users
    doc = (await factory.create(users, **fields)).doc
    user_id = doc[users.id_field]
    response = await api.post(f"/api/{users.collection}/{user_id}/tokens", json={})
    if response.status != 201:
        raise AssertionError(f"minting a token for {user_id}: {await response.text()}")
    return Member(user_id, (await response.json())["token"], doc)


# --- the plugin -----------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(name, namespace=None): the system the keyspace.testing fixtures serve "
        "(default multiframe)",
    )


def _async_fixture(func: Callable[..., Any]) -> Any:
    """An async fixture under pytest-asyncio (whatever its mode); without it, a fixture that
    fails with what to install, so a run not using the kit is unaffected."""
    try:
        import pytest_asyncio
    except ImportError:

        def missing() -> None:
            pytest.fail(f"the keyspace.testing fixtures need pytest-asyncio: {EXTRA}")

        missing.__name__ = func.__name__
        missing.__doc__ = func.__doc__
        return pytest.fixture(name=func.__name__)(missing)
    return pytest_asyncio.fixture(func)


@pytest.fixture
def keyspace_system(request: pytest.FixtureRequest) -> System:
    """The system served: ``request.param`` (indirect parametrization, a name or a System),
    else the nearest ``keyspace_system`` marker, else MultiFrame."""
    from .. import systems
    from ..system import System

    chosen: Any = getattr(request, "param", None)
    namespace = None
    marker = request.node.get_closest_marker(MARKER)
    if chosen is None and marker is not None:
        chosen, namespace = marker.args[0], marker.kwargs.get("namespace")
    if isinstance(chosen, System):
        return chosen
    return systems.load(chosen or systems.DEFAULT, namespace)


@_async_fixture
async def fake_redis() -> AsyncIterator[Redis]:
    """An empty fakeredis server of the test's own."""
    client = fake_redis_client()
    yield client
    await client.aclose()


@_async_fixture
async def ks(fake_redis: Redis, keyspace_system: System, keyspace_settings: Settings) -> Keyspace:
    """A set-up Keyspace of ``keyspace_system`` on ``fake_redis``, holding the encryption key
    of ``keyspace_settings`` (the ``api`` app's), so the two seal alike."""
    return await keyspace_on(
        fake_redis, keyspace_system.schema, encryption_key=keyspace_settings.encryption_key
    )


@pytest.fixture
def factory(ks: Keyspace, keyspace_system: System) -> Factory:
    """Valid documents of ``keyspace_system``, built and created in ``ks``."""
    return Factory(keyspace_system, ks)


@pytest.fixture
def admin_token() -> str:
    """The operator's admin API key the ``api`` fixture's app accepts."""
    return ADMIN_TOKEN


@pytest.fixture
def keyspace_settings(keyspace_system: System, admin_token: str) -> Settings:
    """The ``api`` fixture's settings: the system, ``admin_token``; override the fixture for
    others (rate limits, body size, TTLs...), e.g. ``dataclasses.replace`` of this one."""
    settings: Settings = service.module("config").Settings(
        system=keyspace_system.name, namespace=keyspace_system.namespace, admin_token=admin_token
    )
    return settings


@_async_fixture
async def api(fake_redis: Redis, keyspace_settings: Settings) -> AsyncIterator[Client]:
    """A started app on ``fake_redis`` and a test client sending the admin token."""
    async with serving(fake_redis, keyspace_settings) as client:
        yield client


@_async_fixture
async def member(api: Client, factory: Factory) -> Member:
    """A user who is no admin, created in the keyspace ``api`` serves, and its token."""
    return await mint_member(api, factory)
