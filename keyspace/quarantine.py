"""The quarantine: legacy records ``import-legacy`` could not convert, kept unchanged and out of
the live keyspace (``multiframe-admin quarantine``, docs/keyspace.md §2).

An entry is a hash under ``mf:quarantine:<original key>`` (:meth:`Names.quarantine_key`):
``value`` (the record's exact bytes; ``value_base64`` instead when they are not UTF-8, so a
backup, whose lines are JSON text, carries them unchanged), ``reason``, ``at`` (when it was
moved, UTC ISO-8601) and ``entity``. On an encrypted keyspace (docs/encryption.md) the record
may hold sensitive values that could not be told apart (it did not convert), so the whole
record is sealed instead: ``value_sealed`` is ``<key id>:<base64url>``, AES-GCM under the
current data key with the entry's key name as associated data (an entry copied under another
key does not open); ``encrypt`` and ``rotate-key`` seal and re-seal entries like documents.
Moving a record in is one ``commit.lua`` plan: the key must still hold exactly the string read
and no entry may exist yet; the plan deletes the key and writes the entry, so there is no
moment where the record is in both places or neither. A record is never changed in place
(only sealed again, the same bytes): a person restores one (re-validated, and created through
the same commit path as any document, sealed like it, the entry deleted in that commit) or
drops it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis

from .crypto import Cipher, Undecryptable, sealed_bytes_kid
from .keys import Names
from .plan import Plan

VALUES = ("value", "value_base64", "value_sealed")
FIELDS = frozenset({*VALUES, "reason", "at", "entity"})
BATCH = 500


@dataclass(frozen=True)
class Entry:
    """One quarantined record: its original ``key`` and exact ``value``."""

    key: str
    value: bytes
    reason: str
    at: str
    entity: str
    sealed_kid: str = ""  # the key id of a sealed record ("": stored unsealed)
    unreadable: str = ""  # why a sealed record does not open (value is empty then)
    # The hash field holding the record and its bytes as read: a restore's or a drop's
    # commit checks them (:func:`check_unchanged`), so of a restore and a drop racing on
    # one entry only the first to commit does anything.
    stored: tuple[str, bytes] = ("", b"")

    @property
    def text(self) -> str:
        """The value for a terminal (bytes that are not UTF-8 as ``\\xff``)."""
        return self.value.decode("utf-8", "backslashreplace")


def plan_move(
    names: Names, key: str, raw: bytes, entity: str, reason: str, cipher: Cipher | None = None
) -> Plan:
    """Move the legacy string ``raw`` at ``key`` into the quarantine, atomically: ``stale``
    when the key no longer holds exactly ``raw``, ``already_exists`` when ``key`` has an
    entry already (restore or drop it first); nothing is written then. With ``cipher`` (an
    encrypted keyspace) the record is sealed, and the commit checks the keyring still names
    its key (``rekeyed`` otherwise: read the keyring again and plan it again)."""
    entry = names.quarantine_key(key)
    plan = Plan(names.pause_key())
    plan.check("string", key, raw)
    plan.check("absent", entry)
    if cipher is not None:
        plan.check("hequals", names.crypto_key(), "current", cipher.current)
    plan.write("del", key)
    sealed = None if cipher is None else seal(cipher, entry, raw)
    for name, value in stored_fields(raw, entity, reason, sealed).items():
        plan.write("hset", entry, name, value)
    return plan


def _aad(entry_key: str) -> bytes:
    return b"mf-quarantine-v1\x00" + entry_key.encode()


def seal(cipher: Cipher, entry_key: str, raw: bytes) -> str:
    """``raw`` as the ``value_sealed`` of the entry at ``entry_key``."""
    return cipher.seal_bytes(raw, _aad(entry_key))


def stored_fields(
    raw: bytes, entity: str, reason: str, sealed: str | None = None
) -> dict[str, str | bytes]:
    """The hash fields of an entry for ``raw``, or for its ``sealed`` form (see the module
    docstring)."""
    value: dict[str, str | bytes]
    if sealed is not None:
        value = {"value_sealed": sealed}
    else:
        try:
            raw.decode("utf-8")
            value = {"value": raw}
        except UnicodeDecodeError:
            value = {"value_base64": base64.b64encode(raw).decode()}
    at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return {**value, "reason": reason, "at": at, "entity": entity}


def problem(fields: Mapping[str, str]) -> str | None:
    """Why decoded hash ``fields`` are no quarantine entry (a backup being verified), or None."""
    if not set(fields) <= FIELDS or not {"reason", "at", "entity"} <= set(fields):
        return f"holds the fields {', '.join(sorted(FIELDS))} (one of {', '.join(VALUES)})"
    if sum(name in fields for name in VALUES) != 1:
        return f"holds exactly one of {', '.join(VALUES)}"
    if "value_base64" in fields:
        try:
            base64.b64decode(fields["value_base64"], validate=True)
        except binascii.Error:
            return "value_base64 is not base64"
    if "value_sealed" in fields and sealed_bytes_kid(fields["value_sealed"]) is None:
        return "value_sealed is not <key id>:<base64url>"
    return None


def _entry(
    key: str, entry_key: str, fields: Mapping[bytes | str, bytes | str], cipher: Cipher | None
) -> Entry | None:
    text = {_str(k): v if isinstance(v, bytes) else v.encode() for k, v in fields.items()}
    kid, unreadable = "", ""
    if "value" in text:
        value, field = text["value"], "value"
    elif "value_base64" in text:
        value, field = base64.b64decode(text["value_base64"]), "value_base64"
    elif "value_sealed" in text:
        sealed, field = text["value_sealed"].decode("utf-8", "replace"), "value_sealed"
        kid = sealed_bytes_kid(sealed) or "?"
        value, unreadable = _opened(cipher, entry_key, sealed, kid)
    else:
        return None  # deleted since the SCAN (HGETALL of nothing), or not an entry
    return Entry(
        key,
        value,
        text.get("reason", b"").decode("utf-8", "replace"),
        text.get("at", b"").decode("utf-8", "replace"),
        text.get("entity", b"").decode("utf-8", "replace"),
        kid,
        unreadable,
        (field, text[field]),
    )


def _opened(cipher: Cipher | None, entry_key: str, sealed: str, kid: str) -> tuple[bytes, str]:
    """The record of a sealed entry, or b"" and why it does not open."""
    if cipher is None:
        return b"", f"sealed under key id {kid}: configure the keyspace's encryption key"
    try:
        return cipher.open_bytes(sealed, _aad(entry_key)), ""
    except KeyError:
        return b"", f"sealed under key id {kid}, which this process does not hold"
    except Undecryptable:
        return b"", "the sealed record does not open (changed outside the service)"


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def read(client: Redis, names: Names, key: str, cipher: Cipher | None = None) -> Entry | None:
    """The entry of the original ``key``, or None; a sealed one opened with ``cipher``."""
    entry = names.quarantine_key(key)
    return _entry(key, entry, await client.hgetall(entry), cipher)


async def entries(client: Redis, names: Names, cipher: Cipher | None = None) -> list[Entry]:
    """Every entry, by original key (SCAN, never KEYS; each entry once)."""
    found = {k async for k in client.scan_iter(match=names.quarantine_match(), count=BATCH)}
    ordered = sorted(k.decode("utf-8", "backslashreplace") for k in found)
    out: list[Entry] = []
    for start in range(0, len(ordered), BATCH):
        batch = ordered[start : start + BATCH]
        async with client.pipeline(transaction=False) as pipe:
            for entry in batch:
                pipe.hgetall(entry)
            replies = await pipe.execute(raise_on_error=False)
        for entry, reply in zip(batch, replies, strict=True):
            got = None
            if isinstance(reply, dict):
                got = _entry(names.quarantined_key(entry), entry, reply, cipher)
            if got is not None:
                out.append(got)
    return out


async def count(client: Redis, names: Names) -> int:
    """How many entries there are (``check`` reports it as information)."""
    found = {k async for k in client.scan_iter(match=names.quarantine_match(), count=BATCH)}
    return len(found)


def check_unchanged(names: Names, plan: Plan, entry: Entry) -> None:
    """Add to ``plan`` the check that ``entry`` still holds the record as read (refused
    ``rekeyed`` with the value field as its field otherwise: see :func:`changed`)."""
    field, stored = entry.stored
    plan.check("hequals", names.quarantine_key(entry.key), field, stored)


def changed(field: str) -> bool:
    """Whether a commit refused ``rekeyed`` on ``field`` met an entry changed since read
    (restored, dropped, or sealed again), not the keyring."""
    return field in VALUES


def plan_drop(names: Names, entry: Entry) -> Plan:
    """Delete ``entry`` (what it held is gone for good), if unchanged since read."""
    plan = Plan(names.pause_key())
    check_unchanged(names, plan, entry)
    plan.write("del", names.quarantine_key(entry.key))
    return plan


async def entry_keys(client: Redis, names: Names) -> list[str]:
    """The key names of every entry (SCAN; each once)."""
    found = {k async for k in client.scan_iter(match=names.quarantine_match(), count=BATCH)}
    out: list[str] = []
    for raw in sorted(found):
        try:
            out.append(raw.decode())
        except UnicodeDecodeError:
            continue  # not a name a commit can address; list skips it too
    return out


def plan_reseal(
    names: Names, entry_key: str, fields: Mapping[bytes | str, bytes | str], cipher: Cipher
) -> Plan | None:
    """The commit sealing an entry's record (hash ``fields`` as read) under ``cipher``'s
    current key, checked unchanged since read; None when it is already sealed under it.
    KeyError or Undecryptable when a sealed record does not open."""
    text = {_str(k): v if isinstance(v, bytes) else v.encode() for k, v in fields.items()}
    field = next((name for name in VALUES if name in text), None)
    if field is None:
        return None  # gone since the SCAN
    stored = text[field]
    if field == "value_sealed":
        sealed = stored.decode("utf-8", "replace")
        if sealed_bytes_kid(sealed) == cipher.current:
            return None
        raw = cipher.open_bytes(sealed, _aad(entry_key))
    else:
        raw = stored if field == "value" else base64.b64decode(stored)
    plan = Plan(names.pause_key())
    plan.check("hequals", entry_key, field, stored)
    plan.check("hequals", names.crypto_key(), "current", cipher.current)
    plan.write("hdel", entry_key, field)
    plan.write("hset", entry_key, "value_sealed", seal(cipher, entry_key, raw))
    return plan


async def unsealed(client: Redis, names: Names) -> list[str]:
    """The key names of entries holding their record in clear (``check`` reports them on an
    encrypted keyspace: ``encrypt`` seals them)."""
    out = []
    for entry_key in await entry_keys(client, names):
        if not await client.hexists(entry_key, "value_sealed") and await client.exists(entry_key):
            out.append(entry_key)
    return out
