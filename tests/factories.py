"""Seed-shaped MultiFrame documents for tests, with the values the tests read back: thin
wrappers over the testing kit's :class:`~keyspace.testing.Factory` (what a consumer's tests
use), so every test creating a document through here exercises the kit."""

from __future__ import annotations

from typing import Any

from keyspace import COLLAB, DRIVER, NFT, PROCESS, QUEST, USER, Keyspace, Stored, systems
from keyspace.testing import Factory

MULTIFRAME = systems.load()


def _factory(ks: Keyspace) -> Factory:
    return Factory(MULTIFRAME, ks)


def chip(cores: int = 128, chip_type: str = "quantum_processor") -> dict[str, Any]:
    return {"type": chip_type, "cores": cores, "frequency": "4.5GHz", "architecture": "QubitCore"}


async def user(ks: Keyspace, name: str, role: str = "designer", **extra: Any) -> Stored:
    data = {"username": name, "email": f"{name.lower()}@example.com", "role": role, **extra}
    return await _factory(ks).create(USER, **data)


async def driver(ks: Keyspace, user_id: str, cores: int = 128, **extra: Any) -> Stored:
    data = {
        "user_id": user_id,
        "chip_id": "chip_quantum_1",
        "chip_data": chip(cores),
        "version": "2.1.0",
    }
    return await _factory(ks).create(DRIVER, **{**data, **extra})


async def collab(ks: Keyspace, user_id: str, members: list[str], **extra: Any) -> Stored:
    data = {
        "user_id": user_id,
        "chip_id": "chip_quantum_1",
        "chip_data": chip(),
        "collaborators": members,
    }
    return await _factory(ks).create(COLLAB, **{**data, **extra})


async def process(ks: Keyspace, user_id: str, **extra: Any) -> Stored:
    return await _factory(ks).create(PROCESS, **{"user_id": user_id, "chip_data": chip(), **extra})


async def nft(ks: Keyspace, user_id: str, chip_id: str = "chip_quantum_1") -> Stored:
    owner = "0x1234567890123456789012345678901234567890"
    return await _factory(ks).create(NFT, user_id=user_id, chip_id=chip_id, owner=owner)


async def quest(ks: Keyspace, user_id: str, title: str, **extra: Any) -> Stored:
    data = {"user_id": user_id, "title": title, "description": "Design a chip", "reward": "nft_x"}
    return await _factory(ks).create(QUEST, **{**data, **extra})
