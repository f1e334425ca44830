"""Moving a legacy record into the quarantine is one commit: all of it, or nothing."""

from __future__ import annotations

import pytest

from keyspace import Keyspace, crypto, quarantine
from keyspace.crypto import Cipher
from keyspace.errors import Paused

KEY, RAW = "user:user_4", b'{"user_id": "user_4", "email": "not-an-email"}'
K1 = bytes(range(32))


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


def test_a_sealed_entry_is_checked_by_its_form() -> None:
    sealed = "0aa630ac:" + "A" * 40
    assert (
        quarantine.problem({"value_sealed": sealed, "reason": "r", "at": "t", "entity": "e"})
        is None
    )
    assert quarantine.problem({"value_sealed": "x", "reason": "r", "at": "t", "entity": "e"})
    assert quarantine.problem(
        {"value": "x", "value_sealed": sealed, "reason": "r", "at": "t", "entity": "e"}
    )


async def test_a_sealed_entry_opens_with_the_key_and_only_under_its_own_name(
    ks: Keyspace,
) -> None:
    cipher = Cipher({crypto.key_id(K1): K1}, crypto.key_id(K1), b"b" * 32)
    names = ks.schema.names
    await ks.client.set(KEY, RAW)
    await ks.client.hset(names.crypto_key(), "current", crypto.key_id(K1))
    move = quarantine.plan_move(names, KEY, RAW, "user", "why", cipher)
    assert (await ks.commit(move)).ok
    stored = await ks.client.hgetall(names.quarantine_key(KEY))
    assert b"not-an-email" not in repr(stored).encode() and b"value" not in stored
    entry = await quarantine.read(ks.client, names, KEY, cipher)
    assert entry is not None and entry.value == RAW and not entry.unreadable
    blind = await quarantine.read(ks.client, names, KEY)
    assert blind is not None and blind.value == b"" and "key id" in blind.unreadable
    other = "user:user_9"  # the same hash copied under another record's name
    await ks.client.hset(names.quarantine_key(other), mapping=dict(stored.items()))
    moved = await quarantine.read(ks.client, names, other, cipher)
    assert moved is not None and moved.value == b"" and "does not open" in moved.unreadable
    # The keyring naming another key refuses the move (a rotation began meanwhile).
    await ks.client.set("user:user_8", RAW)
    await ks.client.hset(names.crypto_key(), "current", "ffffffff")
    late = quarantine.plan_move(names, "user:user_8", RAW, "user", "why", cipher)
    assert (await ks.commit(late)).error == "rekeyed"
    assert await ks.client.get("user:user_8") == RAW


async def test_a_restore_and_a_drop_of_one_entry_exclude_each_other(ks: Keyspace) -> None:
    from scripts.quarantine import restore

    names, fixed = (
        ks.schema.names,
        b'{"user_id": "user_4", "username": "u4", "email": "a@b.io", "role": "designer"}',
    )

    async def quarantined() -> quarantine.Entry:
        await ks.client.set(KEY, RAW)
        assert (await ks.commit(quarantine.plan_move(names, KEY, RAW, "user", "email"))).ok
        entry = await _entry(ks)
        assert entry is not None
        return entry

    # The drop commits first: the restore, holding the entry as read before, does nothing.
    read = await quarantined()
    assert (await ks.commit(quarantine.plan_drop(names, read))).ok
    assert "changed meanwhile" in await restore(ks, read, fixed)
    assert not await ks.client.exists(KEY)
    # The restore commits first: the drop, holding the entry as read before, does nothing.
    read = await quarantined()
    assert await restore(ks, read, fixed) == ""
    assert not (await ks.commit(quarantine.plan_drop(names, read))).ok
    assert (await ks.get(ks.schema.users, "user_4")).doc["email"] == "a@b.io"
    assert await _entry(ks) is None
