"""The quarantine: legacy records ``import-legacy`` could not convert, kept unchanged and out of
the live keyspace (``multiframe-admin quarantine``, docs/keyspace.md §2).

An entry is a hash under ``mf:quarantine:<original key>`` (:meth:`Names.quarantine_key`):
``value`` (the record's exact bytes; ``value_base64`` instead when they are not UTF-8, so a
backup, whose lines are JSON text, carries them unchanged), ``reason``, ``at`` (when it was
moved, UTC ISO-8601) and ``entity``. Moving a record in is one ``commit.lua`` plan: the key
must still hold exactly the string read and no entry may exist yet; the plan deletes the key
and writes the entry, so there is no moment where the record is in both places or neither.
Entries are never changed in place: a person restores one (re-validated, and created through
the same commit path as any document, the entry deleted in that commit) or drops it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis

from .keys import Names
from .plan import Plan

FIELDS = frozenset({"value", "value_base64", "reason", "at", "entity"})
BATCH = 500


@dataclass(frozen=True)
class Entry:
    """One quarantined record: its original ``key`` and exact ``value``."""

    key: str
    value: bytes
    reason: str
    at: str
    entity: str

    @property
    def text(self) -> str:
        """The value for a terminal (bytes that are not UTF-8 as ``\\xff``)."""
        return self.value.decode("utf-8", "backslashreplace")


def plan_move(names: Names, key: str, raw: bytes, entity: str, reason: str) -> Plan:
    """Move the legacy string ``raw`` at ``key`` into the quarantine, atomically: ``stale``
    when the key no longer holds exactly ``raw``, ``already_exists`` when ``key`` has an
    entry already (restore or drop it first); nothing is written then."""
    entry = names.quarantine_key(key)
    plan = Plan(names.pause_key())
    plan.check("string", key, raw)
    plan.check("absent", entry)
    plan.write("del", key)
    for name, value in stored_fields(raw, entity, reason).items():
        plan.write("hset", entry, name, value)
    return plan


def stored_fields(raw: bytes, entity: str, reason: str) -> dict[str, str | bytes]:
    """The hash fields of an entry for ``raw`` (see the module docstring)."""
    try:
        raw.decode("utf-8")
        value: dict[str, str | bytes] = {"value": raw}
    except UnicodeDecodeError:
        value = {"value_base64": base64.b64encode(raw).decode()}
    at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return {**value, "reason": reason, "at": at, "entity": entity}


def problem(fields: Mapping[str, str]) -> str | None:
    """Why decoded hash ``fields`` are no quarantine entry (a backup being verified), or None."""
    if not set(fields) <= FIELDS or not {"reason", "at", "entity"} <= set(fields):
        return f"holds the fields {', '.join(sorted(FIELDS))} (value or value_base64)"
    if ("value" in fields) == ("value_base64" in fields):
        return "holds exactly one of value and value_base64"
    if "value_base64" in fields:
        try:
            base64.b64decode(fields["value_base64"], validate=True)
        except binascii.Error:
            return "value_base64 is not base64"
    return None


def _entry(key: str, fields: Mapping[bytes | str, bytes | str]) -> Entry | None:
    text = {_str(k): v if isinstance(v, bytes) else v.encode() for k, v in fields.items()}
    if "value" in text:
        value = text["value"]
    elif "value_base64" in text:
        value = base64.b64decode(text["value_base64"])
    else:
        return None  # deleted since the SCAN (HGETALL of nothing), or not an entry
    return Entry(
        key,
        value,
        text.get("reason", b"").decode("utf-8", "replace"),
        text.get("at", b"").decode("utf-8", "replace"),
        text.get("entity", b"").decode("utf-8", "replace"),
    )


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def read(client: Redis, names: Names, key: str) -> Entry | None:
    """The entry of the original ``key``, or None."""
    return _entry(key, await client.hgetall(names.quarantine_key(key)))


async def entries(client: Redis, names: Names) -> list[Entry]:
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
            if isinstance(reply, dict) and (got := _entry(names.quarantined_key(entry), reply)):
                out.append(got)
    return out


async def count(client: Redis, names: Names) -> int:
    """How many entries there are (``check`` reports it as information)."""
    found = {k async for k in client.scan_iter(match=names.quarantine_match(), count=BATCH)}
    return len(found)


def plan_drop(names: Names, key: str) -> Plan:
    """Delete the entry of ``key`` (what it held is gone for good)."""
    plan = Plan(names.pause_key())
    plan.write("del", names.quarantine_key(key))
    return plan
