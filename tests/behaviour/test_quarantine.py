"""Moving a legacy record into the quarantine is one commit: all of it, or nothing."""

from __future__ import annotations

import pytest

from keyspace import Keyspace, quarantine
from keyspace.errors import Paused

KEY, RAW = "user:user_4", b'{"user_id": "user_4", "email": "not-an-email"}'


async def _entry(ks: Keyspace) -> quarantine.Entry | None:
    return await quarantine.read(ks.client, ks.schema.names, KEY)


async def test_the_move_takes_the_record_out_whole(ks: Keyspace) -> None:
    await ks.client.set(KEY, RAW)
    result = await ks.commit(quarantine.plan_move(ks.schema.names, KEY, RAW, "user", "email: bad"))
    assert result.ok
    assert not await ks.client.exists(KEY)
    entry = await _entry(ks)
    assert entry is not None and (entry.value, entry.reason, entry.entity) == (
        RAW,
        "email: bad",
        "user",
    )
    assert entry.at.endswith("Z") and await quarantine.count(ks.client, ks.schema.names) == 1
    assert [e.key for e in await quarantine.entries(ks.client, ks.schema.names)] == [KEY]


async def test_a_record_changed_since_read_or_already_quarantined_is_not_moved(
    ks: Keyspace,
) -> None:
    names = ks.schema.names
    await ks.client.set(KEY, RAW + b" ")  # changed since the import read it
    result = await ks.commit(quarantine.plan_move(names, KEY, RAW, "user", "why"))
    assert result.error == "stale"
    assert await ks.client.get(KEY) == RAW + b" " and await _entry(ks) is None

    await ks.client.set(KEY, RAW)
    await ks.client.hset(names.quarantine_key(KEY), "value", b"earlier")
    result = await ks.commit(quarantine.plan_move(names, KEY, RAW, "user", "why"))
    assert result.error == "already_exists"
    assert await ks.client.get(KEY) == RAW
    entry = await _entry(ks)
    assert entry is not None and entry.value == b"earlier"  # neither place changed


async def test_nothing_moves_while_the_keyspace_is_paused(ks: Keyspace) -> None:
    await ks.client.set(KEY, RAW)
    await ks.client.set(ks.schema.names.pause_key(), b"{}")
    with pytest.raises(Paused):
        await ks.commit(quarantine.plan_move(ks.schema.names, KEY, RAW, "user", "why"))
    assert await ks.client.get(KEY) == RAW and await _entry(ks) is None


def test_entries_are_checked_as_a_backup_restores_them() -> None:
    assert quarantine.problem({"value": "x", "reason": "r", "at": "t", "entity": "user"}) is None
    assert (
        quarantine.problem({"value_base64": "/w==", "reason": "r", "at": "t", "entity": "e"})
        is None
    )
    assert quarantine.problem({"value": "x", "reason": "r", "at": "t"}) is not None
    assert quarantine.problem(
        {"value": "x", "value_base64": "eA==", "reason": "r", "at": "t", "entity": "e"}
    )
    assert quarantine.problem(
        {"value_base64": "not base64!", "reason": "r", "at": "t", "entity": "e"}
    )
    assert quarantine.problem({"value": "x", "reason": "r", "at": "t", "entity": "e", "x": "y"})
