"""Start-up's work on Redis, quick whatever the data size, and the slow rest in the background.

Serving starts once the modules are probed, the singletons exist and the first admin is
decided (from the user keys, not an index). Index versions a new definition needs
(projections, a full build) are made by :class:`IndexWork` while the service serves;
their lists answer 503 ``not_ready`` until done, as lists do while RediSearch rebuilds an
index after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from keyspace import Capabilities, Keyspace, KeyspaceError, System, keyring, upgrade

from .bootstrap import bootstrap
from .config import Settings

log = logging.getLogger("multiframe.api")

SETUP_CHECK_SECONDS = 1.0
# Start-up waits this long for index work before serving anyway: an empty or small
# keyspace starts with complete indexes, a large one serves (lists 503) while they build.
START_WAIT_SECONDS = 5.0
RETRY_FIRST_SECONDS, RETRY_MAX_SECONDS = 0.5, 30.0
# Index work failing this many attempts in a row (~3.5 s of retries) says so in its heartbeat.
FAILURES_SHOWN = 3
# How long start-up keeps trying a Redis that is down or loading before it gives up.
START_RETRY_SECONDS = 60.0
# A worker's retries of its start: it answers 503 meanwhile, so it never gives up.
ATTACH_FIRST_SECONDS, ATTACH_MAX_SECONDS = 0.2, 2.0


class IndexWork:
    """The one background task building the keyspace's pending index versions."""

    def __init__(self, ks: Keyspace) -> None:
        self.ks = ks
        self.task: asyncio.Task[None] | None = None
        self.beat: asyncio.Task[None] | None = None
        # Attempts failed in a row without progress, the last one's error, and whether one
        # runs now: what :attr:`failure` says (review 42, 43).
        self._failed, self._error, self._attempting = 0, "", False

    @property
    def failure(self) -> str | None:
        """Why the index work keeps failing, for the heartbeat (``check`` names it rather
        than waiting for it): the last error once FAILURES_SHOWN attempts in a row failed
        without progress and while none runs; None while it is healthy, when one failure
        (a Redis restart) is what the retries are for."""
        if self._failed < FAILURES_SHOWN or self._attempting:
            return None
        return self._error

    def start(self) -> asyncio.Task[None] | None:
        """Start the task unless it runs or nothing is pending; the running task, if any."""
        if (self.task is None or self.task.done()) and self.ks.pending_indexes:
            self._failed = 0
            self.task = asyncio.create_task(self._run())
        return self.task

    async def _run(self) -> None:
        self.beat = beat = asyncio.create_task(self._beat())
        try:
            await self._build()
        finally:
            await cancel(beat)  # stop() cancels it too: this await may itself be cancelled

    async def _beat(self) -> None:
        """Keep ``mf:lock:indexing`` alive while building (keyspace.upgrade.mark_indexing)."""
        while self.task is not None and not self.task.done():
            with contextlib.suppress(RedisError, OSError):
                pending, names = self.ks.pending_indexes, self.ks.schema.names
                await upgrade.mark_indexing(self.ks.client, names, pending, self.failure)
            await asyncio.sleep(upgrade.INDEXING_BEAT_S)

    async def _build(self) -> None:
        delay = RETRY_FIRST_SECONDS
        while self.ks.pending_indexes:
            log.info(
                "building the current index version of %s; their lists answer 503 meanwhile",
                ", ".join(self.ks.pending_indexes),
            )
            left = len(self.ks.pending_indexes)
            self._attempting = True
            try:
                await self.ks.upgrade_indexes(progress=log.info)
            except (RedisError, OSError, KeyspaceError) as exc:  # down, loading, restarted
                log.warning("index build interrupted (%s); retrying in %.1fs", exc, delay)
                self._count(exc, left)
            except Exception as exc:
                log.exception("index build failed; retrying in %.1fs", delay)
                self._count(exc, left)
            else:
                log.info("indexes complete")
                self._failed = 0
                return
            finally:
                self._attempting = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)

    def _count(self, exc: BaseException, left: int) -> None:
        progressed = len(self.ks.pending_indexes) < left
        self._failed = 0 if progressed else self._failed + 1
        self._error = f"{type(exc).__name__}: {exc}"

    async def stop(self) -> None:
        for task in (self.task, self.beat):
            if task is not None:
                await cancel(task)


async def cancel(task: asyncio.Task[None]) -> None:
    # On Python 3.11 a cancel can be lost: redis-py awaits asyncio.wait_for, which returns
    # the result when the command completes in the same loop turn as the cancel.
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.1)


async def prepare(
    ks: Keyspace, system: System, settings: Settings, work: IndexWork
) -> Capabilities:
    """Start-up's work on Redis, also redone when the server lost it. Never waits for an
    index: long index work runs in ``work``, awaited here at most START_WAIT_SECONDS."""
    caps = await ks.setup_basics()
    await unlock(ks, settings.encryption_key, create=True)
    await bootstrap(ks, system, settings.admin_token)
    task = work.start()
    if task is not None:
        await asyncio.wait([task], timeout=START_WAIT_SECONDS)
    return caps


async def unlock(ks: Keyspace, key: bytes | None, *, create: bool) -> None:
    """The keys of the sensitive fields (docs/encryption.md): a key that cannot serve this
    keyspace (missing, wrong, retired) stops the start, before anything is written."""
    try:
        sealer = await ks.unlock(key, create=create)
    except keyring.KeyringError as exc:
        raise SystemExit(f"cannot start: {exc}") from None
    if sealer is not None:
        state = "; plaintext left: run `multiframe-admin encrypt`" if sealer.plaintext_left else ""
        log.info("sensitive fields sealed under key id %s%s", sealer.cipher.current, state)


async def _retried(start: Callable[[], Awaitable[Capabilities]]) -> Capabilities:
    """``start()``, retried while Redis is down or loading (the embedded server killed during
    start-up is being restarted by its supervisor), for up to START_RETRY_SECONDS."""
    started, delay = time.monotonic(), 0.2
    while True:
        try:
            return await start()
        except (RedisError, OSError, KeyspaceError) as exc:
            if time.monotonic() - started > START_RETRY_SECONDS:
                raise
            log.warning("redis not ready at start (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def prepare_at_start(
    ks: Keyspace, system: System, settings: Settings, work: IndexWork
) -> Capabilities:
    """:func:`prepare`, retried while Redis is down or loading."""
    return await _retried(lambda: prepare(ks, system, settings, work))


async def attach(ks: Keyspace, attached: asyncio.Event, key: bytes | None) -> None:
    """A worker's start (``--workers``), run while it already serves: its parent has done
    :func:`prepare` and keeps doing it, so only what this process needs to know (modules,
    singletons' defaults, which index versions are still being built) is read, retried for
    as long as Redis is down or loading; then ``attached`` is set and the worker follows the
    parent's index builds (:func:`follow_indexes`). Until then the worker answers 503
    ``redis_unavailable`` (app/main.py), as one process does while its Redis is down: its
    listening socket takes connections from the moment the parent binds it, so a worker
    waiting for Redis before serving would leave its share of them unanswered."""
    delay = ATTACH_FIRST_SECONDS
    while True:
        try:
            await ks.setup_basics()  # idempotent, safe beside other workers
            # The parent checked the key and made the keyring: a refusal here stops this worker.
            await unlock(ks, key, create=True)
            break
        except (RedisError, OSError, KeyspaceError) as exc:
            log.warning("redis not ready at start (%s); retrying in %.1fs", exc, delay)
        except Exception:  # the parent's checks passed: this server changed; keep trying
            log.exception("attaching to redis failed; retrying in %.1fs", delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, ATTACH_MAX_SECONDS)
    attached.set()
    await follow_indexes(ks)


async def follow_indexes(ks: Keyspace) -> None:
    """A worker's watchdog: serve the lists of an index the parent finished building. What
    :func:`keep_prepared` redoes after Redis lost it is the parent's too; meanwhile those
    lists answer 503, as here while the index is missing."""
    while True:
        await asyncio.sleep(SETUP_CHECK_SECONDS)
        await _refresh_keys(ks)
        if not ks.pending_indexes:
            continue
        try:
            await ks.forget_built()
        except (RedisError, OSError, KeyspaceError) as exc:  # down or loading: next round
            log.debug("index check failed: %s", exc)


async def _refresh_keys(ks: Keyspace) -> None:
    """Follow the keyring (a rotation's new key, the end of a conversion; docs/encryption.md)."""
    before = ks.keys.stranded
    try:
        await ks.keys.refresh()
    except (RedisError, OSError) as exc:  # down or loading: next round
        log.debug("keyring refresh failed: %s", exc)
    except keyring.KeyringError as exc:
        if ks.keys.stranded != before:  # one line per new cause, not one a second
            log.error(
                "encryption: the keyring no longer serves this process's key; requests that "
                "seal or open answer 503 encryption_key_retired and /ready 503: %s",
                exc,
            )


async def keep_prepared(ks: Keyspace, system: System, settings: Settings, work: IndexWork) -> None:
    """Redo :func:`prepare` whenever the server no longer has what it made (restarted on an
    empty data dir, flushed): without it lists and /ready stay 503 until the app restarts."""
    while True:
        await asyncio.sleep(SETUP_CHECK_SECONDS)
        await _refresh_keys(ks)
        try:
            if await ks.needs_setup():
                log.warning("redis lost the service's indexes or defaults; setting them up again")
                await prepare(ks, system, settings, work)
                log.info("redis set up again")
        except (RedisError, OSError, KeyspaceError) as exc:  # down or loading: next round
            log.debug("setup check failed: %s", exc)
        except (Exception, SystemExit):  # bootstrap exits on a misconfigured admin
            log.exception("setting redis up again failed; retrying")
