"""Which of the service's scripts cross Redis Cluster hash slots today: measured, not guessed.

Every system's plans are driven through the keyspace on fakeredis (tests/cluster_drive.py:
API creates, updates changing every unique value and reference, deletes with their
cascades, every route's authorization, tokens, cached lists, views and profiles, locks,
operation logs, singletons, the admin commands' lock, migrations, reprojection, bulk
loads). Every script call that goes through keyspace.scripts.Scripts is recorded with the
script's name and its KEYS, and each key's slot is computed as ``CLUSTER KEYSLOT`` does
(CRC16 of the key, or of its ``{hash tag}``). Inside the server, every key a script's
``redis.call`` touches is compared with the KEYS it was given: one it was not given is a
key "built inside" (a generated id's document, a cache entry named from its versions, an
evicted entry read from an index), which no cluster allows. A script is cluster-safe only
when all its KEYS share one slot *and* it builds no key.

``python -m tests.cluster_plans`` prints the report; ``--write`` puts it into
docs/scaling.md between its markers (tests/unit/test_cluster_plan.py checks they agree).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakeredis.commands_mixins.scripting_mixin import ScriptingCommandsMixin
from redis.commands.core import AsyncScript
from redis.crc import key_slot

from keyspace import ids, systems
from keyspace.bulk import BULK, bulk_args
from keyspace.evalsha import Sent
from keyspace.lua_sources import PRELUDES
from keyspace.plan import Arg, Plan
from keyspace.scripts import Scripts
from keyspace.testing.fakes import give_sha1hex
from tests.cluster_drive import drive

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "scaling.md"
LUA = ROOT / "keyspace" / "lua"
BEGIN, END = "<!-- slots:begin -->", "<!-- slots:end -->"

KEYLESS = frozenset({"TIME"})
"""The commands the scripts call that name no key; every other one they call names its one
key first (test_cluster_plan checks the scripts call no command outside these two kinds)."""
FIRST_KEY = frozenset(
    {
        "DEL", "EXISTS", "GET", "HDEL", "HGET", "HMGET", "HSET", "INCR", "JSON.GET", "JSON.SET",
        "JSON.TYPE",
        "LLEN", "LRANGE", "LTRIM", "PERSIST", "PEXPIRE", "PEXPIREAT", "PEXPIRETIME", "PTTL",
        "RPUSH", "SADD", "SCARD", "SET", "SISMEMBER", "SREM", "TYPE", "XADD", "XLEN", "XRANGE",
        "XREVRANGE", "XSETID", "XTRIM", "ZADD",
        "ZCARD", "ZCOUNT", "ZPOPMIN", "ZRANGE", "ZREM", "ZREMRANGEBYSCORE", "ZREVRANGE",
    }
)  # fmt: skip


def script_names(scripts: Scripts) -> dict[int, str]:
    """id() of each registered script of ``scripts`` -> its file name (``_commit`` is
    commit.lua)."""
    return {
        id(value): name.lstrip("_") + ".lua"
        for name, value in vars(scripts).items()
        if isinstance(value, AsyncScript)
    }


def lua_files() -> list[str]:
    """The Lua scripts: every file of keyspace/lua but the preludes composed into them."""
    return sorted(p.name for p in LUA.glob("*.lua") if p.name not in PRELUDES)


_CALL = re.compile(r"redis\.p?call\(\s*'([A-Z.]+)'(?:\s*,\s*([^,)]+))?")
_BUILT = re.compile(r"(?:\b(?:KEYS|K)\[[^.]*?\]|\bkey)\s*\.\.")


def commands_in(source: str) -> set[str]:
    return {m.group(1) for m in _CALL.finditer(source)}


def built_in_source(source: str) -> list[str]:
    """The lines of a script's source that build a key rather than take it from KEYS: a
    KEYS entry (or a copy of one) extended with ``..``, or a ``redis.call`` on a key read
    from a reply (``evicted[i]``)."""
    out = []
    for line in source.splitlines():
        code = line.split("--", 1)[0]
        keys = [m.group(2) or "" for m in _CALL.finditer(code)]
        from_reply = any(re.fullmatch(r"\s*(?!KEYS\b|K\b)\w+\[\w+\]\s*", k) for k in keys)
        if _BUILT.search(code) or from_reply:
            out.append(code.strip())
    return out


@dataclass
class Tally:
    """The calls of one script in one (system, operation)."""

    calls: int = 0
    single_slot: int = 0
    most_keys: int = 0
    most_slots: int = 0
    built_inside: int = 0  # calls that touched a key not in their KEYS


@dataclass
class Recorder:
    operation: str = ""
    seen: dict[tuple[str, str], Tally] = field(default_factory=dict)
    # KEYS of the script running in the server -> the keys it touched outside them.
    outside: dict[tuple[bytes, ...], set[bytes]] = field(default_factory=dict)
    unknown_commands: set[str] = field(default_factory=set)

    def touched(self, declared: tuple[bytes, ...], command: str, args: Sequence[Any]) -> None:
        if command in KEYLESS:
            return
        if command not in FIRST_KEY:
            self.unknown_commands.add(command)
            return
        key = args[0] if isinstance(args[0], bytes) else str(args[0]).encode()
        found = self.outside.setdefault(declared, set())
        if key not in declared:
            found.add(key)

    def record(self, script: str, keys: Sequence[str]) -> None:
        encoded = tuple(k.encode() for k in keys)
        built = bool(self.outside.pop(encoded, set()))
        tally = self.seen.setdefault((self.operation, script), Tally())
        slots = {key_slot(k) for k in encoded}
        tally.calls += 1
        tally.single_slot += len(slots) == 1 and not built
        tally.most_keys = max(tally.most_keys, len(keys))
        tally.most_slots = max(tally.most_slots, len(slots))
        tally.built_inside += built


def _install(recorder: Recorder) -> Callable[[], None]:
    """Record every script call Scripts sends (its typed methods all go through ``_run``;
    ``commit_batch`` pipelines its own bulk_commit.lua calls), and every key a script
    touches in the server; returns what puts them back."""
    original_run, original_batch = Scripts._run, Scripts.commit_batch
    original_call = ScriptingCommandsMixin._lua_redis_call

    async def run(
        self: Scripts, script: AsyncScript, keys: list[str], args: list[Arg], **options: Any
    ) -> Sent:
        try:
            return await original_run(self, script, keys, args, **options)
        finally:
            recorder.record(script_names(self)[id(script)], keys)

    async def batch(self: Scripts, plans: Sequence[Plan]) -> Any:
        try:
            return await original_batch(self, plans)
        finally:
            # One bulk_commit.lua call per BULK plans: their KEYS, then the feed's trim.
            for first in range(0, len(plans), BULK):
                chunk = plans[first : first + BULK]
                args = bulk_args(chunk)
                recorder.record("bulk_commit.lua", [str(k) for k in args[1 : 1 + int(args[0])]])

    def call(
        self: ScriptingCommandsMixin, lua_runtime: Any, expected: set[Any], op: bytes, *args: Any
    ) -> Any:
        declared = lua_runtime.globals()[b"KEYS"]  # the EVAL's own, whatever a function shadows
        keys = tuple(declared[n] for n in range(1, len(declared) + 1))
        recorder.touched(keys, op.decode().upper(), args)
        return original_call(self, lua_runtime, expected, op, *args)

    Scripts._run = run  # type: ignore[method-assign]
    Scripts.commit_batch = batch  # type: ignore[method-assign]
    ScriptingCommandsMixin._lua_redis_call = call  # type: ignore[method-assign,assignment]

    def restore() -> None:
        Scripts._run = original_run  # type: ignore[method-assign]
        Scripts.commit_batch = original_batch  # type: ignore[method-assign]
        ScriptingCommandsMixin._lua_redis_call = original_call  # type: ignore[method-assign]

    return restore


@contextlib.contextmanager
def _deterministic_ids() -> Iterator[None]:
    """Generated ids from a fixed sequence: a cuid holds the clock, the host and the pid, so
    the slots a batch's fresh documents hash to (and the table's counts) would vary from run
    to run and machine to machine."""
    step = itertools.count(1)
    clock = type("Clock", (), {"time_ns": staticmethod(lambda: next(step) * 1_000_000)})
    draws = type("Draws", (), {"randbelow": staticmethod(lambda n: next(step) % n)})
    uuids = type("Uuids", (), {"uuid4": staticmethod(lambda: uuid.UUID(int=next(step)))})
    fixed: dict[str, object] = {"time": clock, "secrets": draws, "uuid": uuids}
    fixed |= {"_fingerprint": lambda: "0000", "_next_count": lambda: next(step)}
    saved = {name: getattr(ids, name) for name in fixed}
    vars(ids).update(fixed)
    try:
        yield
    finally:
        vars(ids).update(saved)


def measure() -> Recorder:
    give_sha1hex()  # commit.lua names revisions with it (run outside pytest too)
    recorder = Recorder()

    def mark(operation: str) -> None:
        recorder.operation = operation

    restore = _install(recorder)
    try:
        with _deterministic_ids():
            for name in systems.names():
                asyncio.run(drive(name, mark))
        return recorder
    finally:
        restore()


def by_script(seen: dict[tuple[str, str], Tally]) -> dict[str, Tally]:
    """Every system and operation of each script, together."""
    out: dict[str, Tally] = {}
    for (_, script), t in seen.items():
        total = out.setdefault(script, Tally())
        total.calls += t.calls
        total.single_slot += t.single_slot
        total.most_keys = max(total.most_keys, t.most_keys)
        total.most_slots = max(total.most_slots, t.most_slots)
        total.built_inside += t.built_inside
    return out


def report(seen: dict[tuple[str, str], Tally]) -> str:
    head = "| calls | one slot | most keys | most slots | keys built inside |"
    rows = [f"| script {head}", "| --- | --- | --- | --- | --- | --- |"]
    for script, t in sorted(by_script(seen).items()):
        rows.append(
            f"| {script} | {t.calls} | {t.single_slot} | {t.most_keys} | {t.most_slots} "
            f"| {t.built_inside} |"
        )
    rows += [
        "",
        f"| system: operation | script {head}",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (operation, script), t in sorted(seen.items()):
        rows.append(
            f"| {operation} | {script} | {t.calls} | {t.single_slot} | {t.most_keys} "
            f"| {t.most_slots} | {t.built_inside} |"
        )
    return "\n".join(rows)


def in_doc(text: str) -> str:
    """The report as docs/scaling.md holds it."""
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def _write(table: str) -> None:
    text = DOC.read_text()
    head, rest = text.split(BEGIN, 1)
    DOC.write_text(f"{head}{BEGIN}\n{table}\n{END}{rest.split(END, 1)[1]}")


if __name__ == "__main__":
    table = report(measure().seen)
    if "--write" in sys.argv:
        _write(table)
    print(table)
