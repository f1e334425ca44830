"""The testing kit (keyspace.testing): its factories on every declaration of every system,
its plugin as a consumer's project loads it (examples/consumer, in a process of its own), and
a pytest run of an environment without its extra, which it must not break."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from keyspace import System, ValidationFailed, systems
from keyspace.declare import Check, integer, string, table
from keyspace.documents import for_create
from keyspace.ids import new_id
from keyspace.schema import IdStrategy, Schema
from keyspace.system import ADMIN
from keyspace.testing import CannotBuild, Factory, fake_redis_client, keyspace_on
from keyspace.testing.values import examples

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "consumer"
SYSTEMS = [systems.load(name) for name in systems.names()]


def _stand_in(system: System, spec_name: str, doc: dict[str, object]) -> str:
    spec = system.schema.entity(spec_name)
    if spec.derive_id is not None:
        return spec.derive_id(doc)
    if spec.id_strategy in (IdStrategy.CUID, IdStrategy.UUID):
        return new_id(spec.id_strategy)
    return f"{spec.prefix}_1"


@pytest.mark.parametrize("system", SYSTEMS, ids=lambda s: s.name)
def test_every_entity_is_built_valid_with_new_unique_values(system: System) -> None:
    factory = Factory(system)
    for spec in system.schema.entities:
        first, second = factory.build(spec), factory.build(spec.collection)
        for doc in (first, second):
            for_create(spec, doc, _stand_in(system, spec.name, doc))
        for unique in spec.uniques:
            if first.get(unique.field) is not None:
                one, two = (unique.normalize(d[unique.field]) for d in (first, second))
                assert one != two, (spec.name, unique.field)
        if spec is system.users:
            assert system.role_of(first) != ADMIN, (system.name, first)


@pytest.mark.parametrize("system", SYSTEMS, ids=lambda s: s.name)
async def test_every_entity_is_created_with_what_it_refers_to(system: System) -> None:
    client = fake_redis_client()
    try:
        ks = await keyspace_on(client, system.schema)
        factory = Factory(system, ks)
        for spec in system.schema.entities:
            for _ in range(2):
                stored = await factory.create(spec)
                assert (await ks.get(spec, stored.doc[spec.id_field])).doc == stored.doc
    finally:
        await client.aclose()


def test_given_fields_are_kept_and_a_bad_one_is_the_keyspaces_error() -> None:
    factory = Factory(systems.load())
    doc = factory.build("users", username="Ada", role="admin")
    assert doc["username"] == "Ada" and doc["role"] == "admin" and "@" in doc["email"]
    with pytest.raises(ValidationFailed, match="email"):
        factory.build("users", email="not an address")
    with pytest.raises(KeyError, match="no entity 'pilots'"):
        factory.build("pilots")


PEOPLE = table("person", collection="people", fields=(string("name"),))
RANGES = table(
    "range",
    collection="ranges",
    fields=(integer("low"), integer("high")),
    checks=(Check("high must exceed low", lambda m: m.high > m.low),),
)
TOY = System(
    name="toy", title="Toy", schema=Schema((PEOPLE, RANGES)), namespace="toy:", principal="person"
)


def test_a_rule_the_guesswork_misses_names_the_fields_to_give() -> None:
    factory = Factory(TOY)
    with pytest.raises(CannotBuild, match="high must exceed low; give the field"):
        factory.build("ranges")
    assert factory.build("ranges", low=1, high=2) == {"low": 1, "high": 2}
    assert factory.build("people")["name"].startswith("name-")


async def test_create_needs_a_keyspace() -> None:
    with pytest.raises(RuntimeError, match="builds only"):
        await Factory(systems.load()).create("users")


@pytest.mark.parametrize(
    "pattern",
    [
        r"^0x[0-9a-fA-F]{40}$",
        r"^[A-Z][A-Z0-9]{1,11}$",
        r"^c[0-9a-z]{24}$",
        r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        r"^-?[0-9]+(\.[0-9]+)?$",
        r"^(draft|live)-\d{2,}$",
    ],
)
def test_pattern_examples_match_and_differ_also_folded(pattern: str) -> None:
    made = [next(examples(pattern, n)) for n in range(1, 300)]
    assert all(re.fullmatch(pattern, text) for text in made)
    assert len({text.lower() for text in made}) == len(made)


# --- the plugin as installed -----------------------------------------------------------------


def _installed(tmp: Path) -> Path:
    """A directory holding the package's pytest11 entry point as installed metadata (what
    ``pip install`` writes from pyproject.toml), so a run on it finds the plugin as a
    consumer's does, whatever this environment's own install of the checkout holds."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    info = tmp / "site" / "multiframe_keyspace_kit-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: multiframe-keyspace-kit\n")
    lines = [f"{k} = {v}" for k, v in project["entry-points"]["pytest11"].items()]
    (info / "entry_points.txt").write_text("[pytest11]\n" + "\n".join(lines) + "\n")
    return info.parent


def _env(*first: Path) -> dict[str, str]:
    """``first`` and this checkout first on the path: the shared environment may hold another
    install of the package."""
    paths = [*map(str, first), str(ROOT), os.environ.get("PYTHONPATH")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def _pytest(cwd: Path, *args: str, env: dict[str, str]) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def test_the_pytest11_entry_point_and_the_testing_extra_are_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["pytest11"] == {"keyspace.testing": "keyspace.testing"}
    extras = project["optional-dependencies"]
    assert set(extras["testing"]) <= set(extras["dev"])  # one pin of each, used by both
    assert any(p.startswith("fakeredis[") for p in extras["testing"])


def test_the_example_consumer_project_passes_with_the_plugin_its_entry_point_loads(
    tmp_path: Path,
) -> None:
    code, out = _pytest(EXAMPLE, "-q", env=_env(_installed(tmp_path)))
    assert code == 0, out
    assert re.search(r"\b7 passed\b", out), out


def test_a_consumer_with_an_app_package_of_its_own_uses_the_api_fixture(tmp_path: Path) -> None:
    # Its own ``app`` first on the path (the project directory, as pytest runs it), as is
    # common: the kit loads the service's under a private name (keyspace/testing/service.py).
    project = tmp_path / "project"
    (project / "app").mkdir(parents=True)
    (project / "app" / "__init__.py").write_text('GREETING = "consumer app"\n')
    (project / "app" / "config.py").write_text("PORT = 1\n")
    (project / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    (project / "conftest.py").write_text(
        "import dataclasses\n\nimport pytest\n\n\n"
        "@pytest.fixture\n"
        "def keyspace_settings(keyspace_settings):\n"
        "    return dataclasses.replace(keyspace_settings, max_body=16)\n"
    )
    (project / "test_consumer.py").write_text(
        "import sys\n\nimport app\nfrom app.config import PORT\n\n\n"
        "async def test_kit_api(api, member):\n"
        '    big = await api.post("/api/users", json={"username": "x" * 40})\n'
        "    assert big.status == 413, await big.text()\n"
        '    mine = await api.get(f"/api/users/{member.id}", headers=member.headers)\n'
        "    assert mine.status == 200\n"
        '    assert app.GREETING == "consumer app" and PORT == 1\n'
        '    assert sys.modules["app"] is app\n'
        '    assert "_multiframe_service_app.main" in sys.modules\n'
    )
    code, out = _pytest(project, "-q", env=_env(_installed(tmp_path)))
    assert code == 0, out
    assert re.search(r"\b1 passed\b", out), out


def test_a_consumer_configuring_an_encryption_key_gets_fixtures_that_seal_alike(
    tmp_path: Path,
) -> None:
    # ``ks``, ``factory`` and ``member`` hold the key of ``keyspace_settings`` as the ``api``
    # app does: what the factory stores is sealed, found by ``?email=`` and claimed.
    project = tmp_path / "project"
    project.mkdir()
    (project / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    (project / "conftest.py").write_text(
        "import dataclasses\n\nimport pytest\n\n\n"
        "@pytest.fixture\n"
        "def keyspace_settings(keyspace_settings):\n"
        "    return dataclasses.replace(keyspace_settings, encryption_key=bytes(range(32)))\n"
    )
    (project / "test_sealed.py").write_text(
        "import orjson\n\nfrom keyspace import crypto\n\n\n"
        "async def test_kit_seals(ks, factory, api, member, fake_redis):\n"
        '    made = await factory.create("users", email="Kit@Example.com")\n'
        '    uid = made.doc["user_id"]\n'
        '    raw = orjson.loads(await fake_redis.execute_command("JSON.GET", f"user:{uid}", "."))\n'
        '    assert crypto.parse_sealed(raw["email"]), raw\n'
        '    assert made.doc["email"] == "Kit@Example.com"\n'
        '    assert (await fake_redis.hget("mf:crypto", "plaintext")) == b"0"\n'
        '    found = await api.get("/api/users", params={"email": "kit@example.com"})\n'
        '    assert [u["user_id"] for u in (await found.json())["items"]] == [uid]\n'
        '    body = {"username": "twin", "email": "KIT@example.com", "role": "designer"}\n'
        '    assert (await api.post("/api/users", json=body)).status == 409\n'
        "    mine = orjson.loads(\n"
        '        await fake_redis.execute_command("JSON.GET", f"user:{member.id}", ".")\n'
        "    )\n"
        '    assert crypto.parse_sealed(mine["email"]), mine\n'
        '    seen = await api.get(f"/api/users/{member.id}", headers=member.headers)\n'
        '    assert (await seen.json())["email"] == member.doc["email"]\n'
        '    assert (await ks.get(ks.schema.users, uid)).doc["email"] == "Kit@Example.com"\n'
    )
    code, out = _pytest(project, "-q", env=_env(_installed(tmp_path)))
    assert code == 0, out
    assert re.search(r"\b1 passed\b", out), out


def test_readme_shows_the_example_test_exactly() -> None:
    readme = (ROOT / "README.md").read_text()
    example = (EXAMPLE / "tests" / "test_drivers_report.py").read_text()
    assert f"```python\n{example}```" in readme
    assert len(example.strip().splitlines()) <= 14  # the ten-line test, and its imports


def test_the_plugin_loads_and_leaves_other_tests_alone_without_its_extra(
    tmp_path: Path,
) -> None:
    # A fakeredis and a pytest_asyncio that cannot be imported, first on the path.
    for name in ("fakeredis", "pytest_asyncio"):
        (tmp_path / "shadow" / name).mkdir(parents=True)
        (tmp_path / "shadow" / name / "__init__.py").write_text("raise ImportError('absent')\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "test_plain.py").write_text("def test_plain():\n    assert True\n")
    (project / "test_kit.py").write_text("def test_kit(ks):\n    assert ks\n")
    env = _env(tmp_path / "shadow", _installed(tmp_path))
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, keyspace.testing; "
            "print(sorted(m for m in ('fakeredis', 'pytest_asyncio', 'app', 'aiohttp.test_utils')"
            " if m in sys.modules))",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert imported.stdout.strip() == "[]"
    # pytest-aiohttp's plugin needs pytest-asyncio: an environment without one has neither.
    # -p keyspace.testing as well (this repository's addopts do): the entry point's name, so
    # the plugin is registered once.
    args = ("-p", "no:asyncio", "-p", "no:aiohttp", "-p", "keyspace.testing", "-q")
    code, out = _pytest(project, *args, env=env)
    assert code == 1, out
    assert re.search(r"\b1 passed\b", out) and re.search(r"\b1 error\b", out), out
    assert "pip install 'multiframe-keyspace[testing]'" in out, out


def test_a_bare_fakeredis_client_commits_without_the_kit(tmp_path: Path) -> None:
    # commit.lua names revisions with redis.sha1hex, which fakeredis's Lua lacks: a team's
    # own fakeredis client (no kit, no conftest patch) must still commit.
    script = tmp_path / "bare.py"
    script.write_text(
        "import asyncio, fakeredis\n"
        "from keyspace import Keyspace, USER\n"
        "async def main():\n"
        "    ks = Keyspace(fakeredis.FakeAsyncRedis(protocol=2))\n"
        "    await ks.setup()\n"
        "    body = {'username': 'ann', 'email': 'ann@example.com', 'role': 'designer'}\n"
        "    print((await ks.create(USER, body)).doc['user_id'])\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "user_1"
