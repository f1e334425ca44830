"""Request tracing: the ``X-Request-ID`` of every response, and log lines that carry it.

The id is the request's own ``X-Request-ID`` when that is 1 to 128 characters of
``[A-Za-z0-9._:-]`` (what proxies and tracers send: UUIDs, hex, W3C trace ids with dashes,
``host:pid:n``), else 32 random hex digits: a header with spaces, quotes or control
characters could forge log fields, and one of any length would bloat every log line. Every log line
written while a request is handled names it (:class:`RequestIdFilter`); a 5xx error body
carries it in ``details.request_id`` (app/errors.py), so a user's report leads to the logs.
"""

from __future__ import annotations

import logging
import os
import re
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from aiohttp import web
from pythonjsonlogger.orjson import OrjsonFormatter

from .errors import Handler, client_gone, current, sent_path
from .metrics import METRICS

access = logging.getLogger("multiframe.api")  # one line per request (telemetry)

HEADER = "X-Request-ID"
VALID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
REQUEST_ID = web.RequestKey("request_id", str)


def choose(headers: Mapping[str, str]) -> str:
    """The request's own id when valid, else a new one."""
    given = headers.get(HEADER)
    if given is not None and VALID.fullmatch(given):
        return given
    return os.urandom(16).hex()  # a uuid4's randomness without making a UUID (~4 us less)


@contextmanager
def bound(request_id: str) -> Iterator[None]:
    """``current`` is ``request_id`` inside the block."""
    token = current.set(request_id)
    try:
        yield
    finally:
        current.reset(token)


@web.middleware
async def telemetry(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The outermost middleware: the request id for everything inside (logs, error bodies),
    then, once its response is sent, the access log line (method, path as sent, status,
    duration) and the request's metrics (app/metrics.py)."""
    rid = choose(request.headers)
    request[REQUEST_ID] = rid
    token = current.set(rid)
    metrics = request.app.get(METRICS)
    if metrics is not None:
        metrics.in_progress.inc()
    started = time.perf_counter()
    status, response = 500, None
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except ConnectionError:
        status = 499 if client_gone(request) else 500  # 499: nginx's "client closed request"
        raise
    finally:
        elapsed = time.perf_counter() - started
        access.info("%s %s %d %.1fms", request.method, sent_path(request), status, elapsed * 1000)
        current.reset(token)  # after the line: it carries the request id
        if metrics is not None:
            metrics.in_progress.dec()
            metrics.finished(request, status, elapsed, response)


async def stamp(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the id goes on every response, including those sent by the
    ``deliver`` middleware before :func:`telemetry` sees them."""
    response.headers[HEADER] = request.get(REQUEST_ID) or choose(request.headers)


def install(app: web.Application) -> None:
    """Stamp ``app``'s responses (its middlewares must include :func:`telemetry`)."""
    app.on_response_prepare.append(stamp)


# Logs -------------------------------------------------------------------------------------


class RequestIdFilter(logging.Filter):
    """Gives a record written during a request its ``request_id`` attribute."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = current.get()
        if rid is not None and not hasattr(record, "request_id"):
            record.request_id = rid
        return True


def printable(text: str) -> str:
    """``text`` with each character that is not printable (CR, LF, ESC, other controls, the
    Unicode line and paragraph separators, bidi overrides) as ``\\xNN``, ``\\uNNNN`` or
    ``\\UNNNNNNNN``, as ``repr`` writes them: one log line stays one line and shows what
    was sent."""
    if text.isprintable():  # nearly every line: one C-speed pass
        return text
    return "".join(c if c.isprintable() else _escaped(c) for c in text)


def _escaped(c: str) -> str:
    code = ord(c)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


class TextFormatter(logging.Formatter):
    """The text format, with `` request_id=...`` after the message of a request's lines.

    A record is one line whatever its message holds (a request's path, a Redis error, a
    client's malformed bytes): anyone could otherwise write lines that look like the
    service's own. A traceback keeps its lines, with its exception messages escaped."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = printable(super().formatMessage(record))
        rid = getattr(record, "request_id", None)
        return line if rid is None else f"{line} request_id={rid}"

    def formatException(self, ei: Any) -> str:
        chunks = traceback.format_exception(*ei)
        # A chunk is a frame ("  File ...", lines of the service's code), a chain or group
        # marker, or one exception's "Type: message" (or a note), which may echo input.
        text = "".join(
            "\n".join(printable(line) for line in chunk.split("\n"))
            if chunk.startswith((" ", "\n", "Traceback "))
            else printable(chunk.removesuffix("\n")) + "\n"
            for chunk in chunks
        )
        return text.removesuffix("\n")


JSON_FIELDS = ("asctime", "levelname", "name", "process", "message")
JSON_NAMES = {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"}


def json_formatter() -> logging.Formatter:
    """One JSON object per line: time (ISO 8601, UTC), level, logger, pid, message, the
    request_id of a request's lines, and a traceback as one string (``exc_info``)."""
    formatter = OrjsonFormatter(list(JSON_FIELDS), rename_fields=JSON_NAMES)
    formatter.converter = time.gmtime
    formatter.default_time_format = "%Y-%m-%dT%H:%M:%S"
    formatter.default_msec_format = "%s.%03dZ"
    return formatter


def configure_logging(level: str, log_format: str, text_format: str) -> None:
    """The root logger's one handler (stderr): ``log_format`` json or text (``text_format``).
    Every logger, aiohttp's included, writes through it."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(json_formatter() if log_format == "json" else TextFormatter(text_format))
    logging.basicConfig(level=level, handlers=[handler], force=True)
