"""``GET /api/changes``: the change feed (docs/changes.md), as Server-Sent Events or, for a
client asking for ``application/json``, as a JSON page with an optional long poll.

Where a consumer starts: ``Last-Event-ID`` (what an EventSource sends when it reconnects)
wins over ``since`` (which the reconnecting URL still carries); without either, a stream
starts with the events committed from now on and a JSON page with the oldest event kept.
Resuming from an event the feed no longer keeps the next of is 410 ``gone``, never a gap."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import hdrs, web
from redis.exceptions import RedisError

from keyspace import changes as feed_events
from keyspace import feed

from .auth import caller
from .cors import EXPOSE_HEADERS, allowed_origin
from .errors import ApiError
from .feed_hub import Hub, Subscriber, hub_context
from .policy import require_admin
from .routing import Route
from .state import KEYSPACE, RATE_HEADERS, SETTINGS, keyspace, system

HUB = web.AppKey("change_feed", Hub)

EVENT_STREAM = "text/event-stream"
JSON = "application/json"
MAX_WAIT = 60  # seconds a JSON page may wait for an event
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
READY_S = 5.0  # the reader's first read of the stream; TimeoutError (503) past it
SCAN_PAGES = 20  # XRANGE pages one JSON page reads at most, past events of other collections


def _bad(parameter: str, message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", message, details={"parameter": parameter})


def collections(request: web.Request) -> frozenset[str]:
    """The collections asked for (all the caller may read when none is named): an unknown
    one is 400; one only admins read, asked for by a member, 403."""
    entities = {spec.collection: spec for spec in system(request).schema.entities}
    who = caller(request)
    raw = request.query.get("collections", "")
    if not raw.strip():
        return frozenset(n for n, s in entities.items() if who.admin or not s.admin_read)
    asked = [name.strip() for name in raw.split(",") if name.strip()]
    unknown = sorted({name for name in asked if name not in entities})
    if unknown:
        raise ApiError(
            400,
            "invalid_parameter",
            f"no such collection: {', '.join(unknown)}",
            details={"parameter": "collections", "unknown": unknown},
        )
    for name in asked:
        if entities[name].admin_read:
            require_admin(who, f"read {name}")
    return frozenset(asked)


def unrevised(request: web.Request) -> frozenset[str]:
    """The collections whose events the caller gets without their revision: those with
    private fields, for a member. A revision is the hash of the whole stored document, so a
    member could test guesses of the fields it is not shown against it (review 40)."""
    if caller(request).admin:
        return frozenset()
    entities = system(request).schema.entities
    return frozenset(spec.collection for spec in entities if spec.private_fields)


def shown(event: dict[str, Any], unrevised: frozenset[str]) -> dict[str, Any]:
    """``event`` as sent: a copy without its revision when its collection is ``unrevised``
    (live events are shared by every subscriber: never changed in place)."""
    if event["collection"] not in unrevised:
        return event
    return {**event, "revision": None}


def since(request: web.Request) -> feed_events.EventId | None:
    """Where to resume: after ``Last-Event-ID``, else after ``since``; None for neither."""
    for name, text in (
        ("Last-Event-ID", request.headers.get("Last-Event-ID")),
        ("since", request.query.get("since")),
    ):
        if text is not None and text.strip():
            try:
                return feed_events.parse_id(text)
            except ValueError as exc:
                raise _bad(name, f"{name}: {exc}") from None
    return None


def _bounded(request: web.Request, name: str, default: int, high: int, low: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise _bad(name, f"{name} must be a whole number from {low} to {high}")
    return value


def wants_json(request: web.Request) -> bool:
    """A page of JSON when the client asks for it and not for an event stream."""
    accept = request.headers.get(hdrs.ACCEPT, "")
    return JSON in accept and EVENT_STREAM not in accept


async def _check_kept(request: web.Request, after: feed_events.EventId | None) -> None:
    if after is None:
        return
    state = await feed.info(keyspace(request).client, _key(request))
    newest = feed.last_id(state)
    if after > newest:
        # No id this feed gave: another server's, or from before the data was replaced or
        # lost outside the service (a failover that lost writes, a FLUSHALL). Waiting for
        # ids past it would skip every event until then: a silent gap.
        raise _gone(
            after,
            state,
            "this id is past the newest event this feed ever had: the feed never gave it "
            "(another feed's, or events lost outside the service); re-read what you mirror, "
            "then follow without since (a page then starts with the oldest event kept)",
            newest_id=feed_events.format_id(newest),
        )
    if feed_events.trimmed_past(after, state):
        raise _gone(after, state, TRIMMED)


TRIMMED = (
    "events after this id were trimmed from the feed (its cap: MULTIFRAME_CHANGES_MAXLEN, "
    "MULTIFRAME_CHANGES_MAX_AGE); start again from the oldest kept"
)


def _gone(
    after: feed_events.EventId | None, state: Mapping[str, Any], message: str, **more: str
) -> ApiError:
    """410 ``gone``: the consumer re-reads what it mirrors; ``details.oldest_id`` is the
    oldest event kept (None when none is)."""
    since = feed_events.format_id(after) if after is not None else None
    details = {"since": since, "oldest_id": feed_events.oldest_id(state)}
    return ApiError(410, "gone", message, details={**details, **more})


async def _ready(hub: Hub) -> None:
    """Wait (briefly: it needs one read of Redis) for the reader to know where it starts."""
    async with asyncio.timeout(READY_S):
        await hub.ready.wait()


def _key(request: web.Request) -> str:
    return system(request).schema.names.changes_key()


@dataclass(frozen=True)
class _Read:
    """What :func:`_page` read: the events, the id read up to (past events of other
    collections too, so that the next page does not read them again), and whether it read
    to the stream's end (else it stopped at ``limit`` events or at its scan bound)."""

    events: list[dict[str, Any]]
    position: feed_events.EventId | None
    at_end: bool


async def _page(
    request: web.Request, wanted: frozenset[str], after: feed_events.EventId | None, limit: int
) -> _Read:
    """Up to ``limit`` events of ``wanted`` after ``after``, reading at most SCAN_PAGES
    pages of the stream."""
    client, key = keyspace(request).client, _key(request)
    out: list[dict[str, Any]] = []
    position = after
    hidden = unrevised(request)
    for _ in range(SCAN_PAGES):
        events = await feed.after(client, key, position, feed.PAGE)
        for event in events:
            if event["collection"] in wanted:
                out.append(shown(event, hidden))
            position = feed_events.parse_id(event["id"])
            if len(out) == limit:
                return _Read(out, position, at_end=False)
        if len(events) < feed.PAGE:
            return _Read(out, position, at_end=True)
    return _Read(out, position, at_end=False)


async def _json_page(
    request: web.Request, wanted: frozenset[str], after: feed_events.EventId | None
) -> bytes:
    limit = _bounded(request, "limit", DEFAULT_LIMIT, MAX_LIMIT, 1)
    wait = _bounded(request, "wait", 0, MAX_WAIT, 0)
    hub = request.app[HUB]
    sub = hub.subscribe(wanted) if wait else None  # before reading: nothing falls between
    try:
        if sub is not None:
            await _ready(hub)
        read = await _page(request, wanted, after, limit)
        # Nothing wanted in what the scan bound let it read, but more to read: answer at once
        # (last_id advanced) rather than wait for news while older events wait unread.
        if not read.events and read.at_end and sub is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await sub.queue.get()  # any event: the page reads them
            read = await _page(request, wanted, read.position, limit)
        events, position = read.events, read.position
    finally:
        if sub is not None:
            hub.unsubscribe(sub)
    last = feed_events.format_id(position) if position is not None else None
    return orjson.dumps({"events": events, "last_id": last})


def _stream_headers(request: web.Request) -> dict[str, str]:
    headers = {
        hdrs.CONTENT_TYPE: EVENT_STREAM,
        hdrs.CACHE_CONTROL: "no-cache",
        "X-Accel-Buffering": "no",  # a proxy in front must not hold events back
        **request.get(RATE_HEADERS, {}),
    }
    origin = allowed_origin(request)
    if request.app[SETTINGS].cors_origins and origin is not None:
        # The CORS middleware leaves a response it finds sent alone.
        headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
        headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = EXPOSE_HEADERS
        headers[hdrs.VARY] = hdrs.ORIGIN
    return headers


async def _still_allowed(request: web.Request) -> bool:
    """Whether the stream's token still acts as it did when the stream began (a revoked
    token, a deleted user or a changed role ends the stream)."""
    who = caller(request)
    try:
        return await keyspace(request).tokens.role_of(who.token_hash) == who.role
    except RedisError:
        return False  # cannot tell: end the stream; the client resumes with Last-Event-ID


async def _follow(
    request: web.Request,
    response: web.StreamResponse,
    sub: Subscriber,
    sent: feed_events.EventId | None,
) -> None:
    """Send the live queue until the subscriber is dropped or its token no longer acts as it
    did: checked before each batch of events is sent and at each heartbeat (one lookup per
    batch, however many events it holds)."""
    heartbeat = request.app[SETTINGS].changes_heartbeat
    hidden = unrevised(request)
    while True:
        try:
            async with asyncio.timeout(heartbeat):
                batch = [await sub.queue.get()]
        except TimeoutError:
            if not await _still_allowed(request):
                return
            await response.write(feed_events.HEARTBEAT)
            continue
        while not sub.queue.empty():
            batch.append(sub.queue.get_nowait())
        if not await _still_allowed(request):
            return  # revoked, or its role changed: the client reconnects and is told
        for live in batch:
            if live is None:  # dropped
                return
            at = feed_events.parse_id(live["id"])
            if sent is None or at > sent:
                await response.write(feed_events.sse(shown(live, hidden)))
                sent = at


async def _stream(
    request: web.Request, wanted: frozenset[str], after: feed_events.EventId | None
) -> web.StreamResponse:
    hub = request.app[HUB]
    sub = hub.subscribe(wanted)
    try:
        await _ready(hub)
    except BaseException:
        hub.unsubscribe(sub)
        raise
    transport = request.transport
    if transport is not None:
        sub.on_drop = transport.abort  # a writer blocked on a full socket ends at once
    response = web.StreamResponse(headers=_stream_headers(request))
    try:
        await response.prepare(request)
        await response.write(feed_events.HEARTBEAT)  # the client knows at once that it is following
        sent = after
        while sent is not None:  # history first; then the live queue, without repeats
            read = await _page(request, wanted, sent, MAX_LIMIT)
            for old in read.events:
                await response.write(feed_events.sse(old))
            if read.position == sent:
                break
            sent = read.position
        await _follow(request, response, sub, sent)
    except feed.Trimmed:
        pass  # trimmed while it read (review 38): the stream ends, Last-Event-ID meets a 410
    except ConnectionError:
        if not sub.dropped.is_set():
            raise
    finally:
        hub.unsubscribe(sub)
    return response


async def changes(request: web.Request) -> web.StreamResponse:
    """The change feed of the collections the caller may read (module docstring)."""
    wanted = collections(request)
    after = since(request)
    as_json = wants_json(request)
    if as_json:
        # Parameters are checked before anything is read.
        _bounded(request, "limit", DEFAULT_LIMIT, MAX_LIMIT, 1)
        _bounded(request, "wait", 0, MAX_WAIT, 0)
    await _check_kept(request, after)
    if as_json:
        try:
            body = await _json_page(request, wanted, after)
        except feed.Trimmed:  # trimmed while it read (review 38): never a page with a gap
            state = await feed.info(keyspace(request).client, _key(request))
            raise _gone(after, state, TRIMMED) from None
        return web.Response(body=body, content_type=JSON)
    if request.method == hdrs.METH_HEAD:
        return web.Response(headers={hdrs.CONTENT_TYPE: EVENT_STREAM})
    return await _stream(request, wanted, after)


def changes_route() -> Route:
    return Route(
        "GET",
        "/api/changes",
        changes,
        "Follow committed writes: Server-Sent Events, or a JSON page (long poll)",
        "changes",
        returns="ChangePage",
        errors=(400, 403, 410),
    )


def _make(app: web.Application) -> Hub:
    settings = app[SETTINGS]
    ks = app[KEYSPACE]
    return Hub(ks.client, ks.schema.names.changes_key(), settings.changes_queue)


async def _close_subscribers(app: web.Application) -> None:
    """On shutdown, before aiohttp waits for the handlers: end every stream (its clients
    resume elsewhere with Last-Event-ID)."""
    if HUB in app:
        for sub in list(app[HUB].subscribers):
            sub.drop()


def install_feed(app: web.Application) -> None:
    """Run the app's change-feed reader while it serves (after the keyspace's context)."""
    app.cleanup_ctx.append(hub_context(HUB, _make))
    app.on_shutdown.append(_close_subscribers)


def event_schema() -> Mapping[str, Any]:
    """One event, as ``data:`` carries it and a JSON page lists it."""
    return {
        "type": "object",
        "required": ["id", "op", "collection", "doc_id", "revision", "at"],
        "properties": {
            "id": {"type": "string", "description": "the event id (stream entry id)"},
            "op": {"type": "string", "enum": ["create", "update", "delete"]},
            "collection": {"type": "string"},
            "doc_id": {"type": "string"},
            "revision": {
                "type": ["string", "null"],
                "description": (
                    "the document's ETag value after the write; null for a delete, and for a "
                    "member following a collection with private fields"
                ),
            },
            "at": {"type": "string", "format": "date-time", "description": "server time, UTC"},
        },
    }
