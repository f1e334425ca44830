"""Who may move a counter how far, over HTTP: an explicit seed-style id (``driver_<n>``)
moves ``driver_counter`` up to n. Admins may import any n up to 2^53 - 1; designers and
engineers at most ``policy.IMPORT_WINDOW`` past the live counter (403 ``import-window``,
nothing written), so no non-admin can use up a counter for everybody. Ids drawn past 10^14
are plain decimals a client can read, update, delete and page over, and a counter at its end
answers 409 ``counter_exhausted``."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from app.policy import IMPORT_WINDOW
from keyspace import keys

from .conftest import Actor, error_of, forbidden, make_actor, new_doc, snapshot

pytestmark = pytest.mark.redis

MAX = keys.MAX_COUNTER


def driver(owner: Actor, driver_id: str | None = None) -> dict[str, Any]:
    body = new_doc("drivers", owner.user_id)
    return body if driver_id is None else {"driver_id": driver_id, **body}


async def counter(redis: Redis) -> int:
    return int(await redis.get("driver_counter") or 0)


async def test_a_non_admin_cannot_push_a_counter_far_ahead(admin: Actor, redis: Redis) -> None:
    eve = await make_actor(admin, "Eve", "engineer")
    await eve.create("drivers", driver(eve))
    before = await snapshot(redis)
    resp = await eve.post("/api/drivers", json=driver(eve, "driver_99999999999999"))
    await forbidden(resp, "import-window")
    error = await error_of(resp, 403)
    assert error["details"]["highest"] == f"driver_{1 + IMPORT_WINDOW}"
    assert error["details"]["field"] == "driver_id"
    assert await snapshot(redis) == before
    assert (await eve.create("drivers", driver(eve)))["driver_id"] == "driver_2"


async def test_the_window_is_measured_from_the_live_counter(admin: Actor, redis: Redis) -> None:
    eve = await make_actor(admin, "Eve", "designer")
    edge = f"driver_{IMPORT_WINDOW}"
    assert (await eve.create("drivers", driver(eve, edge)))["driver_id"] == edge
    assert await counter(redis) == IMPORT_WINDOW
    await forbidden(
        await eve.post("/api/drivers", json=driver(eve, f"driver_{2 * IMPORT_WINDOW + 1}")),
        "import-window",
    )
    await eve.create("drivers", driver(eve, f"driver_{2 * IMPORT_WINDOW}"))
    assert await counter(redis) == 2 * IMPORT_WINDOW
    await eve.create("drivers", driver(eve, "driver_5"))  # behind the counter: no move
    assert await counter(redis) == 2 * IMPORT_WINDOW


@pytest.mark.parametrize(
    "driver_id", ["driver_007", f"driver_{MAX + 1}", "driver_" + "9" * 120, "driver_x9"]
)
async def test_ids_generation_never_draws_are_anyones(
    admin: Actor, redis: Redis, driver_id: str
) -> None:
    eve = await make_actor(admin, "Eve", "engineer")
    assert (await eve.create("drivers", driver(eve, driver_id)))["driver_id"] == driver_id
    assert await counter(redis) == 0


async def test_ids_past_ten_to_the_fourteen_work_on_every_route(admin: Actor, redis: Redis) -> None:
    eve = await make_actor(admin, "Eve", "engineer")
    await admin.create("drivers", driver(eve, "driver_99999999999999"))
    made = [(await eve.create("drivers", driver(eve)))["driver_id"] for _ in range(3)]
    assert made == [f"driver_{10**14 + i}" for i in range(3)]
    ids, cursor = [], ""
    while True:  # pages of one: every cursor ends on one of these ids
        page = await eve.json(f"/api/drivers?limit=1{cursor}")
        ids += [item["driver_id"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert sorted(ids) == sorted(["driver_99999999999999", *made])
    for driver_id in made:
        path = f"/api/drivers/{driver_id}"
        assert (await eve.json(path))["driver_id"] == driver_id
        resp = await eve.patch(path, json={"version": "9.9"})
        assert resp.status == 200, await resp.text()
        assert (await eve.delete(path)).status == 204
    assert await counter(redis) == 10**14 + 2


async def test_an_admin_may_use_up_a_counter_then_creates_say_so(
    admin: Actor, redis: Redis
) -> None:
    eve = await make_actor(admin, "Eve", "engineer")
    await admin.create("drivers", driver(eve, f"driver_{MAX - 1}"))
    assert (await eve.create("drivers", driver(eve)))["driver_id"] == f"driver_{MAX}"
    before = await snapshot(redis)
    for actor in (eve, admin):
        error = await error_of(await actor.post("/api/drivers", json=driver(eve)), 409)
        assert error["code"] == "counter_exhausted"
        assert error["details"] == {"field": "driver_id", "counter": "driver_counter"}
    assert await snapshot(redis) == before
    # Other ids still work.
    await eve.create("drivers", driver(eve, "driver_named"))


async def test_the_create_operation_documents_both_refusals(admin: Actor) -> None:
    spec = await admin.json("/openapi.json")
    responses = spec["paths"]["/api/drivers"]["post"]["responses"]
    assert "counter_exhausted" in responses["409"]["description"]
    assert "import-window" in responses["403"]["description"]
    nft = spec["paths"]["/api/nfts"]["post"]["responses"]
    assert "counter_exhausted" not in nft["409"]["description"]  # derived ids
