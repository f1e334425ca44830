"""The kit serves every system: pick one with a marker, or parametrize ``keyspace_system``."""

from __future__ import annotations

import pytest
from keyspace import System, systems
from keyspace.testing import ApiClient, Factory, Member


@pytest.mark.keyspace_system("normaldance")
async def test_a_marker_chooses_the_system(
    keyspace_system: System, api: ApiClient, member: Member
) -> None:
    assert keyspace_system.name == "normaldance"
    me = await api.get(f"/api/users/{member.id}", headers=member.headers)
    assert me.status == 200
    assert (await me.json())["isAdmin"] is False


@pytest.mark.parametrize("keyspace_system", systems.names(), indirect=True)
async def test_every_collection_of_every_system_is_built_and_served(
    keyspace_system: System, factory: Factory, api: ApiClient
) -> None:
    for spec in keyspace_system.schema.entities:
        created = (await factory.create(spec)).doc[spec.id_field]
        got = await api.get(f"/api/{spec.collection}/{created}")
        assert got.status == 200, (spec.collection, await got.text())
