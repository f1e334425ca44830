"""How connections are served: the runner ``python -m app`` uses, the one error format for
requests aiohttp refuses before the app sees them, and a graceful stop on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import select
import signal
import socket
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError, HttpProcessingError, LineTooLong

from .config import Settings
from .errors import current, error_response
from .tracing import HEADER, REQUEST_ID, choose
from .wire import unsupported_encoding

log = logging.getLogger("multiframe")

MAX_REASON = 120  # characters of aiohttp's parser message quoted back to the client
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
DRAIN_SECONDS = 2.0  # at most, accepting what is queued on inherited sockets before a stop
DRAIN_POLL_SECONDS = 0.01
DRAIN_SETTLE_SECONDS = 0.2  # for the requests of connections so accepted to be read


def server_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments of the ``web.AppRunner`` that serves the app."""
    return {
        "access_log": None,  # the app logs one line per request itself
        "shutdown_timeout": settings.shutdown_timeout,
        # aiohttp arms this timer when a connection opens and re-arms it after each response;
        # it closes the connection if no complete request head has arrived by then, so it
        # bounds idle keep-alive connections and slowly sent headers (slow-loris) alike.
        "keepalive_timeout": settings.keepalive_timeout,
        # After answering without reading the whole body (401, 413, 408, ...) aiohttp keeps
        # reading it for up to 10 s so the client sees the response; a body that timed out
        # has had its time already.
        "lingering_time": min(10.0, settings.body_timeout),
    }


def parser_error(status: int, exc: BaseException | None) -> web.Response:
    """The error-format response for a request aiohttp could not parse (``exc`` from its HTTP
    parser) or, as a last resort, for an exception that escaped every middleware."""
    if isinstance(exc, LineTooLong):
        return error_response(
            400, "bad_request", f"the request line or a header field is over {exc.args[1]} bytes"
        )
    if isinstance(exc, ContentEncodingError):
        # br or zstd: aiohttp's parser refuses them itself when their decoder is not installed.
        refusal = unsupported_encoding(None)  # the parser's error does not name the coding
        return error_response(
            refusal.status, refusal.code, refusal.message, refusal.details, refusal.headers
        )
    if isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500:
        # The parser's message quotes the offending bytes under a caret on later lines.
        reason = (exc.message.splitlines() or ["unparsable"])[0].rstrip(":")
        return error_response(
            exc.code, "bad_request", f"malformed HTTP request: {reason[:MAX_REASON]}"
        )
    if status == 504:
        return error_response(504, "timeout", "the request took too long; retry")
    return error_response(500, "internal_error", "unexpected server error; it has been logged")


class ApiRequestHandler(web.RequestHandler):
    """aiohttp's connection handler, answering the requests it refuses itself (malformed HTTP,
    oversized request lines and headers) in the service's error format, not plain text."""

    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # as aiohttp's own: too late for another response
            raise ConnectionError("a response was started; cannot send an error response")
        # A request the app saw has its id; one refused by the parser gets one here.
        rid = request.get(REQUEST_ID) or choose(request.headers)
        token = current.set(rid)  # for the error body's details and the log line below
        try:
            response = parser_error(status, exc)
            if response.status < 500:
                # A client's malformed bytes are not a server fault: no traceback at ERROR.
                reason = (message or "").partition("\n")[0][:MAX_REASON]
                log.info("refused a malformed request from %s: %s", request.remote, reason)
            else:
                log.error("unhandled error serving %s", request.remote, exc_info=exc)
        finally:
            current.reset(token)
        response.headers[HEADER] = rid
        response.force_close()  # the parser's position in the stream is lost
        return response


class ApiServer(web.Server):
    """A low-level server whose connections use :class:`ApiRequestHandler`."""

    def __call__(self) -> web.RequestHandler:
        return ApiRequestHandler(self, loop=self._loop, **self._kwargs)


class ApiRunner(web.AppRunner):
    """``web.AppRunner`` serving through :class:`ApiServer`."""

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        return ApiServer(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=made._loop,
            **made._kwargs,
        )


async def start_server(
    app: web.Application, settings: Settings, socks: Sequence[socket.socket] = ()
) -> web.AppRunner:
    """Serve ``app`` on ``settings.host``/``port``, or on the listening sockets ``socks`` (a
    worker of ``--workers``: its parent bound them); stop it with ``runner.cleanup()``."""
    runner = ApiRunner(app, **server_options(settings))
    await runner.setup()
    try:
        if socks:
            for sock in socks:
                await web.SockSite(runner, sock).start()
        else:
            try:
                await web.TCPSite(runner, settings.host, settings.port).start()
            except OSError as exc:  # one line, as --workers' parent says it (app/workers.py)
                # The loop's own message repeats the address: the errno's is the reason.
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
                raise SystemExit(
                    f"cannot listen on {settings.host}:{settings.port}: {reason}"
                ) from None
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def _watch_lifeline(fd: int, stop: asyncio.Event) -> None:
    """Set ``stop`` once ``fd`` (a pipe whose writer is the parent) reads end-of-file: the
    parent died, however (SIGKILL included), and a worker must not serve on without it."""
    loop = asyncio.get_running_loop()

    def readable() -> None:
        try:
            gone = os.read(fd, 4096) == b""
        except BlockingIOError:
            return
        except OSError:
            gone = True
        if gone:
            loop.remove_reader(fd)
            log.warning("the parent process is gone; stopping")
            stop.set()

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)


async def serve(
    app: web.Application,
    settings: Settings,
    *,
    socks: Sequence[socket.socket] = (),
    lifeline: int | None = None,
    serving: Callable[[], None] | None = None,
) -> None:
    """Serve until SIGINT, SIGTERM or SIGHUP (a closed terminal), then shut down gracefully:
    stop accepting, let requests in flight finish (up to ``shutdown_timeout``), clean up.
    ``socks``: see :func:`start_server`; ``lifeline``: also stop when this pipe closes;
    ``serving``: called once accepting."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    this = asyncio.current_task()
    started = cancelled = False

    def signalled() -> None:
        nonlocal cancelled
        if not started and not cancelled and this is not None:
            # The start may be retrying a Redis that is down or hung (app/startup.py): it
            # would hold the stop until it gave up, a minute later.
            this.cancel()
            cancelled = True
        stop.set()

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, signalled)
    if lifeline is not None:
        _watch_lifeline(lifeline, stop)
    try:
        runner = await start_server(app, settings, socks)
    except asyncio.CancelledError:
        if this is None or not cancelled or this.uncancel() > 0:  # not (only) ours
            raise
        log.info("stopping: start-up cancelled before serving")
        return
    started = True
    try:
        for name in runner.addresses:
            log.info("serving on http://%s:%d", *name[:2])
        # A worker of --workers starts with these blocked (app/workers.py): one that came
        # meanwhile is taken now, as a stop of a process that accepts.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        if serving is not None:
            serving()
        await stop.wait()
        log.info("stopping: finishing requests in flight")
        if socks:
            await _drain(socks)
    finally:
        await runner.cleanup()


async def _drain(socks: Sequence[socket.socket]) -> None:
    """Let the loop accept the connections queued on ``socks`` before they close: closing a
    listening socket resets those it has not accepted. A worker's socket queues
    connections from the moment the parent binds it, so a worker stopped as it starts has
    some; accepted, they are answered by the graceful stop like any request in flight."""
    if not select.select(socks, [], [], 0)[0]:
        return  # the usual case: a running loop accepts as connections come
    for _ in range(round(DRAIN_SECONDS / DRAIN_POLL_SECONDS)):
        await asyncio.sleep(DRAIN_POLL_SECONDS)
        if not select.select(socks, [], [], 0)[0]:
            break
    # The graceful stop closes connections whose request it has not read yet.
    await asyncio.sleep(DRAIN_SETTLE_SECONDS)
