"""The change feed's fan-out: one reader task per app process follows the stream (XREAD BLOCK
on a pooled connection of its own) and hands each event to the subscribers that want it,
through a bounded queue each. A subscriber whose queue is full is dropped (its connection
closed): it holds at most ``queue_size`` events, however slowly its client reads, and
resumes with Last-Event-ID. No subscriber costs a Redis connection of its own.

The reader reads only while someone subscribes: a process without subscribers sends Redis
no XREAD and decodes no event (it was ~5% of a create's CPU under load). The first
subscriber after an idle spell wakes it, and it starts again from the stream's newest id:
subscribers read history themselves, after subscribing, so nothing falls between."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from keyspace import changes, feed

log = logging.getLogger("multiframe.changes")

BLOCK_MS = 500  # below the smallest client socket timeout (1 s): a block is no timeout
RETRY_S = 0.5  # after the reader met an unreachable Redis
BATCH = 100  # events per XREAD at most
STOP_S = 2.0  # how long a stop waits for the reader (its read ends within BLOCK_MS)


class Subscriber:
    """One consumer's queue of events, of the collections in ``collections`` only."""

    def __init__(self, collections: frozenset[str], size: int) -> None:
        self.collections = collections
        # An event, or None once dropped (the one entry then: what was queued is let go).
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(size)
        self.dropped = asyncio.Event()
        self.on_drop: Callable[[], None] = lambda: None

    def wants(self, event: dict[str, Any]) -> bool:
        return event["collection"] in self.collections

    def drop(self) -> None:
        """Forget what is queued and end the consumer (its handler closes the connection)."""
        if self.dropped.is_set():
            return
        self.dropped.set()
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)
        self.on_drop()


READER_TASK = "change-feed reader"


class Hub:
    """The process's one reader of the feed ``key`` on ``client``."""

    def __init__(self, client: Redis, key: str, queue_size: int) -> None:
        self.client, self.key, self.queue_size = client, key, queue_size
        self.subscribers: set[Subscriber] = set()
        self.position: changes.EventId = (0, 0)
        self.dropped = 0  # subscribers dropped for a full queue, for the logs and tests
        self._task: asyncio.Task[None] | None = None
        # Set once the position is known, cleared while idle: a subscriber reads its history
        # only once it is set, or could miss the events between that read and the position
        # the reader starts from.
        self.ready = asyncio.Event()
        self._wanted = asyncio.Event()  # a subscriber came while the reader was idle
        self._stopping = False
        # Events per read: at most half a queue, so that a burst of writes alone never fills
        # the queue of a subscriber that keeps up.
        self.batch = max(1, min(BATCH, queue_size // 2))

    async def start(self) -> None:
        """Start the reader (idle until someone subscribes); the app serves meanwhile (a worker
        whose Redis is not there yet must still answer), and subscribers wait for
        :attr:`ready`."""
        self._task = asyncio.create_task(self._run(), name=READER_TASK)

    def _drop_all(self) -> int:
        """Drop every subscriber (each stream ends); how many there were."""
        dropping = list(self.subscribers)
        self.subscribers.clear()
        for sub in dropping:
            sub.drop()
        return len(dropping)

    async def stop(self) -> None:
        self._drop_all()
        self._stopping = True
        self._wanted.set()  # an idle reader wakes, sees the stop and ends
        if self._task is None:
            return
        # The read in progress ends within BLOCK_MS: the reader stops by itself, never
        # cancelled inside the client's command (a cancelled one was seen to hang a shutdown).
        done, _ = await asyncio.wait({self._task}, timeout=STOP_S)
        if not done:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=STOP_S)
        if self._task.done() and not self._task.cancelled():
            with contextlib.suppress(Exception):
                self._task.result()

    def subscribe(self, collections: frozenset[str]) -> Subscriber:
        """A consumer of every event read from now on: register, wait for :attr:`ready`, then
        read history (nothing falls between the two)."""
        sub = Subscriber(collections, self.queue_size)
        self.subscribers.add(sub)
        self._wanted.set()
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    async def _newest(self) -> changes.EventId:
        while not self._stopping:
            try:
                return feed.last_id(await feed.info(self.client, self.key))
            except (RedisConnectionError, RedisTimeoutError, OSError, ResponseError) as exc:
                # An error reply too (BUSY while a long script runs, a failover's MASTERDOWN):
                # every wake asks, so giving up here would end the feed until a restart.
                log.warning("change feed: cannot read the stream yet (%s); retrying", exc)
                await asyncio.sleep(RETRY_S)
        return (0, 0)

    async def _wake(self) -> None:
        """Wait for a subscriber, then take the stream's newest id as the position."""
        self.ready.clear()
        self._wanted.clear()  # set by a subscriber that came while the reader was reading
        await self._wanted.wait()
        self._wanted.clear()
        self.position = await self._newest()
        self.ready.set()

    async def _run(self) -> None:
        # A reader that died would leave every stream of the process waiting until a restart:
        # whatever ends a pass is logged, and the reader goes on from its position.
        while not self._stopping:
            try:
                await self._follow()
            except Exception:
                log.exception("change feed: the reader failed; going on in %.1f s", RETRY_S)
                await asyncio.sleep(RETRY_S)

    async def _follow(self) -> None:
        while not self._stopping:
            if not self.subscribers:
                await self._wake()
                continue
            try:
                events = await feed.read_new(
                    self.client, self.key, self.position, BLOCK_MS, self.batch
                )
            except feed.Trimmed:
                # As after an idle spell: a subscriber coming while the new position is looked
                # up waits for it, or could read its history before that position and miss
                # what falls between (review 39).
                self.ready.clear()
                self._overrun()
                self.position = await self._newest()
                self.ready.set()
                continue
            except (RedisConnectionError, RedisTimeoutError, OSError, ResponseError) as exc:
                # Nothing is lost: the position stays, and the next read starts there.
                log.warning("change feed: reading the stream failed (%s); retrying", exc)
                await asyncio.sleep(RETRY_S)
                continue
            for event in events:
                self.position = changes.parse_id(event["id"])
                self.publish(event)
            # Let the subscribers take what was queued before the next batch comes.
            await asyncio.sleep(0)

    def _overrun(self) -> None:
        """Events after the position were trimmed before the reader read them (a burst past
        the feed's cap between two reads, review 38): every subscriber would miss them, so
        each is dropped, and resumes with Last-Event-ID (a 410 when it had not read them)."""
        dropped = self._drop_all()
        self.dropped += dropped
        log.warning(
            "change feed: events were trimmed before the reader read them (a burst past "
            "MULTIFRAME_CHANGES_MAXLEN); %d subscribers dropped to resume from their ids",
            dropped,
        )

    def publish(self, event: dict[str, Any]) -> None:
        for sub in list(self.subscribers):
            if not sub.wants(event):
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                self.subscribers.discard(sub)
                self.dropped += 1
                behind = sub.queue.maxsize
                log.info("change feed: a subscriber fell %d events behind; dropped", behind)
                sub.drop()


def hub_context(
    hub_key: web.AppKey[Hub], make: Callable[[web.Application], Hub]
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A ``cleanup_ctx`` running the app's hub (made once its keyspace is there)."""

    async def run(app: web.Application) -> AsyncIterator[None]:
        hub = make(app)
        await hub.start()
        app[hub_key] = hub
        yield
        await hub.stop()

    return run
