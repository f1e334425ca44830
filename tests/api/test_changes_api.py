"""GET /api/changes over HTTP: the JSON page and its long poll, the event stream and its
resume, who may follow what, 400 and 410 (docs/changes.md)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import ClientPayloadError, web
from aiohttp.test_utils import TestClient
from fakeredis import FakeAsyncRedis
from redis.asyncio import Redis
from redis.exceptions import ResponseError

import app.changes as changes_api
from app.changes import HUB
from app.config import Settings
from app.feed_hub import READER_TASK
from app.state import KEYSPACE
from keyspace import feed
from keyspace.testing import bearer, serving
from tests.api.conftest import backend

from .test_collections import created, driver_body, user_body

Client = TestClient[web.Request, web.Application]
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
JSON = {"Accept": "application/json"}


@pytest.fixture(
    params=[
        pytest.param("fake", id="fakeredis"),
        pytest.param("real", id="redis", marks=pytest.mark.redis),
    ]
)
async def redis(request: pytest.FixtureRequest) -> AsyncIterator[Redis]:
    client = await backend(request)
    yield client
    await client.aclose()


def settings(**over: Any) -> Settings:
    base: dict[str, Any] = {"admin_token": ADMIN_TOKEN, "changes_heartbeat": 0.2}
    return Settings(**(base | over))


@pytest.fixture
async def api(redis: Redis) -> AsyncIterator[Client]:
    async with serving(redis, settings()) as client:
        yield client


async def page(api: Client, query: str = "", **headers: str) -> dict[str, Any]:
    resp = await api.get(f"/api/changes{query}", headers=JSON | headers)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/json"
    body: dict[str, Any] = await resp.json()
    return body


async def next_events(resp: Any, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The next ``count`` events of an open event stream (comments skipped)."""
    out: list[dict[str, Any]] = []
    frame: dict[str, str] = {}
    async with asyncio.timeout(timeout):
        while len(out) < count:
            line = (await resp.content.readline()).decode()
            if not line:
                raise AssertionError(f"the stream ended after {out}")
            line = line.rstrip("\n")
            if line == "":
                if "data" in frame:
                    event = orjson.loads(frame["data"])
                    assert frame["id"] == event["id"]
                    assert frame.get("event", "change") == "change"
                    out.append(event)
                frame = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                frame[name] = value
    return out


async def test_every_write_kind_is_on_the_page_with_the_etag_it_left(api: Client) -> None:
    user = await created(api, "users", user_body("Ada"))
    resp = await api.post("/api/drivers", json=driver_body(user["user_id"]))
    driver, created_etag = await resp.json(), resp.headers["ETag"]
    resp = await api.patch(f"/api/drivers/{driver['driver_id']}", json={"version": "3.0.0"})
    patched_etag = resp.headers["ETag"]
    assert (await api.delete(f"/api/drivers/{driver['driver_id']}")).status == 204
    body = await page(api, "?collections=drivers")
    got = [(e["op"], e["collection"], e["doc_id"], e["revision"]) for e in body["events"]]
    assert got == [
        ("create", "drivers", driver["driver_id"], created_etag.strip('"')),
        ("update", "drivers", driver["driver_id"], patched_etag.strip('"')),
        ("delete", "drivers", driver["driver_id"], None),
    ]
    assert body["last_id"] == body["events"][-1]["id"]
    assert all(e["at"].endswith("Z") and len(e["at"]) == 24 for e in body["events"])
    everything = await page(api)
    assert [e["collection"] for e in everything["events"]] == ["users", *["drivers"] * 3]
    after = await page(api, f"?since={body['events'][0]['id']}&collections=drivers")
    assert [e["op"] for e in after["events"]] == ["update", "delete"]


async def test_a_long_poll_returns_when_an_event_arrives(api: Client) -> None:
    empty = await page(api, "?wait=0")
    assert empty == {"events": [], "last_id": None}

    async def later() -> None:
        await asyncio.sleep(0.3)
        await created(api, "users", user_body("Late"))

    writer = asyncio.create_task(later())
    loop = asyncio.get_running_loop()
    started = loop.time()
    body = await page(api, "?wait=20")
    await writer
    assert [e["op"] for e in body["events"]] == ["create"]
    assert loop.time() - started < 10


async def test_a_long_poll_without_news_answers_empty_after_the_wait(api: Client) -> None:
    user = await created(api, "users", user_body("Quiet"))
    first = await page(api)
    body = await page(api, f"?since={first['last_id']}&wait=1")
    assert body == {"events": [], "last_id": first["last_id"]}
    assert user["user_id"] == first["events"][0]["doc_id"]


async def test_a_long_poll_past_its_scan_bound_answers_at_once(
    api: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await created(api, "users", user_body("Owner"))
    start = (await page(api, "?collections=users"))["last_id"]
    for _ in range(12):
        await created(api, "drivers", driver_body(user["user_id"]))
    everything = (await page(api, f"?since={start}&limit=100"))["events"]
    assert len(everything) == 12
    monkeypatch.setattr(feed, "PAGE", 5)
    monkeypatch.setattr(changes_api, "SCAN_PAGES", 2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    body = await page(api, f"?since={start}&collections=users&wait=20")
    # Ten drivers' events read (two pages of five), none wanted, two left unread: no wait.
    assert body == {"events": [], "last_id": everything[9]["id"]}
    assert loop.time() - started < 10
    rest = await page(api, f"?since={body['last_id']}&collections=users&wait=1")
    assert rest == {"events": [], "last_id": everything[11]["id"]}


async def test_the_stream_follows_new_writes_and_resumes_with_last_event_id(api: Client) -> None:
    await created(api, "users", user_body("Before"))  # before the stream: not sent
    resp = await api.get("/api/changes?collections=users")
    assert resp.status == 200
    assert resp.content_type == "text/event-stream"
    names = ["Una", "Duo", "Tres"]
    for name in names:
        await created(api, "users", user_body(name))
    events = await next_events(resp, 3)
    assert [e["op"] for e in events] == ["create"] * 3
    resp.close()
    for name in ("Quat", "Cinq"):
        await created(api, "users", user_body(name))
    again = await api.get(
        "/api/changes?collections=users&since=0-1", headers={"Last-Event-ID": events[0]["id"]}
    )
    resumed = await next_events(again, 4)
    assert [e["id"] for e in resumed[:2]] == [e["id"] for e in events[1:]]
    assert len({e["id"] for e in resumed}) == 4
    again.close()


async def test_the_reader_reads_only_while_someone_follows(api: Client) -> None:
    hub = api.app[HUB]
    ids = [(await created(api, "users", user_body("Unfollowed")))["user_id"]]
    await asyncio.sleep(0.1)
    assert not hub.ready.is_set() and hub.position == (0, 0)  # no read without a subscriber
    first = await api.get("/api/changes?collections=users&since=0")
    second = await api.get("/api/changes?collections=users")
    ids.append((await created(api, "users", user_body("Followed")))["user_id"])
    assert [e["doc_id"] for e in await next_events(first, 2)] == ids
    assert [e["doc_id"] for e in await next_events(second, 1)] == ids[1:]
    first.close()
    second.close()
    for _ in range(100):  # idle again once both left (its read in progress ends first)
        if not (hub.subscribers or hub.ready.is_set()):
            break
        await asyncio.sleep(0.05)
    assert not hub.subscribers and not hub.ready.is_set()
    # Written while idle: the next subscriber reads them as history, then the live one, once.
    for name in ("Idle1", "Idle2"):
        ids.append((await created(api, "users", user_body(name)))["user_id"])
    resp = await api.get("/api/changes?collections=users&since=0")
    assert [e["doc_id"] for e in await next_events(resp, 4)] == ids
    ids.append((await created(api, "users", user_body("Live")))["user_id"])
    assert [e["doc_id"] for e in await next_events(resp, 1)] == ids[-1:]
    resp.close()


async def test_an_error_reply_while_the_reader_wakes_does_not_end_the_feed(
    api: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, refusals = feed.info, list[str]()

    async def busy_once(client: Redis, key: str) -> Any:
        task = asyncio.current_task()
        if not refusals and task is not None and task.get_name() == READER_TASK:
            refusals.append(key)
            raise ResponseError("BUSY Redis is busy running a script")
        return await real(client, key)

    monkeypatch.setattr(feed, "info", busy_once)
    user = await created(api, "users", user_body("Before"))
    first = await page(api)
    for name in ("Later", "Latest"):  # the reader wakes twice: both long polls are answered
        writer = asyncio.create_task(created(api, "users", user_body(name)))
        body = await page(api, f"?since={first['last_id']}&wait=20")
        await writer
        assert [e["op"] for e in body["events"]] == ["create"]
        first = body
    assert refusals and user["user_id"]


async def test_heartbeats_while_idle(api: Client) -> None:
    resp = await api.get("/api/changes")
    async with asyncio.timeout(5):
        lines = [await resp.content.readline() for _ in range(4)]
    assert lines.count(b": keep-alive\n") == 2
    resp.close()


@pytest.mark.parametrize(
    ("query", "headers", "parameter"),
    [
        ("?collections=nope", {}, "collections"),
        ("?since=banana", {}, "since"),
        ("?since=1-2-3", {}, "since"),
        ("", {"Last-Event-ID": "x"}, "Last-Event-ID"),
        ("?wait=61", JSON, "wait"),
        ("?wait=abc", JSON, "wait"),
        ("?limit=0", JSON, "limit"),
    ],
)
async def test_bad_parameters_are_400(
    api: Client, query: str, headers: dict[str, str], parameter: str
) -> None:
    resp = await api.get(f"/api/changes{query}", headers=headers)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["code"] == "invalid_parameter"
    assert error["details"]["parameter"] == parameter


async def test_resuming_past_the_trimmed_events_is_410_with_the_oldest_kept(redis: Redis) -> None:
    async with serving(redis, settings(changes_maxlen=10)) as api:
        first = await created(api, "users", user_body("First"))
        for n in range(260):  # XTRIM MAXLEN ~ trims whole nodes of 100 entries
            await created(api, "users", user_body(f"U{n}"))
        body = await page(api, "?limit=1")  # no since: the oldest kept
        oldest = body["events"][0]["id"]
        assert body["events"][0]["doc_id"] != first["user_id"]
        stale = "1-0"
        resp = await api.get(f"/api/changes?since={stale}", headers=JSON)
        assert resp.status == 410
        error = (await resp.json())["error"]
        assert error["code"] == "gone"
        assert error["details"] == {"since": stale, "oldest_id": oldest}
        resp = await api.get("/api/changes", headers={"Last-Event-ID": stale})
        assert resp.status == 410
        kept = await page(api, f"?since={oldest}&limit=2")
        assert len(kept["events"]) == 2


async def test_events_past_the_age_cap_are_gone_with_the_next_write(redis: Redis) -> None:
    async with serving(redis, settings(changes_max_age=1)) as api:
        aged = [await created(api, "users", user_body(f"Aged{n}")) for n in range(3)]
        ids = [e["id"] for e in (await page(api))["events"]]
        assert len(ids) == 3
        await asyncio.sleep(1.2)
        fresh = await created(api, "users", user_body("Fresh"))  # its commit trims the aged
        body = await page(api)
        assert [e["doc_id"] for e in body["events"]] == [fresh["user_id"]]
        assert aged  # their events are gone, not their documents
        for stale in ("1-0", ids[0], ids[1]):  # missed an aged event: told so
            resp = await api.get(f"/api/changes?since={stale}", headers=JSON)
            assert resp.status == 410, (stale, await resp.text())
            assert (await resp.json())["error"]["details"]["oldest_id"] == body["events"][0]["id"]
        if not isinstance(redis, FakeAsyncRedis):  # the server records the newest trimmed id
            # Caught up with the last aged event, it missed nothing: no 410 (review 24).
            caught_up = await page(api, f"?since={ids[2]}")
            assert [e["doc_id"] for e in caught_up["events"]] == [fresh["user_id"]]


async def test_a_consumer_from_before_a_reset_is_told_before_any_new_write(redis: Redis) -> None:
    async with serving(redis, settings()) as api:
        await created(api, "users", user_body("Before"))
        last = (await page(api))["last_id"]
        stream = api.app[KEYSPACE].schema.names.changes_key()
        await feed.restart(redis, stream)  # what reset and restore do, under their pause
        resp = await api.get(f"/api/changes?since={last}", headers=JSON)
        assert resp.status == 410, await resp.text()  # was 200 and empty: a silent gap
        assert (await page(api))["events"] == []  # the restart entry is never seen
        await created(api, "users", user_body("After"))
        resp = await api.get(f"/api/changes?since={last}", headers=JSON)
        assert resp.status == 410, await resp.text()


async def test_a_restart_gets_past_ids_from_a_clock_that_ran_ahead(redis: Redis) -> None:
    """Ids from a primary whose clock ran ahead (or before an NTP step back): the restart's
    entry still lands past them, so their consumers are told (review 25)."""
    async with serving(redis, settings()) as api:
        stream = api.app[KEYSPACE].schema.names.changes_key()
        ahead = f"{int(time.time() * 1000) + 600_000}-0"
        await redis.xadd(stream, {"op": "create"}, id=ahead)
        await feed.restart(redis, stream)
        resp = await api.get(f"/api/changes?since={ahead}", headers=JSON)
        assert resp.status == 410, await resp.text()


async def test_members_follow_only_what_they_may_read(redis: Redis) -> None:
    async with serving(redis, settings(system="normaldance")) as api:
        user = await created(api, "users", {"email": "m@example.com", "username": "member"})
        resp = await api.post(f"/api/users/{user['id']}/tokens", json={})
        member = bearer((await resp.json())["token"])
        resp = await api.get("/api/changes?collections=sessions", headers=JSON | member)
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "forbidden"
        body = await page(api, "", **member)
        assert [e["collection"] for e in body["events"]] == ["users"]
        resp = await api.get("/api/changes?collections=sessions", headers=JSON)  # admin
        assert resp.status == 200


async def test_events_of_sealed_documents_carry_no_field(redis: Redis) -> None:
    key = bytes(range(32))
    async with serving(redis, settings(encryption_key=key)) as api:
        await created(api, "users", user_body("Secret"))
        resp = await api.get("/api/changes", headers=JSON)
        raw = await resp.read()
        assert b"secret@example.com" not in raw.lower()
        (event,) = orjson.loads(raw)["events"]
        assert set(event) == {"id", "op", "collection", "doc_id", "revision", "at"}


async def test_a_revoked_tokens_stream_ends_within_a_heartbeat(redis: Redis) -> None:
    # Review 20b: the caller was checked once, at connect; a revoked token kept following.
    async with serving(redis, settings(system="normaldance")) as api:
        user = await created(api, "users", {"email": "r@example.com", "username": "revoked"})
        resp = await api.post(f"/api/users/{user['id']}/tokens", json={})
        member = bearer((await resp.json())["token"])
        stream = await api.get("/api/changes?collections=users", headers=member)
        assert stream.status == 200
        assert (await api.delete("/api/tokens/current", headers=member)).status == 204
        await created(api, "users", {"email": "n@example.com", "username": "newcomer"})
        async with asyncio.timeout(5):  # the stream ends before sending the newcomer
            while line := await stream.content.readline():
                assert not line.startswith(b"data:"), line
        again = await api.get("/api/changes?collections=users", headers=JSON | member)
        assert again.status == 401


async def test_an_id_past_the_newest_event_is_gone_not_waited_for(redis: Redis) -> None:
    """An id this feed never gave (another server's, or from before events were lost outside
    the service): waiting for ids past it skipped every event until then, a silent gap."""
    async with serving(redis, settings()) as api:
        await created(api, "users", user_body("Only"))
        body = await page(api)
        newest = body["last_id"]
        assert (await page(api, f"?since={newest}"))["events"] == []  # caught up: 200
        ms, seq = (int(part) for part in newest.split("-"))
        for ahead in (f"{ms}-{seq + 1}", f"{ms + 60_000}-0"):
            resp = await api.get(f"/api/changes?since={ahead}&wait=5", headers=JSON)
            assert resp.status == 410, await resp.text()
            error = (await resp.json())["error"]
            assert error["code"] == "gone"
            oldest = body["events"][0]["id"]
            assert error["details"] == {"since": ahead, "oldest_id": oldest, "newest_id": newest}
            resp = await api.get("/api/changes", headers={"Last-Event-ID": ahead})
            assert resp.status == 410  # the event stream too
        # A feed that never had an event: any id but 0-0 is past it.
        await redis.delete(api.app[KEYSPACE].schema.names.changes_key())
        assert (await api.get("/api/changes?since=5-0", headers=JSON)).status == 410
        assert (await api.get("/api/changes?since=0", headers=JSON)).status == 200


async def test_a_burst_past_the_cap_between_two_reads_ends_the_stream(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Review 38: the one reader read on from its position although the events after it had
    # been trimmed unread (one batch create past the cap): live consumers missed them with
    # the stream open and no 410. Now every consumer's stream ends, and resuming is a 410.
    async with serving(redis, settings(changes_maxlen=10)) as api:
        await created(api, "users", user_body("First"))
        resp = await api.get("/api/changes?collections=users")
        assert resp.status == 200
        await created(api, "users", user_body("Seen"))
        seen = await next_events(resp, 1)
        hub = api.app[HUB]
        read = feed.read_new

        async def slow_read(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
            await burst.wait()  # the whole burst lands (and is trimmed) before this read
            return await read(*args, **kwargs)

        burst = asyncio.Event()
        monkeypatch.setattr(feed, "read_new", slow_read)  # the hub looks it up at each read
        await asyncio.sleep(0.7)  # the read in progress ends (BLOCK_MS) and the next waits
        batch = [user_body(f"B{n}") for n in range(300)]
        answer = await api.post("/api/users", json=batch, headers=bearer(ADMIN_TOKEN))
        assert answer.status in (200, 201), await answer.text()
        burst.set()
        async with asyncio.timeout(10):
            # The stream ends (its connection is cut): nothing it sent would follow on.
            with contextlib.suppress(ClientPayloadError):
                while (await resp.content.readline()) != b"":
                    pass
        assert hub.dropped >= 1
        again = await api.get("/api/changes", headers=JSON | {"Last-Event-ID": seen[0]["id"]})
        assert again.status == 410


async def test_a_page_whose_events_were_trimmed_while_it_read_is_410(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Review 38: the page checked the trim, then read: a trim between the two made it start
    # at the oldest kept event and answer 200, skipping the events trimmed in between.
    async with serving(redis, settings(changes_maxlen=10)) as api:
        await created(api, "users", user_body("First"))
        since = (await page(api))["events"][0]["id"]
        check = changes_api._check_kept

        async def then_burst(request: web.Request, after: Any) -> None:
            await check(request, after)  # kept when checked; then 300 writes trim past it
            batch = [user_body(f"B{n}") for n in range(300)]
            answer = await api.post("/api/users", json=batch, headers=bearer(ADMIN_TOKEN))
            assert answer.status in (200, 201), await answer.text()

        monkeypatch.setattr(changes_api, "_check_kept", then_burst)
        resp = await api.get(f"/api/changes?since={since}", headers=JSON)
        assert resp.status == 410, await resp.text()
        assert (await resp.json())["error"]["details"]["since"] == since


async def test_a_stream_opened_while_the_reader_recovers_from_a_trim_misses_nothing(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Review 39: after a trim past its position the reader looked up its new position with
    # `ready` still set; a stream opened meanwhile read its history at once, and the reader's
    # new position jumped past what was written in between: a silent gap.
    async with serving(redis, settings()) as api:
        await created(api, "users", user_body("First"))
        follower = await api.get("/api/changes?collections=users")  # the reader runs
        assert follower.status == 200
        hub = api.app[HUB]
        read, newest = feed.read_new, hub._newest
        tripped, release = asyncio.Event(), asyncio.Event()

        async def trimmed_once(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
            if not tripped.is_set():
                tripped.set()
                raise feed.Trimmed("as if a burst had passed the cap")
            return await read(*args, **kwargs)

        async def slow_newest() -> Any:
            await release.wait()  # a slow lookup (a BUSY reply retried, review 39)
            return await newest()

        monkeypatch.setattr(hub, "_newest", slow_newest)
        monkeypatch.setattr(feed, "read_new", trimmed_once)
        async with asyncio.timeout(5):
            await tripped.wait()
        last = (await page(api))["last_id"]
        opening = asyncio.ensure_future(
            api.get("/api/changes?collections=users", headers={"Last-Event-ID": last})
        )
        await asyncio.sleep(0.1)
        names = ["Una", "Duo", "Tres"]
        for name in names:
            await created(api, "users", user_body(name))
        release.set()
        await created(api, "users", user_body("Quat"))
        resp = await opening
        assert resp.status == 200
        events = await next_events(resp, 4)
        assert len({e["doc_id"] for e in events}) == 4
        resp.close()
        follower.close()
