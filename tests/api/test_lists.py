"""List queries: page shape, filters, ranges, full text, sorting, limits and cursors."""

from __future__ import annotations

from typing import Any

import pytest

from app.state import KEYSPACE
from keyspace import PROCESS
from tests.api.test_collections import (
    Client,
    chip,
    created,
    driver_body,
    make_users,
    process_body,
    quest_body,
)


async def listed(api: Client, path: str, **params: str) -> dict[str, Any]:
    resp = await api.get(path, params=params)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    assert list(body) == ["items", "total", "next_cursor"]
    return body


def ids(page: dict[str, Any], field: str = "driver_id") -> list[str]:
    return [doc[field] for doc in page["items"]]


async def drivers(api: Client) -> None:
    """driver_1..driver_5 with varied owners, chips, statuses and timestamps."""
    await make_users(api, "One", "Two")
    specs = [
        ("user_1", chip(128), "optimized", "2025-01-01T00:00:00"),
        ("user_1", chip(64, "neural_processor"), "optimized", "2025-01-02T00:00:00"),
        ("user_1", chip(256), "generated", "2025-01-03T00:00:00"),
        (
            "user_2",
            chip(8, frequency="1GHz", architecture="Arm"),
            "optimized",
            "2025-01-04T12:00:00",
        ),
        ("user_2", chip(512, "crypto_processor"), "generated", "2025-01-05T00:00:00"),
    ]
    for owner, chip_data, status, stamp in specs:
        body = driver_body(owner, chip_data=chip_data, status=status, timestamp=stamp)
        await created(api, "drivers", body)


async def test_page_shape_and_everything_by_default(api: Client) -> None:
    empty = await listed(api, "/api/drivers")
    assert empty == {"items": [], "total": 0, "next_cursor": None}
    await drivers(api)
    page = await listed(api, "/api/drivers")
    assert ids(page) == [f"driver_{n}" for n in range(1, 6)]
    assert (page["total"], page["next_cursor"]) == (5, None)
    one = await (await api.get("/api/drivers/driver_3")).json()
    assert page["items"][2] == one
    users = await listed(api, "/api/users")
    assert sorted(ids(users, "user_id")) == ["user_1", "user_2"]  # the operator token has no user


async def test_equality_filters(api: Client) -> None:
    await drivers(api)
    page = await listed(
        api, "/api/drivers", status="optimized", chip_type="quantum_processor", user_id="user_1"
    )
    assert (ids(page), page["total"]) == (["driver_1"], 1)
    assert ids(await listed(api, "/api/drivers", status="generated")) == ["driver_3", "driver_5"]
    assert ids(await listed(api, "/api/drivers", user_id="user_2")) == ["driver_4", "driver_5"]
    assert ids(await listed(api, "/api/drivers", cores="64")) == ["driver_2"]
    assert ids(await listed(api, "/api/drivers", frequency="1GHz")) == ["driver_4"]
    assert ids(await listed(api, "/api/drivers", architecture="Arm")) == ["driver_4"]
    assert ids(await listed(api, "/api/drivers", chip_type="crypto_processor")) == ["driver_5"]
    page = await listed(api, "/api/drivers", timestamp="2025-01-02T00:00:00")
    assert ids(page) == ["driver_2"]
    none = await listed(api, "/api/drivers", status="optimized", user_id="user_2", cores="128")
    assert none == {"items": [], "total": 0, "next_cursor": None}
    resp = await api.get("/api/drivers?chip_type=neural_processor&chip_type=crypto_processor")
    assert ids(await resp.json()) == ["driver_2", "driver_5"]  # repeated: any of


async def test_numeric_and_time_ranges(api: Client) -> None:
    await drivers(api)
    page = await listed(api, "/api/drivers", cores_min="64", cores_max="256")
    assert (ids(page), page["total"]) == (["driver_1", "driver_2", "driver_3"], 3)
    assert ids(await listed(api, "/api/drivers", cores_min="257")) == ["driver_5"]
    assert ids(await listed(api, "/api/drivers", cores_max="8")) == ["driver_4"]
    page = await listed(
        api, "/api/drivers", timestamp_min="2025-01-02T00:00:00", timestamp_max="2025-01-04"
    )
    assert ids(page) == ["driver_2", "driver_3"]
    page = await listed(api, "/api/drivers", timestamp_min="2025-01-04T13:00:00+01:00")
    assert ids(page) == ["driver_4", "driver_5"]  # aware times compare as UTC
    page = await listed(api, "/api/drivers", cores_min="100", status="generated")
    assert ids(page) == ["driver_3", "driver_5"]
    assert (await api.get("/api/drivers", params={"timestamp_min": "yesterday"})).status == 400


async def test_full_text_on_quests_and_users(api: Client) -> None:
    await make_users(api, "HoloMisha", "QuantumQueen")
    await created(api, "quests", quest_body())
    await created(
        api, "quests", quest_body(title="Neural Net", description="Train a neural chip fast")
    )
    await created(api, "quests", quest_body(title="Crypto", description="Hash things"))
    assert ids(await listed(api, "/api/quests", q="quantum"), "quest_id") == ["quest_1"]
    assert ids(await listed(api, "/api/quests", q="NEURAL"), "quest_id") == ["quest_2"]
    page = await listed(api, "/api/quests", q="chip")
    assert (ids(page, "quest_id"), page["total"]) == (["quest_1", "quest_2"], 2)
    assert ids(await listed(api, "/api/quests", q="design quantum"), "quest_id") == ["quest_1"]
    assert ids(await listed(api, "/api/quests", q="hash"), "quest_id") == ["quest_3"]
    assert (await listed(api, "/api/quests", q="quantum neural"))["total"] == 0
    page = await listed(api, "/api/quests", q="chip", user_id="user_1", status="active")
    assert ids(page, "quest_id") == ["quest_1", "quest_2"]
    assert ids(await listed(api, "/api/users", q="holomisha"), "user_id") == ["user_1"]
    assert ids(await listed(api, "/api/users", q="QuantumQueen"), "user_id") == ["user_2"]
    assert (await listed(api, "/api/users", q="misha"))["total"] == 0
    assert (await api.get("/api/drivers", params={"q": "quantum"})).status == 400


async def test_full_text_terms_match_exactly_without_stemming(api: Client) -> None:
    await make_users(api, "Designer")
    await created(api, "quests", quest_body(title="Design", description="Chips"))
    assert ids(await listed(api, "/api/quests", q="design"), "quest_id") == ["quest_1"]
    assert ids(await listed(api, "/api/quests", q="chips"), "quest_id") == ["quest_1"]
    for term in ("designs", "designing", "designer", "chip"):
        page = await listed(api, "/api/quests", q=term)
        assert (page["items"], page["total"]) == ([], 0), term


async def test_sorting(api: Client) -> None:
    await drivers(api)
    page = await listed(api, "/api/drivers", sort="-cores")
    assert ids(page) == ["driver_5", "driver_3", "driver_1", "driver_2", "driver_4"]
    assert [d["chip_data"]["cores"] for d in page["items"]] == [512, 256, 128, 64, 8]
    page = await listed(api, "/api/drivers", sort="cores")
    assert ids(page) == ["driver_4", "driver_2", "driver_1", "driver_3", "driver_5"]
    page = await listed(api, "/api/drivers", sort="-timestamp", user_id="user_1")
    assert ids(page) == ["driver_3", "driver_2", "driver_1"]
    assert ids(await listed(api, "/api/drivers", sort="-driver_id"))[0] == "driver_5"
    resp = await api.get("/api/drivers", params={"sort": "version"})
    assert resp.status == 400
    assert (await resp.json())["error"]["details"][0]["field"] == "sort"


async def test_limit_default_and_cap(api: Client) -> None:
    await make_users(api, "One")
    ks = api.app[KEYSPACE]
    for n in range(1001):
        await ks.create(PROCESS, process_body(chip_data=chip(n + 1)))
    page = await listed(api, "/api/processes")
    assert (len(page["items"]), page["total"]) == (50, 1001)
    assert page["next_cursor"] is not None
    for limit in ("1001", "5000"):
        capped = await listed(api, "/api/processes", limit=limit, sort="cores")
        assert len(capped["items"]) == 1000  # capped at 1000, not refused (README, query.py)
        assert capped["items"][-1]["chip_data"]["cores"] == 1000
        rest = await listed(api, "/api/processes", cursor=capped["next_cursor"], sort="cores")
        assert (ids(rest, "process_id"), rest["next_cursor"]) == (["process_1001"], None)
    assert len((await listed(api, "/api/processes", limit="3"))["items"]) == 3
    for bad in ("0", "-1", "ten", "1.5"):
        assert (await api.get("/api/processes", params={"limit": bad})).status == 400


def by_id(doc: dict[str, Any]) -> Any:
    return doc["driver_id"]


def by_cores(doc: dict[str, Any]) -> Any:
    return (doc["chip_data"]["cores"], doc["driver_id"])


def by_time(doc: dict[str, Any]) -> Any:
    return (doc["timestamp"], doc["driver_id"])


@pytest.mark.parametrize(
    ("params", "key", "reverse"),
    [
        ({}, by_id, False),
        ({"sort": "-cores"}, by_cores, True),
        ({"sort": "timestamp", "status": "generated"}, by_time, False),
    ],
    ids=["by-id", "by-cores-desc", "filtered-by-time"],
)
async def test_cursor_walk_returns_every_match_once(
    api: Client, params: dict[str, str], key: Any, reverse: bool
) -> None:
    await make_users(api, "One")
    docs = []
    for n in range(25):
        body = driver_body(
            chip_data=chip(16 * (n % 4 + 1)),  # many ties on cores
            status="optimized" if n % 3 == 0 else "generated",
            timestamp=f"2025-02-{n % 5 + 1:02d}T00:00:00",
        )
        docs.append(await created(api, "drivers", body))
    wanted = [d for d in docs if params.get("status", d["status"]) == d["status"]]
    expected = sorted(wanted, key=key, reverse=reverse)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        extra = {"cursor": cursor} if cursor else {}
        page = await listed(api, "/api/drivers", limit="7", **params, **extra)
        pages += 1
        assert page["total"] == len(expected)
        assert len(page["items"]) <= 7
        seen += ids(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 10
    assert seen == [d["driver_id"] for d in expected]
    assert len(set(seen)) == len(seen)
    assert pages == -(-len(expected) // 7)


PUNCTUATION = [
    "x} | @role:{admin",
    "x",
    "admin",
    '"quoted" (paren) *star*',
    "a-b.c/d\\e",
    "100%$^&~`'",
    "x}",
    "@version:{x}",
    "-negated",
    "semi;colon<>=?!#",
    "1,2",
    "in  ner space",  # leading or trailing whitespace is refused (422)
    "ünï cödé",
]


async def test_punctuation_values_match_exactly(api: Client) -> None:
    await make_users(api, "One")
    for version in PUNCTUATION:
        await created(api, "drivers", driver_body(version=version))
    for n, version in enumerate(PUNCTUATION, start=1):
        page = await listed(api, "/api/drivers", version=version)
        assert (ids(page), page["total"]) == ([f"driver_{n}"], 1), version
    assert (await listed(api, "/api/drivers", version="x} | @role:{"))["total"] == 0
    assert (await listed(api, "/api/drivers", version="*"))["total"] == 0
    assert (await listed(api, "/api/quests", q="(|){}*"))["total"] == 0


async def test_count_none_answers_a_null_total_and_the_same_pages(api: Client) -> None:
    await drivers(api)
    exact = await listed(api, "/api/drivers", sort="-timestamp", limit="2")
    none = await listed(api, "/api/drivers", sort="-timestamp", limit="2", count="none")
    assert exact["total"] == 5 and none["total"] is None
    assert (ids(none), none["next_cursor"]) == (ids(exact), exact["next_cursor"])
    window = {"timestamp_min": "2025-01-02T00:00:00", "timestamp_max": "2025-01-04T12:00:00"}
    page = await listed(api, "/api/drivers", **window, sort="-timestamp")
    assert (ids(page), page["total"]) == (["driver_4", "driver_3", "driver_2"], 3)
    resp = await api.get("/api/drivers", params={"count": "some"})
    assert resp.status == 400
    assert "count" in await resp.text()
