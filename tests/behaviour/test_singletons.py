"""config:system and analytics:metrics."""

from __future__ import annotations

import orjson
import pytest

from keyspace import Keyspace, NotFound, StaleRevision, ValidationFailed
from keyspace.connection import call


async def test_singletons_exist_with_seed_defaults(ks: Keyspace) -> None:
    config = await ks.get_config()
    assert config.doc["system"] == {"version": "11.0.0", "mode": "production", "maintenance": False}
    assert config.doc["supported_fabs"] == ["TSMC", "Intel", "Samsung"]
    metrics = await ks.get_metrics()
    assert metrics.doc["chip_metrics"]["chip_quantum_1"]["performance"] == 95.5


async def test_config_is_validated_on_every_write(ks: Keyspace) -> None:
    before = await ks.get_config()
    with pytest.raises(ValidationFailed):
        await ks.patch_config({"system": {"mode": "chaos"}})
    with pytest.raises(ValidationFailed):
        await ks.patch_config({"subscription_price": "ten"})
    assert (await ks.get_config()).doc == before.doc
    changed = await ks.patch_config({"system": {"maintenance": True}}, if_revision=before.revision)
    assert changed.doc["system"]["maintenance"] is True
    with pytest.raises(StaleRevision):
        await ks.patch_config({"subscription_price": 20}, if_revision=before.revision)
    stored = orjson.loads(await call(ks.client, "JSON.GET", "config:system", "."))
    assert stored == changed.doc


async def test_chip_metrics_write_only_their_chip(ks: Keyspace) -> None:
    written = await ks.set_chip_metrics(
        "chip_neural_2", {"performance": 80, "efficiency": 70.5, "temperature": 50}
    )
    assert written["performance"] == 80
    assert "last_updated" in written
    metrics = (await ks.get_metrics()).doc["chip_metrics"]
    assert set(metrics) == {"chip_quantum_1", "chip_neural_2"}
    assert metrics["chip_quantum_1"]["temperature"] == 45.3
    assert await ks.get_chip_metrics("chip_neural_2") == written
    with pytest.raises(ValidationFailed):
        await ks.set_chip_metrics(
            "chip_neural_2", {"performance": 120, "efficiency": 1, "temperature": 1}
        )
    with pytest.raises(ValidationFailed):
        await ks.set_chip_metrics('x"]', {"performance": 1, "efficiency": 1, "temperature": 1})
    with pytest.raises(NotFound):
        await ks.get_chip_metrics("chip_unknown")
