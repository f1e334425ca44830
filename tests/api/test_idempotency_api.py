"""``Idempotency-Key`` on the document writes: replays, reuse, requests in flight, callers,
expiry, refusals, and a commit whose reply was lost; fakeredis and the real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from app.config import Settings
from app.state import KEYSPACE
from keyspace import connect
from keyspace import idempotency as idem
from keyspace.pipelining import pipeliner
from keyspace.server import EmbeddedRedis
from keyspace.testing import serving
from tests.api.conftest import ADMIN_TOKEN, SMALL_BODY_LIMIT, backend
from tests.api.test_collections import collab_body, driver_body, user_body

Client = TestClient[web.Request, web.Application]
KEY = {"Idempotency-Key": "order-7f3a"}
JSON_TYPE = "application/json"


def _redis(api: Client) -> Redis:
    return api.app[KEYSPACE].client


async def _drivers(api: Client) -> list[bytes]:
    return sorted([k async for k in _redis(api).scan_iter(match="driver:*")])


async def _idem_keys(api: Client) -> list[bytes]:
    return [k async for k in _redis(api).scan_iter(match="mf:idem:*")]


async def _user(api: Client, name: str = "Ada") -> str:
    resp = await api.post("/api/users", json=user_body(name))
    assert resp.status == 201, await resp.text()
    user_id: str = (await resp.json())["user_id"]
    return user_id


async def test_a_retried_create_is_answered_the_first_outcome_and_writes_nothing(
    api: Client,
) -> None:
    user_id = await _user(api)
    first = await api.post("/api/drivers", json=driver_body(user_id), headers=KEY)
    assert first.status == 201, await first.text()
    assert "Idempotent-Replayed" not in first.headers
    again = await api.post("/api/drivers", json=driver_body(user_id), headers=KEY)
    assert again.status == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await again.read() == await first.read()
    assert again.headers["ETag"] == first.headers["ETag"]
    assert again.headers["Location"] == first.headers["Location"] == "/api/drivers/driver_1"
    assert await _drivers(api) == [b"driver:driver_1"]
    assert await _redis(api).get("driver_counter") == b"1"
    # Without the key, the same body is a new create.
    other = await api.post("/api/drivers", json=driver_body(user_id))
    assert (await other.json())["driver_id"] == "driver_2"


async def test_the_same_key_for_another_body_is_refused(api: Client) -> None:
    user_id = await _user(api)
    assert (await api.post("/api/drivers", json=driver_body(user_id), headers=KEY)).status == 201
    other = driver_body(user_id, version="9.9.9")
    resp = await api.post("/api/drivers", json=other, headers=KEY)
    assert resp.status == 422
    assert (await resp.json())["error"]["code"] == "idempotency_key_reused"
    resp = await api.patch("/api/drivers/driver_1", json={"version": "3.0.0"}, headers=KEY)
    assert (await resp.json())["error"]["code"] == "idempotency_key_reused"
    assert await _drivers(api) == [b"driver:driver_1"]


async def test_a_request_in_flight_with_the_key_answers_409(api: Client) -> None:
    user_id = await _user(api)
    body = orjson.dumps(driver_body(user_id))
    headers = {**KEY, "Content-Type": "application/json"}
    assert (await api.post("/api/drivers", data=body, headers=headers)).status == 201
    [key] = await _idem_keys(api)
    # As another process holds it while its write runs: the same request, claimed.
    fp = idem.fingerprint("POST", "/api/drivers", body)
    await _redis(api).set(key, idem.pending_record(fp, "another-process"), px=60_000)
    resp = await api.post("/api/drivers", data=body, headers=headers)
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "idempotency_key_in_flight"
    assert resp.headers["Retry-After"] == "1"
    different = await api.post(
        "/api/drivers", json=driver_body(user_id, version="1.0.0"), headers=KEY
    )
    assert (await different.json())["error"]["code"] == "idempotency_key_reused"
    assert await _drivers(api) == [b"driver:driver_1"]


async def test_callers_keys_are_their_own(api: Client) -> None:
    user_id = await _user(api)
    minted = await api.post(f"/api/users/{user_id}/tokens", json={})
    member = {"Authorization": f"Bearer {(await minted.json())['token']}", **KEY}
    mine = await api.post("/api/drivers", json=driver_body(user_id), headers=member)
    admins = await api.post("/api/drivers", json=driver_body(user_id), headers=KEY)
    assert (mine.status, admins.status) == (201, 201)
    assert "Idempotent-Replayed" not in admins.headers
    assert await _drivers(api) == [b"driver:driver_1", b"driver:driver_2"]
    replay = await api.post("/api/drivers", json=driver_body(user_id), headers=member)
    assert (await replay.json())["driver_id"] == (await mine.json())["driver_id"]


async def test_an_update_replays_what_it_answered_not_what_is_stored_now(api: Client) -> None:
    user_id = await _user(api)
    await api.post("/api/drivers", json=driver_body(user_id))
    first = await api.patch("/api/drivers/driver_1", json={"version": "3.0.0"}, headers=KEY)
    assert first.status == 200
    later = await api.patch("/api/drivers/driver_1", json={"version": "4.0.0"})
    again = await api.patch("/api/drivers/driver_1", json={"version": "3.0.0"}, headers=KEY)
    assert (again.status, again.headers["Idempotent-Replayed"]) == (200, "true")
    assert await again.read() == await first.read()
    assert again.headers["ETag"] == first.headers["ETag"] != later.headers["ETag"]
    stored = await api.get("/api/drivers/driver_1")
    assert (await stored.json())["version"] == "4.0.0"


async def test_a_delete_replays_its_204(api: Client) -> None:
    user_id = await _user(api)
    await api.post("/api/drivers", json=driver_body(user_id))
    first = await api.delete("/api/drivers/driver_1", headers=KEY)
    again = await api.delete("/api/drivers/driver_1", headers=KEY)
    assert (first.status, again.status) == (204, 204)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await api.delete("/api/drivers/driver_1")).status == 404


async def test_a_refusal_after_the_claim_is_replayed(api: Client) -> None:
    await _user(api, "Ada")
    taken = await api.post("/api/users", json=user_body("Ada"), headers=KEY)
    assert taken.status == 409
    await api.delete("/api/users/user_1")
    again = await api.post("/api/users", json=user_body("Ada"), headers=KEY)
    assert (again.status, again.headers["Idempotent-Replayed"]) == (409, "true")
    assert await again.read() == await taken.read()
    assert (await api.post("/api/users", json=user_body("Ada"))).status == 201


async def test_a_key_that_is_no_printable_ascii_is_refused(api: Client) -> None:
    for bad in ("", "x" * 256, "caf\u00e9".encode().decode("latin-1")):
        resp = await api.post("/api/users", json=user_body("Ada"), headers={"Idempotency-Key": bad})
        assert resp.status == 400, bad
        assert (await resp.json())["error"]["code"] == "invalid_header"
    assert await _idem_keys(api) == []
    ok = await api.post("/api/users", json=user_body("Ada"), headers={"Idempotency-Key": "x" * 255})
    assert ok.status == 201


@pytest.fixture(
    params=[
        pytest.param("fake", id="fakeredis"),
        pytest.param("real", id="redis", marks=pytest.mark.redis),
    ]
)
async def brief(request: pytest.FixtureRequest) -> AsyncIterator[Client]:
    """The app replaying outcomes for one second only."""
    redis = await backend(request)
    settings = Settings(
        max_body=SMALL_BODY_LIMIT, admin_token=ADMIN_TOKEN, idempotency_ttl_seconds=1
    )
    async with serving(redis, settings) as client:
        yield client
    await redis.aclose()


async def test_an_outcome_is_replayed_for_its_window_only(brief: Client) -> None:
    user_id = await _user(brief)
    await brief.post("/api/drivers", json=driver_body(user_id), headers=KEY)
    [key] = await _idem_keys(brief)
    assert 0 < await _redis(brief).pttl(key) <= 1000
    await asyncio.sleep(1.2)
    again = await brief.post("/api/drivers", json=driver_body(user_id), headers=KEY)
    assert again.status == 201 and "Idempotent-Replayed" not in again.headers
    assert await _drivers(brief) == [b"driver:driver_1", b"driver:driver_2"]


def _lose_the_commit_on_the_pool(client: Redis) -> Callable[[], None]:
    fast = client.connection_pool.connection_class

    class Losing(fast):  # type: ignore[valid-type,misc]
        armed: ClassVar[bool] = False

        async def read_response(self, *args: Any, **kwargs: Any) -> Any:
            reply = await super().read_response(*args, **kwargs)
            if Losing.armed and _commit_reply(reply):
                Losing.armed = False
                await self.disconnect()
                raise RedisConnectionError("the reply was lost (test)")
            return reply

    client.connection_pool.connection_class = Losing  # before any connection is made
    return lambda: setattr(Losing, "armed", True)


def _lose_the_commit_on_the_pipeline(client: Redis) -> Callable[[], None]:
    piped = pipeliner(client)
    assert piped is not None
    deliver = piped._deliver
    armed = [False]

    def losing(line: Any, reply: Any) -> None:
        if armed[0] and _commit_reply(reply):
            armed[0] = False
            piped._fail(line, RedisConnectionError("the reply was lost (test)"))
            return
        deliver(line, reply)

    piped._deliver = losing  # type: ignore[method-assign]
    return lambda: armed.__setitem__(0, True)


def _commit_reply(reply: Any) -> bool:
    """commit.lua's reply to a create: {'ok', document} (authorization's has 7 or 8 items; a
    keyed create commits after it)."""
    return isinstance(reply, list) and len(reply) == 2 and reply[0] == b"ok"


@pytest.mark.redis
@pytest.mark.parametrize("transport", ["pool", "pipelined"])
async def test_a_create_whose_reply_was_lost_is_answered_by_its_retry(
    redis_server: EmbeddedRedis, transport: str
) -> None:
    """The connection drops after the commit ran: the client hears 503, retries with its
    key, and meets the document it created: one document, one event, one counter increment."""
    pipelined = transport == "pipelined"
    client = connect(redis_server.url, pipelining=pipelined)
    lose = (_lose_the_commit_on_the_pipeline if pipelined else _lose_the_commit_on_the_pool)(client)
    await client.flushall()
    settings = Settings(max_body=SMALL_BODY_LIMIT, admin_token=ADMIN_TOKEN, pipelining=pipelined)
    async with serving(client, settings) as api:
        user_id = await _user(api)
        lose()
        lost = await api.post("/api/drivers", json=driver_body(user_id), headers=KEY)
        assert lost.status == 503
        assert (await lost.json())["error"]["code"] == "redis_unavailable"
        retried = await api.post("/api/drivers", json=driver_body(user_id), headers=KEY)
        assert (retried.status, retried.headers["Idempotent-Replayed"]) == (201, "true")
        doc = await retried.json()
        assert doc["driver_id"] == "driver_1"
        stored = await api.get("/api/drivers/driver_1")
        assert await stored.json() == doc
        assert retried.headers["ETag"] == stored.headers["ETag"]
        assert retried.headers["Location"] == "/api/drivers/driver_1"
        assert await _drivers(api) == [b"driver:driver_1"]
        assert await client.get("driver_counter") == b"1"
        twice = await api.post("/api/drivers", json=driver_body(user_id), headers=KEY)
        assert await twice.read() == await retried.read()
        feed = await api.get("/api/changes?collections=drivers", headers={"Accept": JSON_TYPE})
        events = (await feed.json())["events"]
        assert [(e["op"], e["doc_id"], e["revision"]) for e in events] == [
            ("create", "driver_1", stored.headers["ETag"].strip('"'))
        ]
    await client.aclose()


@pytest.mark.redis
async def test_a_write_refused_by_a_failure_gives_the_key_back(
    redis_server: EmbeddedRedis,
) -> None:
    """A commit that never ran (the connection dropped before it was sent): the claim is
    given back, so the retry with the key runs the write."""
    client = connect(redis_server.url, pipelining=False)
    await client.flushall()
    settings = Settings(max_body=SMALL_BODY_LIMIT, admin_token=ADMIN_TOKEN, pipelining=False)
    async with serving(client, settings) as api:
        user_id = await _user(api)
        scripts = api.app[KEYSPACE].scripts
        send = scripts.commit
        calls = [0]

        async def failing(*args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            if calls[0] == 1:
                raise RedisConnectionError("down before the commit was sent (test)")
            return await send(*args, **kwargs)

        scripts.commit = failing  # type: ignore[method-assign]
        first = await api.post("/api/drivers", json=driver_body(user_id), headers=KEY)
        assert first.status == 503
        assert await _idem_keys(api) == []
        retried = await api.post("/api/drivers", json=driver_body(user_id), headers=KEY)
        assert retried.status == 201 and "Idempotent-Replayed" not in retried.headers
        assert await _drivers(api) == [b"driver:driver_1"]
    await client.aclose()


async def test_openapi_documents_the_key_on_every_document_write(api: Client) -> None:
    doc = await (await api.get("/openapi.json")).json()
    item = "/api/drivers/{id}"
    writes = [("/api/drivers", "post"), (item, "put"), (item, "patch"), (item, "delete")]
    writes.append(("/api/collabs/{id}/collaborators", "post"))
    for path, method in writes:
        op = doc["paths"][path][method]
        names = [p["name"] for p in op["parameters"]]
        assert "Idempotency-Key" in names, (path, method)
        assert {"400", "409", "422"} <= set(op["responses"]), (path, method)
        assert "idempotency_key_reused" in op["responses"]["422"]["description"]
        assert "idempotency_key_in_flight" in op["responses"]["409"]["description"]
        success = next(r for s, r in op["responses"].items() if s.startswith("2"))
        assert "Idempotent-Replayed" in success["headers"], (path, method)
    reads = [doc["paths"][item]["get"], doc["paths"]["/api/drivers"]["get"]]
    for op in reads:
        assert "Idempotency-Key" not in [p["name"] for p in op["parameters"]]


async def test_adding_a_member_replays_what_it_answered(api: Client) -> None:
    for name in ("One", "Two", "Three"):
        await _user(api, name)
    made = await api.post("/api/collabs", json=collab_body("user_1", ["user_2"]))
    assert made.status == 201
    url = "/api/collabs/collab_1/collaborators"
    first = await api.post(url, json={"user_id": "user_3"}, headers=KEY)
    assert (await first.json())["collaborators"] == ["user_2", "user_3"]
    assert (await api.delete(f"{url}/user_3")).status == 200
    again = await api.post(url, json={"user_id": "user_3"}, headers=KEY)
    assert (again.status, again.headers["Idempotent-Replayed"]) == (200, "true")
    assert await again.read() == await first.read()
    stored = await api.get("/api/collabs/collab_1")
    assert (await stored.json())["collaborators"] == ["user_2"]


async def test_a_keyed_create_is_counted_once_and_keeps_the_creators_rules(api: Client) -> None:
    user_id = await _user(api)
    await _user(api, "Bob")
    minted = await api.post(f"/api/users/{user_id}/tokens", json={})
    member = {"Authorization": f"Bearer {(await minted.json())['token']}"}
    plain = await api.post("/api/drivers", json=driver_body(user_id), headers=member)
    keyed = await api.post("/api/drivers", json=driver_body(user_id), headers={**member, **KEY})
    assert (plain.status, keyed.status) == (201, 201)
    left = int(plain.headers["RateLimit-Remaining"])
    assert int(keyed.headers["RateLimit-Remaining"]) == left - 1
    # The rules of a member's create hold with a key: its own documents only, and an
    # explicit id no further than the import window past the counter.
    other = {**member, "Idempotency-Key": "for-bob"}
    bobs = await api.post("/api/drivers", json=driver_body("user_2"), headers=other)
    assert (await bobs.json())["error"]["details"]["rule"] == "own-documents-only"
    far = {**member, "Idempotency-Key": "far"}
    resp = await api.post(
        "/api/drivers", json=driver_body(user_id, driver_id="driver_999999"), headers=far
    )
    assert resp.status == 403
    assert (await resp.json())["error"]["details"]["rule"] == "import-window"
    assert await _drivers(api) == [b"driver:driver_1", b"driver:driver_2"]
    replayed = await api.post("/api/drivers", json=driver_body("user_2"), headers=other)
    assert (replayed.status, replayed.headers["Idempotent-Replayed"]) == (403, "true")


async def test_a_retried_batch_is_answered_its_documents_in_order_and_writes_nothing(
    api: Client,
) -> None:
    # Explicit ids commit before generated ones: the stored answer keeps the request's order.
    batch = [user_body("Gen"), {**user_body("Imp"), "user_id": "user_40"}, user_body("Gen2")]
    first = await api.post("/api/users", json=batch, headers=KEY)
    assert first.status == 201, await first.text()
    assert [d["username"] for d in await first.json()] == ["Gen", "Imp", "Gen2"]
    counter = await _redis(api).get("user_counter")
    users = sorted([k async for k in _redis(api).scan_iter(match="user:*")])
    again = await api.post("/api/users", json=batch, headers=KEY)
    assert again.status == 201, await again.text()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await again.read() == await first.read()
    assert sorted([k async for k in _redis(api).scan_iter(match="user:*")]) == users
    assert await _redis(api).get("user_counter") == counter
    other = await api.post("/api/users", json=batch[:2], headers=KEY)
    assert other.status == 422
    assert (await other.json())["error"]["code"] == "idempotency_key_reused"


async def test_a_refused_batch_is_replayed_refused(api: Client) -> None:
    batch = [user_body("Twin"), {**user_body("Twin2"), "email": user_body("Twin")["email"]}]
    first = await api.post("/api/users", json=batch, headers=KEY)
    assert first.status == 409, await first.text()
    again = await api.post("/api/users", json=batch, headers=KEY)
    assert again.status == 409
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await again.read() == await first.read()
    assert [k async for k in _redis(api).scan_iter(match="user:*")] == []


async def test_a_revocation_with_a_key_answers_204_and_its_retry_401(api: Client) -> None:
    # The fuzz found 200: the revocation's own commit carried the claim, storing a 200 for
    # a route answering 204. A retry cannot be authenticated (the token is gone): 401.
    user_id = await _user(api, "Rev")
    minted = await api.post(f"/api/users/{user_id}/tokens", json={})
    token = (await minted.json())["token"]
    headers = {"Authorization": f"Bearer {token}", **KEY}
    first = await api.delete("/api/tokens/current", headers=headers)
    assert first.status == 204
    (key,) = await _idem_keys(api)
    record = idem.parse(await _redis(api).get(key) or b"")
    assert record is not None and (record.state, record.status) == ("done", 204)
    again = await api.delete("/api/tokens/current", headers=headers)
    assert again.status == 401
