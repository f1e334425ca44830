"""Which of the service's scripts cross Redis Cluster hash slots today: measured, not guessed.

Every system's demo world is loaded, then updated and deleted document by document, and
MultiFrame creates with generated ids, through the keyspace on fakeredis; every script call
is recorded with its KEYS, and each key's slot is computed as ``CLUSTER KEYSLOT`` does
(CRC16 of the key, or of its ``{hash tag}``). A script is cluster-safe only when all its
keys share one slot *and* it touches no key outside KEYS; commit.lua completes a generated
document's key (and its projection's) from a prefix in KEYS, which no cluster allows.

``python -m tests.cluster_plans`` prints the report; ``--write`` puts it into
docs/scaling.md between its markers (tests/unit/test_cluster_plan.py checks they agree).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fakeredis
import orjson
from redis.crc import key_slot

from keyspace import Keyspace, demo, systems
from keyspace.errors import KeyspaceError
from keyspace.plan import Plan
from keyspace.scripts import Scripts

DOC = Path(__file__).resolve().parents[1] / "docs" / "scaling.md"
BEGIN, END = "<!-- slots:begin -->", "<!-- slots:end -->"


@dataclass
class Tally:
    """The script calls of one (system, operation)."""

    calls: int = 0
    single_slot: int = 0
    most_keys: int = 0
    most_slots: int = 0
    completes_keys: int = 0  # calls whose script writes a key it builds from a KEYS prefix


@dataclass
class Recorder:
    operation: str = ""
    seen: dict[str, Tally] = field(default_factory=dict)

    def record(self, keys: list[str], completes: bool) -> None:
        tally = self.seen.setdefault(self.operation, Tally())
        slots = {key_slot(k.encode()) for k in keys}
        tally.calls += 1
        tally.single_slot += len(slots) == 1 and not completes
        tally.most_keys = max(tally.most_keys, len(keys))
        tally.most_slots = max(tally.most_slots, len(slots))
        tally.completes_keys += completes


def _install(recorder: Recorder) -> Callable[[], None]:
    """Record every commit's keys; returns what puts Scripts.commit back."""
    original_commit = Scripts.commit

    async def commit(self: Scripts, plan: Plan, **options: Any) -> Any:
        recorder.record(plan.keys, plan.id_key > 0)
        return await original_commit(self, plan, **options)

    Scripts.commit = commit  # type: ignore[method-assign]

    def restore() -> None:
        Scripts.commit = original_commit  # type: ignore[method-assign]

    return restore


def _generated(record: dict[str, Any], spec_id: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != spec_id}


async def _system(name: str, recorder: Recorder) -> None:
    served = systems.load(name)
    client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), protocol=2)
    ks = Keyspace(client, served.schema)
    await ks.setup()
    data = orjson.loads(demo.demo_file(served).read_bytes())
    for spec in ks.schema.entities:
        recorder.operation = f"{name}: create"
        for record in data.get(spec.collection, []):
            await ks.create(spec, record)
    if name == "multiframe":  # the one system whose ids come from counters
        recorder.operation = f"{name}: create, generated id"
        driver = data["drivers"][0]
        await ks.create(ks.schema.entity("driver"), _generated(driver, "driver_id"))
    recorder.operation = f"{name}: update"
    for spec in ks.schema.entities:
        for record in data.get(spec.collection, []):
            await ks.patch(spec, record[spec.id_field], {})
    recorder.operation = f"{name}: delete (cascades included)"
    for spec in reversed(ks.schema.entities):
        for record in data.get(spec.collection, []):
            # Restricted or already cascaded away: the attempt was recorded all the same.
            with contextlib.suppress(KeyspaceError):
                await ks.delete(spec, record[spec.id_field])
    await client.aclose()


def measure() -> dict[str, Tally]:
    recorder = Recorder()
    restore = _install(recorder)
    try:
        for name in systems.names():
            asyncio.run(_system(name, recorder))
    finally:
        restore()
    return recorder.seen


def report(seen: dict[str, Tally]) -> str:
    rows = [
        "| system: operation | scripts | one slot | most keys | most slots | keys built inside |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for operation, t in sorted(seen.items()):
        rows.append(
            f"| {operation} | {t.calls} | {t.single_slot} | {t.most_keys} | {t.most_slots} "
            f"| {t.completes_keys} |"
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
    table = report(measure())
    if "--write" in sys.argv:
        _write(table)
    print(table)
