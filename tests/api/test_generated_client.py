"""A typed Python client generated from the served /openapi.json, as a service that depends on
this one would make it (README, "Use it from your service"): openapi-python-client must
generate it without a warning for every system, and what it generates must work against the
running service. openapi-generator's validator (a second, Java generator) must accept every
system's document too.

The generator runs as its command, against the served URL, into a directory of the session
(each system's client is made once, whichever test asks first); the package is imported from
there. Its ``asyncio_detailed`` functions are used: the app is served by this event loop."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from redis.asyncio import Redis

from app.config import Settings
from app.main import openapi_document
from app.routes import route_table
from keyspace import System, systems
from keyspace.testing import ADMIN_TOKEN, Factory, serving

GENERATOR = (sys.executable, "-m", "openapi_python_client")
# Headers the service sets itself: each one a response carries must be documented there.
SERVICE_HEADERS = (
    "ETag",
    "Location",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "Retry-After",
    "X-Request-ID",
    "WWW-Authenticate",
    "Allow",
)

_made: dict[str, ModuleType] = {}


@pytest.fixture(scope="session")
def clients_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("generated_clients")
    # No formatting hook (ruff): faster, and the output does not depend on PATH.
    (root / "generator.yaml").write_text("post_hooks: []\n")
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))


async def run(*command: str) -> tuple[int, str]:
    """Run ``command`` without blocking the loop that serves the app it may fetch from."""
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


async def generated(url: str, name: str, root: Path) -> ModuleType:
    """The client openapi-python-client generates from the document at ``url``, imported;
    made once a session for each system ``name``."""
    if name not in _made:
        package = f"client_{name}"
        status, output = await run(
            *GENERATOR,
            "generate",
            "--url",
            url,
            "--meta",
            "none",
            "--output-path",
            str(root / package),
            "--config",
            str(root / "generator.yaml"),
            "--fail-on-warning",
        )
        assert status == 0, output
        assert "warning" not in output.lower(), output
        importlib.import_module(f"{package}.models")
        _made[name] = importlib.import_module(package)
    return _made[name]


def operation(client: ModuleType, system: System, method: str, path: str) -> Any:
    """The generated module of the operation ``method path`` (its tag's package, its
    operationId's module: openapi-python-client's layout)."""
    route = next(r for r in route_table(system) if (r.method, r.path) == (method, path))
    module = re.sub(r"[{}]", "", f"{method.lower()}_{path.strip('/').replace('/', '_')}")
    return importlib.import_module(f"{client.__name__}.api.{route.tag}.{module}")


def undocumented(spec: dict[str, Any], method: str, path: str, response: Any) -> list[str]:
    """The service's own headers ``response`` carries that the document does not list for
    its status on ``method path``."""
    documented = spec["paths"][path][method.lower()]["responses"][str(response.status_code)]
    listed = {h.lower() for h in documented.get("headers", {})}
    return [h for h in SERVICE_HEADERS if h in response.headers and h.lower() not in listed]


@pytest.mark.parametrize("keyspace_system", systems.names(), indirect=True)
async def test_every_system_generates_a_client_without_warnings_that_works(
    keyspace_system: System,
    fake_redis: Redis,
    keyspace_settings: Settings,
    clients_dir: Path,
) -> None:
    system, users = keyspace_system, keyspace_system.users
    factory = Factory(system)  # builds only: the app creates
    async with serving(fake_redis, keyspace_settings) as api:
        url = str(api.make_url(""))
        spec = await (await api.get("/openapi.json")).json()
        client = await generated(f"{url}/openapi.json", system.name, clients_dir)
        models = client.models
        name = users.model.__name__
        collection = f"/api/{users.collection}"
        async with client.AuthenticatedClient(base_url=url, token=ADMIN_TOKEN) as admin:
            body = getattr(models, f"{name}Create").from_dict(factory.build(users))
            post = operation(client, system, "POST", collection)
            created = await post.asyncio_detailed(client=admin, body=body)
            assert created.status_code == 201, created.content
            assert isinstance(created.parsed, getattr(models, name))
            user_id = created.parsed.to_dict()[users.id_field]
            get = operation(client, system, "GET", f"{collection}/{{id}}")
            read = await get.asyncio_detailed(user_id, client=admin)
            assert read.status_code == 200
            assert read.parsed.to_dict() == created.parsed.to_dict()
            assert read.headers["ETag"] == created.headers["ETag"]
            for response, (method, path) in (
                (created, ("POST", collection)),
                (read, ("GET", f"{collection}/{{id}}")),
            ):
                assert not undocumented(spec, method, path, response), (method, path)


async def test_the_multiframe_client_drives_the_service(
    fake_redis: Redis, keyspace_settings: Settings, clients_dir: Path
) -> None:
    """Create a user and a driver, read the driver with its ETag, patch it with If-Match, list
    with filters and a cursor, and read typed errors: all through the generated client."""
    system = systems.load("multiframe")
    factory = Factory(system)
    async with serving(fake_redis, keyspace_settings) as api:
        url = str(api.make_url(""))
        spec = await (await api.get("/openapi.json")).json()
        client = await generated(f"{url}/openapi.json", system.name, clients_dir)
        m = client.models
        responses: list[tuple[str, str, Any]] = []

        async def call(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
            response = await operation(client, system, method, path).asyncio_detailed(
                *args, **kwargs
            )
            responses.append((method, path, response))
            return response

        async with client.AuthenticatedClient(base_url=url, token=ADMIN_TOKEN) as admin:
            role = m.UserCreateRole("designer")
            body = m.UserCreate(username="TypedClient", email="typed@client.io", role=role)
            user = await call("POST", "/api/users", client=admin, body=body)
            assert user.status_code == 201
            assert isinstance(user.parsed, m.User)
            assert user.parsed.role == m.UserRole.DESIGNER
            user_id = user.parsed.user_id
            minted = await call(
                "POST",
                "/api/users/{id}/tokens",
                user_id,
                client=admin,
                body=m.TokenRequest(kind=m.TokenRequestKind.API_KEY),
            )
            assert minted.status_code == 201
            assert isinstance(minted.parsed, m.Token)
            token = minted.parsed.token
        # As the designer: a rate-limited role, whose answers carry RateLimit-* headers.
        async with client.AuthenticatedClient(base_url=url, token=token) as me:
            ids = []
            for cores, status in ((64, "generated"), (128, "optimized")):
                doc = factory.build("drivers", user_id=user_id, status=status)
                doc["chip_data"]["cores"] = cores
                made = await call(
                    "POST", "/api/drivers", client=me, body=m.DriverCreate.from_dict(doc)
                )
                assert made.status_code == 201, made.content
                assert isinstance(made.parsed, m.Driver)
                assert made.headers["Location"].endswith(f"/api/drivers/{made.parsed.driver_id}")
                assert "RateLimit-Remaining" in made.headers
                ids.append(made.parsed.driver_id)
            first = ids[0]

            read = await call("GET", "/api/drivers/{id}", first, client=me)
            assert read.status_code == 200
            assert isinstance(read.parsed, m.Driver)
            assert read.parsed.chip_data.cores == 64
            etag = read.headers["ETag"]
            # Shaped reads parse as the schema that fits: not the model, which would refuse a
            # sparse answer and drop _expanded.
            fields = [m.GetApiDriversIdFieldsItem("status")]
            sparse = await call("GET", "/api/drivers/{id}", first, client=me, fields=fields)
            assert isinstance(sparse.parsed, m.DriverPartial), sparse.content
            assert (sparse.parsed.driver_id, sparse.parsed.status) == (
                first,
                m.DriverPartialStatus("generated"),
            )
            expand = [m.GetApiDriversIdExpandItem("user_id")]
            expanded = await call("GET", "/api/drivers/{id}", first, client=me, expand=expand)
            assert isinstance(expanded.parsed, m.DriverExpanded), expanded.content
            assert expanded.parsed.chip_data.cores == 64
            assert expanded.parsed.field_expanded.user_id.user_id == user_id
            same = await call("GET", "/api/drivers/{id}", first, client=me, if_none_match=etag)
            assert (same.status_code, same.parsed) == (304, None)

            change = m.DriverPatch(status=m.DriverPatchStatus("optimized"))
            patched = await call(
                "PATCH", "/api/drivers/{id}", first, client=me, body=change, if_match=etag
            )
            assert patched.status_code == 200, patched.content
            assert isinstance(patched.parsed, m.Driver)
            assert patched.parsed.status == m.DriverStatus.OPTIMIZED
            assert patched.headers["ETag"] != etag
            stale = await call(
                "PATCH", "/api/drivers/{id}", first, client=me, body=change, if_match=etag
            )
            assert stale.status_code == 412
            assert isinstance(stale.parsed, m.Error)
            assert stale.parsed.error.code == "stale_revision"

            listed: list[str] = []
            cursor: Any = client.types.UNSET
            for _ in range(len(ids) + 1):
                page = await call(
                    "GET",
                    "/api/drivers",
                    client=me,
                    user_id=[user_id],
                    status=["optimized"],
                    cores_min=32,
                    sort=m.GetApiDriversSort("-cores"),
                    limit=1,
                    cursor=cursor,
                )
                assert page.status_code == 200, page.content
                assert isinstance(page.parsed, m.DriverPage)
                assert page.parsed.total == 2
                listed += [d.driver_id for d in page.parsed.items]
                cursor = page.parsed.next_cursor
                if cursor is None:
                    break
            assert listed == [ids[1], ids[0]]  # both optimized now, most cores first

            missing = await call("GET", "/api/drivers/{id}", "driver_nope", client=me)
            assert missing.status_code == 404
            assert isinstance(missing.parsed, m.Error)
            assert missing.parsed.error.code == "not_found"
            assert missing.headers["X-Request-ID"]
        async with client.AuthenticatedClient(base_url=url, token="not-a-token") as nobody:
            refused = await call("GET", "/api/drivers/{id}", first, client=nobody)
            assert refused.status_code == 401
            assert isinstance(refused.parsed, m.Error)
            assert "WWW-Authenticate" in refused.headers
    for method, path, response in responses:
        assert not undocumented(spec, method, path, response), (method, path, response.headers)


JRE = "default-jre-headless"  # Debian's Java runtime (the machine image has OpenJDK 17)


@pytest.fixture(scope="session")
def java() -> str:
    """The Java runtime, installed with apt-get when missing and root (as CI runs); where it
    cannot be, the test skips and names the package."""
    if (found := shutil.which("java")) is not None:
        return found
    if shutil.which("apt-get") is not None and os.geteuid() == 0:
        apt = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "-qq"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for step in (["update"], ["install", "-y", JRE]):
            subprocess.run([*apt, *step], env=env, capture_output=True, timeout=900)
    if (found := shutil.which("java")) is None:
        pytest.skip(f"no Java runtime for openapi-generator: run `apt-get install {JRE}`")
    return found


@pytest.mark.usefixtures("java")
def test_openapi_generator_validates_every_system(tmp_path: Path) -> None:
    """The second generator: openapi-generator's own validator (the jar the
    openapi-generator-cli package ships, on the Java runtime), with no error nor
    recommendation, on the document ``python -m app --openapi`` prints for each system."""
    validator = Path(sys.executable).with_name("openapi-generator-cli")
    # C1 only: a run this short spends most of its time compiling, and this halves it.
    env = {**os.environ, "JAVA_OPTS": "-XX:TieredStopAtLevel=1"}
    running = []
    for name in systems.names():
        path = tmp_path / f"{name}.json"
        document = openapi_document(Settings(system=name), systems.load(name))
        if name == systems.DEFAULT:  # the documented one-liner prints the same document
            dump = [sys.executable, "-m", "app", "--openapi", "--system", name]
            printed = subprocess.run(dump, capture_output=True, check=True, text=True).stdout
            assert json.loads(printed) == document
        path.write_text(json.dumps(document))
        # The JVMs together: each starts slowly, and they do not wait on each other.
        command = [str(validator), "validate", "-i", str(path)]
        pipe, out = subprocess.PIPE, subprocess.STDOUT
        running.append((name, subprocess.Popen(command, stdout=pipe, stderr=out, env=env)))
    for name, process in running:
        output = process.communicate()[0].decode()
        assert process.returncode == 0, (name, output)
        assert "No validation issues detected" in output, (name, output)
