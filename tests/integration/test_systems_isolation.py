"""Every system on one Redis server (issue 14): no index, scan, check, backup, reset or ACL rule
of one system touches another's keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError

from app.__main__ import preflight
from keyspace import Keyspace, System, connect, search, systems
from keyspace.acl import service_rules
from keyspace.connection import call
from keyspace.server import EmbeddedRedis
from scripts.cli import run_cli
from scripts.exits import OK, REFUSED, USAGE
from tests.redis_state import snapshot

pytestmark = pytest.mark.redis

SERVED = [systems.load(name) for name in systems.names()]


def owner(served: list[System], key: bytes) -> str:
    """The system a key belongs to: the one whose namespace starts it (MultiFrame: none)."""
    text = key.decode()
    for system in served:
        if system.namespace and text.startswith(system.namespace):
            return system.name
    return systems.DEFAULT


def by_system(state: dict[bytes, object]) -> dict[str, dict[bytes, object]]:
    out: dict[str, dict[bytes, object]] = {s.name: {} for s in SERVED}
    for key, value in state.items():
        out[owner(SERVED, key)][key] = value
    return out


async def cli(url: str, system: System, *argv: str) -> int:
    return await run_cli(["--redis-url", url, "--system", system.name, *argv])


async def loaded(server: EmbeddedRedis) -> None:
    """Every system's demo data and one token per system, on the one server."""
    for system in SERVED:
        assert await cli(server.url, system, "load-demo") == OK, system.name
        client = connect(server.url)
        try:
            ks = Keyspace(client, system.schema)
            users = system.users
            async for key in client.scan_iter(match=users.names.doc_match(users.prefix)):
                user_id = key.decode()[len(users.key("")) :]
                stored = await ks.get(users, user_id)
                await ks.tokens.mint(user_id, stored.raw)
                break
        finally:
            await client.aclose()


def test_there_are_three_systems_or_more() -> None:
    assert {"multiframe", "normaldance", "engineering_forge"} <= set(systems.names())


async def test_each_system_has_its_own_keys_indexes_and_tokens(
    redis_server: EmbeddedRedis, real_client: Redis
) -> None:
    await loaded(redis_server)
    state = by_system(await snapshot(real_client))
    for system in SERVED:
        kinds = {
            k.decode().removeprefix(system.namespace).split(":")[0] for k in state[system.name]
        }
        assert kinds, f"{system.name} wrote nothing"
        assert "mf" in kinds, f"{system.name} has no reserved keys of its own"
        tokens = [k for k in state[system.name] if b":token:" in k or k.startswith(b"mf:token:")]
        assert tokens, f"{system.name}'s token is not in its namespace"
    for name in await search.list_indexes(real_client):
        system = next(s for s in SERVED if owner(SERVED, name.encode()) == s.name)
        assert name.startswith(system.schema.names.reserved + "idx:"), name
        info = search.parse_info(await call(real_client, "FT.INFO", name))
        definition = search.parse_info(info["index_definition"])
        prefixes = [p.decode() for p in definition["prefixes"]]
        assert all(owner(SERVED, p.encode()) == system.name for p in prefixes), (name, prefixes)
    for system in SERVED:  # check reads only its own keys: nothing of the others is "odd"
        assert await cli(redis_server.url, system, "check") == OK, system.name


async def test_reset_of_one_system_leaves_the_others_byte_identical(
    redis_server: EmbeddedRedis, real_client: Redis
) -> None:
    await loaded(redis_server)
    before = by_system(await snapshot(real_client))
    for system in SERVED:
        if system.namespace:  # MultiFrame's reset wants config mode 'development'
            assert await cli(redis_server.url, system, "reset", "--yes-really") == OK
            after = by_system(await snapshot(real_client))
            for other in SERVED:
                if other.name != system.name:
                    assert after[other.name] == before[other.name], (system.name, other.name)
            assert not [k for k in after[system.name] if b"mf:pause" in k]
            before = after


async def test_a_backup_of_one_system_restores_without_the_others(
    redis_server: EmbeddedRedis, real_client: Redis, tmp_path: Path
) -> None:
    await loaded(redis_server)
    before = by_system(await snapshot(real_client))
    for system in SERVED:
        path = tmp_path / f"{system.name}.mfbak"
        assert await cli(redis_server.url, system, "backup", str(path)) == OK
        target = EmbeddedRedis(tmp_path / f"empty-{system.name}")
        target.start()
        try:
            assert await cli(target.admin_url, system, "restore", str(path)) == OK
            client = connect(target.admin_url)
            try:
                restored = by_system(await snapshot(client))
            finally:
                await client.aclose()
        finally:
            target.stop()
        for other in SERVED:
            if other.name != system.name:
                assert restored[other.name] == {}, (system.name, other.name)
        documents = {k: v for k, v in before[system.name].items() if _document(system, k)}
        assert documents and documents.items() <= restored[system.name].items()


def _document(system: System, key: bytes) -> bool:
    text = key.decode()
    return any(text.startswith(spec.key("")) for spec in system.schema.entities)


async def test_a_systems_service_user_cannot_touch_another_systems_keys(
    redis_server: EmbeddedRedis, real_client: Redis
) -> None:
    await loaded(redis_server)
    state = by_system(await snapshot(real_client))
    for system in SERVED:
        user = f"isolation-{system.name}"
        await call(real_client, "ACL", "SETUSER", user, "on", ">pw", *service_rules(system.schema))
        client = Redis(host="127.0.0.1", port=redis_server.port, username=user, password="pw")
        try:
            mine = next(iter(state[system.name]))
            assert await client.exists(mine) == 1
            for other in SERVED:
                if other.name == system.name:
                    continue
                theirs = next(iter(state[other.name]))
                with pytest.raises(NoPermissionError):
                    await client.exists(theirs)
        finally:
            await client.aclose()
            await call(real_client, "ACL", "DELUSER", user)


async def test_reindex_and_repair_of_one_system_leave_the_others_byte_identical(
    redis_server: EmbeddedRedis, real_client: Redis
) -> None:
    await loaded(redis_server)
    indexes_before = await search.list_indexes(real_client)
    for system in SERVED:
        before = by_system(await snapshot(real_client))
        # Damage one of its own claims, which check --repair restores.
        claim = next(k for k in before[system.name] if b"mf:uniq:" in k)
        await real_client.delete(claim)
        assert await cli(redis_server.url, system, "check", "--repair") == OK  # found, fixed
        assert await real_client.exists(claim) == 1
        assert await cli(redis_server.url, system, "reindex") == OK
        after = by_system(await snapshot(real_client))
        assert after[system.name] == before[system.name], system.name
        for other in SERVED:
            if other.name != system.name:
                assert after[other.name] == before[other.name], (system.name, other.name)
        # Its own indexes were rebuilt; every other system's index is the same version.
        indexes = await search.list_indexes(real_client)
        others = {n for n in indexes if owner(SERVED, n.encode()) != system.name}
        assert others == {n for n in indexes_before if owner(SERVED, n.encode()) != system.name}
        indexes_before = indexes


@pytest.mark.parametrize("command", [["generate", "--users", "2"], ["import-legacy"]])
async def test_multiframe_only_commands_refuse_another_system(
    redis_server: EmbeddedRedis, real_client: Redis, command: list[str]
) -> None:
    normaldance = next(s for s in SERVED if s.name == "normaldance")
    assert await cli(redis_server.url, normaldance, *command) == REFUSED
    assert await snapshot(real_client) == {} or all(
        owner(SERVED, k) == "normaldance" for k in await snapshot(real_client)
    )


async def test_a_user_without_the_systems_keys_gets_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A running MultiFrame service's redis.url holds MultiFrame's service user; another
    system's commands on it are told why, not a traceback about a missing module."""
    server = EmbeddedRedis(tmp_path / "mf")  # its service user: MultiFrame's key patterns only
    server.start()
    try:
        normaldance = next(s for s in SERVED if s.name == "normaldance")
        for command in (["check"], ["load-demo"], ["backup", str(tmp_path / "b.gz")]):
            assert await cli(server.url, normaldance, *command) == USAGE, command
            err = capsys.readouterr().err
            assert "may not touch normaldance:mf:probe" in err and "Traceback" not in err
        with pytest.raises(SystemExit, match="may not touch normaldance:mf:probe") as exited:
            preflight(server.url, normaldance.schema.names.probe_key())
        assert server.acl.service_password not in str(exited.value)
    finally:
        server.stop()
