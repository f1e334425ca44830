"""Loading a system's demo data (``demo_data/<system>/demo.json``) through the keyspace, so
counters, uniques and indexes are right: ``multiframe-admin load-demo`` / ``seed`` and
``POST /api/admin/seed``. Records already present are left as they are."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .documents import for_create
from .errors import AlreadyExists
from .system import System
from .systems.multiframe.entities import ANALYTICS, SYSTEM_CONFIG

if TYPE_CHECKING:  # the engine imports nothing of this module; no cycle at run time
    from .engine import Keyspace

DEMO = Path(__file__).resolve().parent.parent / "demo_data"


def demo_file(system: System) -> Path:
    return DEMO / system.demo / "demo.json"


@dataclass
class Loaded:
    """What a load did: records created, already present, and keys left as they were
    because they differ from the demo record."""

    created: int = 0
    present: int = 0
    differing: list[str] = field(default_factory=list)


async def load(
    ks: Keyspace, data: Mapping[str, Any], advance: Callable[[], None] | None = None
) -> Loaded:
    """Create every record of ``data`` (a demo.json) that is not there yet."""
    out = Loaded()
    for spec in ks.schema.entities:  # declaration order: users before what refers to them
        for record in data.get(spec.collection, []):
            try:
                await ks.create(spec, record)
                out.created += 1
            except AlreadyExists:
                stored = await ks.get(spec, record[spec.id_field])
                if stored.doc == for_create(spec, record, record[spec.id_field]):
                    out.present += 1
                else:
                    out.differing.append(spec.key(record[spec.id_field]))
            if advance is not None:
                advance()
    if SYSTEM_CONFIG.key in data and SYSTEM_CONFIG in ks.schema.singletons:
        await ks.replace_config(data[SYSTEM_CONFIG.key])
    chips = data.get(ANALYTICS.key, {}) if ANALYTICS in ks.schema.singletons else {}
    for chip_id, metrics in chips.get("chip_metrics", {}).items():
        await _load_chip(ks, chip_id, metrics)
    return out


async def _load_chip(ks: Keyspace, chip_id: str, metrics: dict[str, Any]) -> None:
    """Demo metrics keep their own ``last_updated``, so they go in as part of the document."""
    current = (await ks.get_metrics()).doc
    if current.get("chip_metrics", {}).get(chip_id) != metrics:
        await ks.singletons.patch(ANALYTICS, {"chip_metrics": {chip_id: metrics}})
