"""config:system and analytics:metrics over HTTP: seed defaults, merges, validation, If-Match."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.api.test_collections import Client, fetch

DEFAULT_CONFIG: dict[str, Any] = {
    "system": {"version": "11.0.0", "mode": "production", "maintenance": False},
    "subscription_price": 10,
    "supported_fabs": ["TSMC", "Intel", "Samsung"],
    "supported_protocols": ["MQTT", "OPC_UA"],
}
QUANTUM = {
    "performance": 95.5,
    "efficiency": 87.2,
    "temperature": 45.3,
    "last_updated": "2025-09-29T10:30:00",
}
CONFIG = "/api/config/system"
METRICS = "/api/analytics/metrics"


async def error_code(resp: Any, status: int) -> str:
    assert resp.status == status, await resp.text()
    code: str = (await resp.json())["error"]["code"]
    return code


async def test_config_default_on_a_fresh_start(api: Client) -> None:
    status, body, tag = await fetch(api, CONFIG)
    assert (status, body) == (200, DEFAULT_CONFIG)
    assert list(body) == list(DEFAULT_CONFIG)
    assert list(body["system"]) == ["version", "mode", "maintenance"]
    assert tag is not None
    assert re.fullmatch(r'"[0-9a-f]+"', tag)


async def test_config_patch_merges(api: Client) -> None:
    resp = await api.patch(CONFIG, json={"system": {"maintenance": True}})
    assert resp.status == 200, await resp.text()
    merged = {**DEFAULT_CONFIG, "system": {**DEFAULT_CONFIG["system"], "maintenance": True}}
    assert await resp.json() == merged
    assert await fetch(api, CONFIG) == (200, merged, resp.headers["ETag"])
    resp = await api.patch(CONFIG, json={"subscription_price": 25, "supported_fabs": ["GF"]})
    assert resp.status == 200
    body = await resp.json()
    assert (body["system"]["maintenance"], body["subscription_price"]) == (True, 25)
    assert (body["supported_fabs"], body["supported_protocols"]) == (["GF"], ["MQTT", "OPC_UA"])
    for bad in ({"system": {"mode": "chaos"}}, {"system": None}, {"subscription_price": "10"}):
        assert await error_code(await api.patch(CONFIG, json=bad), 422) == "validation_failed"
    assert (await fetch(api, CONFIG))[1] == body


async def test_config_put_validates_the_whole_document(api: Client) -> None:
    new: dict[str, Any] = {
        "system": {"version": "11.1.0", "mode": "development", "maintenance": True},
        "subscription_price": 0,
        "supported_fabs": [],
        "supported_protocols": ["MQTT"],
    }
    resp = await api.put(CONFIG, json=new)
    assert resp.status == 200, await resp.text()
    assert await resp.json() == new
    assert await fetch(api, CONFIG) == (200, new, resp.headers["ETag"])
    bad_mode = {**new, "system": {**new["system"], "mode": "staging"}}
    resp = await api.put(CONFIG, json=bad_mode)
    assert await error_code(resp, 422) == "validation_failed"
    assert (await resp.json())["error"]["details"][0]["field"] == "system.mode"
    missing = {k: v for k, v in new.items() if k != "supported_fabs"}
    assert await error_code(await api.put(CONFIG, json=missing), 422) == "validation_failed"
    extra = {**new, "colour": "red"}
    assert await error_code(await api.put(CONFIG, json=extra), 422) == "validation_failed"
    assert (await fetch(api, CONFIG))[1] == new


async def test_config_if_match(api: Client) -> None:
    _, _, tag = await fetch(api, CONFIG)
    assert tag is not None
    resp = await api.patch(CONFIG, json={"subscription_price": 11}, headers={"If-Match": tag})
    assert resp.status == 200
    current = resp.headers["ETag"]
    assert current != tag
    stale = await api.patch(CONFIG, json={"subscription_price": 12}, headers={"If-Match": tag})
    assert await error_code(stale, 412) == "stale_revision"
    stale = await api.put(CONFIG, json=DEFAULT_CONFIG, headers={"If-Match": tag})
    assert await error_code(stale, 412) == "stale_revision"
    assert (await fetch(api, CONFIG))[1]["subscription_price"] == 11
    resp = await api.put(CONFIG, json=DEFAULT_CONFIG, headers={"If-Match": current})
    assert resp.status == 200
    assert await fetch(api, CONFIG) == (200, DEFAULT_CONFIG, resp.headers["ETag"])


async def test_metrics_default_on_a_fresh_start(api: Client) -> None:
    status, body, tag = await fetch(api, METRICS)
    assert (status, body) == (200, {"chip_metrics": {"chip_quantum_1": QUANTUM}})
    assert list(body["chip_metrics"]["chip_quantum_1"]) == list(QUANTUM)
    assert tag is not None
    resp = await api.get(f"{METRICS}/chip_quantum_1")
    assert (resp.status, await resp.json()) == (200, QUANTUM)


async def test_put_chip_metrics_sets_last_updated(api: Client) -> None:
    before = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    sent = {"performance": 80, "efficiency": 70.5, "temperature": 50}
    resp = await api.put(f"{METRICS}/chip_neural_2", json=sent)
    assert resp.status == 200, await resp.text()
    chip = await resp.json()
    assert list(chip) == ["performance", "efficiency", "temperature", "last_updated"]
    assert {k: chip[k] for k in sent} == sent
    stamp = datetime.fromisoformat(chip["last_updated"])
    assert before <= stamp <= datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", chip["last_updated"])
    got = await api.get(f"{METRICS}/chip_neural_2")
    assert (got.status, await got.json()) == (200, chip)
    _, body, _ = await fetch(api, METRICS)
    assert body == {"chip_metrics": {"chip_quantum_1": QUANTUM, "chip_neural_2": chip}}
    again = {"performance": 81.5, "efficiency": 70.5, "temperature": -10}
    resp = await api.put(f"{METRICS}/chip_neural_2", json=again)
    assert resp.status == 200
    assert {k: v for k, v in (await resp.json()).items() if k != "last_updated"} == again
    assert (await fetch(api, METRICS))[1]["chip_metrics"]["chip_quantum_1"] == QUANTUM


async def test_client_sent_last_updated_is_rejected(api: Client) -> None:
    body = {"performance": 80, "efficiency": 70.5, "temperature": 50, "last_updated": "2020-01-01"}
    resp = await api.put(f"{METRICS}/chip_neural_2", json=body)
    assert await error_code(resp, 422) == "validation_failed"
    assert (await resp.json())["error"]["details"][0]["field"] == "last_updated"
    assert (await api.get(f"{METRICS}/chip_neural_2")).status == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"performance": 150, "efficiency": 70.5, "temperature": 50}, "performance"),
        ({"performance": 80, "efficiency": -1, "temperature": 50}, "efficiency"),
        ({"performance": 80, "efficiency": 70.5, "temperature": -300}, "temperature"),
        ({"performance": "80", "efficiency": 70.5, "temperature": 50}, "performance"),
        ({"performance": 80, "efficiency": 70.5}, "temperature"),
        ({"performance": 80, "efficiency": 70.5, "temperature": 50, "fan": 1}, "fan"),
    ],
)
async def test_invalid_chip_metrics_are_422(api: Client, body: Any, field: str) -> None:
    resp = await api.put(f"{METRICS}/chip_quantum_1", json=body)
    assert await error_code(resp, 422) == "validation_failed"
    assert (await resp.json())["error"]["details"][0]["field"] == field
    assert (await fetch(api, METRICS))[1] == {"chip_metrics": {"chip_quantum_1": QUANTUM}}


async def test_unknown_and_invalid_chip_ids(api: Client) -> None:
    resp = await api.get(f"{METRICS}/chip_unknown_9")
    assert await error_code(resp, 404) == "not_found"
    resp = await api.get(f"{METRICS}/bad%22id")
    assert await error_code(resp, 422) == "validation_failed"
    sent = {"performance": 1, "efficiency": 1, "temperature": 1}
    assert (await api.put(f"{METRICS}/chip.with:colon", json=sent)).status == 422
    assert (await fetch(api, METRICS))[1] == {"chip_metrics": {"chip_quantum_1": QUANTUM}}


async def test_metrics_put_replaces_the_whole_document(api: Client) -> None:
    """README and the per-chip If-Match refusal point here; it answered 405 before."""
    neural = {**QUANTUM, "performance": 60.0, "last_updated": "2025-10-01T08:00:00"}
    new = {"chip_metrics": {"chip_neural_2": neural}}
    resp = await api.put(METRICS, json=new)
    assert resp.status == 200, await resp.text()
    assert await resp.json() == new  # chip_quantum_1 is gone: the document is replaced
    assert await fetch(api, METRICS) == (200, new, resp.headers["ETag"])
    assert (await api.get(f"{METRICS}/chip_quantum_1")).status == 404
    invalid = [
        {"chip_metrics": {"chip_neural_2": {**neural, "efficiency": 101}}},
        {
            "chip_metrics": {
                "chip_neural_2": {k: v for k, v in neural.items() if k != "last_updated"}
            }
        },
        {"chip_metrics": {"bad:id": neural}},
        {"chip_metrics": {}, "extra": 1},
        {},
    ]
    for bad in invalid:
        assert await error_code(await api.put(METRICS, json=bad), 422) == "validation_failed"
    assert (await fetch(api, METRICS))[1] == new


async def test_metrics_put_honours_if_match(api: Client) -> None:
    _, _, tag = await fetch(api, METRICS)
    assert tag is not None
    changed = await api.put(
        f"{METRICS}/chip_neural_2", json={k: 1 for k in QUANTUM if k != "last_updated"}
    )
    assert changed.status == 200  # a per-chip write changes the document's revision
    stale = await api.put(METRICS, json={"chip_metrics": {}}, headers={"If-Match": tag})
    assert await error_code(stale, 412) == "stale_revision"
    _, body, current = await fetch(api, METRICS)
    assert set(body["chip_metrics"]) == {"chip_quantum_1", "chip_neural_2"}
    weak = await api.put(METRICS, json={"chip_metrics": {}}, headers={"If-Match": f"W/{current}"})
    assert await error_code(weak, 412) == "stale_revision"
    bad = await api.put(METRICS, json={"chip_metrics": {}}, headers={"If-Match": '"a", "b"'})
    assert await error_code(bad, 400) == "invalid_header"
    assert current is not None
    resp = await api.put(METRICS, json={"chip_metrics": {}}, headers={"If-Match": current})
    assert (resp.status, await resp.json()) == (200, {"chip_metrics": {}})
    assert resp.headers["ETag"] != current
