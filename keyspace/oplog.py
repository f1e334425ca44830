"""Operation logs, for every entity declaring ``oplog=OpLog(...)``: per document, an ordered,
capped, expiring log of edit operations a client can catch up from.

Storage (the NeuraForge seed's own choice, a Redis list): ``doc:ops:<id>`` holds the seed's
JSON entries (``user_id``, ``operation``, ``position``, ``content``, ``timestamp``) oldest
first; one append (one operation or a batch) is one ``lua/oplog.lua`` call doing RPUSH, LTRIM
to the declared cap, PEXPIRE (the log expires ``ttl_seconds`` after its last append) and the
sequence counter ``mf:seq:doc:ops:<id>`` (the number of the last entry ever appended, never
expiring). Entries do not store their numbers: the list always holds the newest entries, so
the i-th kept one is ``last - LLEN + 1 + i``, found in O(1) by a read. A list rather than a
stream because the numbers are then dense (1, 2, 3, ...: ``since`` is plain arithmetic and a
gap is visible as one), and a stream's MAXLEN trimming and per-key TTL give nothing more here.

A read from before the oldest kept entry (trimmed by the cap, or the whole log expired) is
:class:`Gone`: the client must reload the document instead of silently skipping operations.
While the document is locked, a lock-guarded log takes appends from the lock's holder only;
an append carrying a fencing token is refused unless it is the current lock's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from .errors import KeyspaceError, NotFound, ValidationFailed
from .features import OpLog
from .keys import is_lookup_id
from .locks import fencing_token_of, held_by, now_ms, parse_lock, stale_token
from .plan import Arg
from .schema import EntitySpec
from .scripts import Scripts

OPERATIONS = ("insert", "delete", "retain")
MAX_POSITION = 2**53 - 1
MAX_CONTENT = 65_536  # characters of one operation's content
MAX_BATCH = 1000  # operations per append (and never more than the log's cap)
DEFAULT_PAGE = 100
MAX_PAGE = 1000  # larger limits are capped, as list pages are
OP_FIELDS = frozenset({"operation", "position", "content", "user_id"})


class Gone(KeyspaceError):
    """The operations after ``since`` are no longer all kept (dropped by the cap, or the log
    expired), or ``since`` is past the last entry (the log was reset): the client must
    reload the document. ``details``: ``since``, ``oldest_seq`` (the oldest kept entry's
    number; ``latest_seq`` + 1 when none is kept) and ``latest_seq``."""

    code = "gone"


@dataclass(frozen=True)
class Op:
    """One operation as a client sends it (``user_id`` and ``timestamp`` are the server's)."""

    operation: str
    position: int
    content: str | None


@dataclass(frozen=True)
class Append:
    """A validated append: its operations and the fencing token it carries, if any."""

    ops: tuple[Op, ...]
    fencing_token: int | None = None


@dataclass(frozen=True)
class Appended:
    """What an append stored: its entries' numbers, in order, and their timestamp."""

    seqs: list[int]
    timestamp: str


@dataclass(frozen=True)
class OpPage:
    """The entries after ``since``, each with its ``seq`` first, in order."""

    items: list[dict[str, Any]]
    oldest_seq: int
    latest_seq: int


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", details=[{"field": field, "message": message}])


def oplogged(spec: EntitySpec) -> OpLog:
    """The entity's log declaration; ValueError when it declares none (a programming error)."""
    if spec.oplog is None:
        raise ValueError(f"{spec.name} declares no operation log")
    return spec.oplog


def parse_op(value: Any, field: str, user_id: str) -> Op:
    """One operation: ``operation`` insert|delete|retain, ``position`` an integer >= 0,
    ``content`` a string (required, non-empty, for an insert), ``user_id`` absent or the
    caller's. ``timestamp`` is the server's and may not be sent."""
    if not isinstance(value, dict):
        raise _invalid(field, "an operation is an object")
    if "timestamp" in value:
        raise _invalid(f"{field}.timestamp", "set by the server; leave it out")
    extra = sorted(set(value) - OP_FIELDS)
    if extra:
        raise _invalid(f"{field}.{extra[0]}", "unknown field")
    operation = value.get("operation")
    if operation not in OPERATIONS:
        raise _invalid(f"{field}.operation", f"one of {', '.join(OPERATIONS)}")
    position = value.get("position")
    if type(position) is not int or not 0 <= position <= MAX_POSITION:
        raise _invalid(f"{field}.position", "an integer >= 0")
    content = value.get("content")
    if content is not None and (not isinstance(content, str) or len(content) > MAX_CONTENT):
        raise _invalid(f"{field}.content", f"a string of at most {MAX_CONTENT} characters")
    if operation == "insert" and not content:
        raise _invalid(f"{field}.content", "an insert's text (required, not empty)")
    if value.get("user_id", user_id) != user_id:
        raise _invalid(f"{field}.user_id", "the caller's own id (the server sets it)")
    return Op(operation, position, content)


def parse_append(body: Any, user_id: str, cap: int) -> Append:
    """An append's body: one operation, a list of them, or ``{"ops": [...],
    "fencing_token": n}``; a single operation may carry ``fencing_token`` too."""
    token: Any = None
    if isinstance(body, dict) and "operation" not in body and "ops" in body:
        extra = sorted(set(body) - {"ops", "fencing_token"})
        if extra:
            raise _invalid(extra[0], "unknown field (the body is {ops, fencing_token})")
        token, items, name = body.get("fencing_token"), body["ops"], "ops"
    elif isinstance(body, dict):
        token = body.get("fencing_token")
        op = {k: v for k, v in body.items() if k != "fencing_token"}
        return Append((parse_op(op, "(body)", user_id),), fencing_token_of(token))
    else:
        items, name = body, "(body)"
    most = min(MAX_BATCH, cap)
    if not isinstance(items, list) or not 1 <= len(items) <= most:
        raise _invalid(name, f"a list of 1 to {most} operations")
    ops = tuple(parse_op(item, f"{name}[{n}]", user_id) for n, item in enumerate(items))
    return Append(ops, fencing_token_of(token))


def _number(params: Mapping[str, Sequence[str]], name: str, default: int) -> int:
    values = params.get(name, [])
    if len(values) > 1:
        raise _invalid(name, "given once")
    if not values:
        return default
    raw = values[0]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 16 or int(raw) > MAX_POSITION:
        raise _invalid(name, "a whole number >= 0")
    return int(raw)


def parse_op_query(params: Mapping[str, Sequence[str]]) -> tuple[int, int]:
    """``since`` (default 0: from the start) and ``limit`` (default 100, at most 1000) of a
    read; no other parameter."""
    extra = sorted(set(params) - {"since", "limit"})
    if extra:
        raise _invalid(extra[0], "unknown parameter (since, limit)")
    since, limit = _number(params, "since", 0), _number(params, "limit", DEFAULT_PAGE)
    if limit < 1:
        raise _invalid("limit", "at least 1")
    return since, min(limit, MAX_PAGE)


def entry(op: Op, user_id: str, timestamp: str) -> bytes:
    """One stored entry: the seed's JSON, in the seed's field order."""
    return orjson.dumps(
        {
            "user_id": user_id,
            "operation": op.operation,
            "position": op.position,
            "content": op.content,
            "timestamp": timestamp,
        }
    )


def log_keys(spec: EntitySpec, doc_id: str, *, with_lock: bool) -> list[str]:
    """KEYS of oplog.lua: pause, log, sequence counter, document (and lock, for appends)."""
    log, names = oplogged(spec), spec.names
    out = [
        names.pause_key(),
        names.oplog_key(log.key, doc_id),
        names.oplog_seq_key(log.key, doc_id),
        spec.key(doc_id),
    ]
    if with_lock and spec.lock is not None:
        out.append(names.lock_key_of(spec.lock.key, doc_id))
    return out


def append_args(spec: EntitySpec, user_id: str, append: Append, timestamp: str) -> list[Arg]:
    log = oplogged(spec)
    token = "" if append.fencing_token is None else append.fencing_token
    entries = [entry(op, user_id, timestamp) for op in append.ops]
    guarded = "1" if log.lock_guarded else "0"
    return ["append", log.ttl_seconds * 1000, log.cap, user_id, guarded, token, *entries]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def appended(reply: list[Any], spec: EntitySpec, doc_id: str, append: Append, ts: str) -> Appended:
    """The numbers an oplog.lua append reply gives, or the error it reports."""
    status = _text(reply[0])
    if status == "ok":
        first = int(reply[1])
        return Appended(list(range(first, first + len(append.ops))), ts)
    if status == "not_found":
        raise NotFound(f"{spec.name} {doc_id!r} does not exist")
    lock = parse_lock(reply[1], int(reply[2])) if reply[1] is not None else None
    if status == "locked" and lock is not None:
        raise held_by(spec, doc_id, lock)
    if status == "stale_token" and append.fencing_token is not None:
        raise stale_token(spec, doc_id, append.fencing_token, lock)
    raise RuntimeError(f"oplog.lua answered {reply!r}")


def page(reply: list[Any], spec: EntitySpec, doc_id: str, since: int) -> OpPage:
    """The entries an oplog.lua read reply gives, numbered, or the error it reports."""
    status = _text(reply[0])
    if status == "not_found":
        raise NotFound(f"{spec.name} {doc_id!r} does not exist")
    oldest, latest = int(reply[1]), int(reply[2])
    if status == "gone":
        why = (
            f"the log has no entry {since} (its last is {latest}): it was reset"
            if since > latest
            else f"entries after {since} are no longer kept (the oldest kept is {oldest})"
        )
        raise Gone(
            f"{why}; reload the {spec.name} and read on from latest_seq",
            details={"since": since, "oldest_seq": oldest, "latest_seq": latest},
        )
    if status != "ok":
        raise RuntimeError(f"oplog.lua answered {reply!r}")
    items = [{"seq": since + 1 + n, **orjson.loads(raw)} for n, raw in enumerate(reply[3:])]
    return OpPage(items, oldest, latest)


class OpLogs:
    """The operation logs of every entity declaring one (``Keyspace.oplogs``)."""

    def __init__(self, scripts: Scripts) -> None:
        self.scripts = scripts

    @staticmethod
    def _check(spec: EntitySpec, doc_id: str) -> None:
        oplogged(spec)
        if not is_lookup_id(doc_id):
            raise NotFound(f"{spec.name} {doc_id!r} does not exist")

    async def append(self, spec: EntitySpec, doc_id: str, user_id: str, body: Any) -> Appended:
        """Append the operations of ``body`` (see :func:`parse_append`) by ``user_id``,
        atomically, and answer their numbers. NotFound for a missing document; Locked when
        the log is lock-guarded and another user holds the lock; StaleFencingToken when the
        body's fencing token is not the current lock's. Sent once: a lost reply raises, and
        the operations may have been appended."""
        self._check(spec, doc_id)
        append = parse_append(body, user_id, oplogged(spec).cap)
        if append.fencing_token is not None and spec.lock is None:
            raise _invalid("fencing_token", f"{spec.collection} have no locks")
        timestamp = now_ms()
        keys = log_keys(spec, doc_id, with_lock=True)
        args = append_args(spec, user_id, append, timestamp)
        about = {"collection": spec.collection, "id": doc_id}
        reply = await self.scripts.oplog(keys, args, retry=False, about=about)
        return appended(reply, spec, doc_id, append, timestamp)

    async def read(self, spec: EntitySpec, doc_id: str, since: int = 0, limit: int = 100) -> OpPage:
        """The entries numbered ``since + 1`` on (at most ``limit``), in order; Gone when
        some of them are no longer kept or ``since`` is past the last; NotFound for a
        missing document."""
        self._check(spec, doc_id)
        keys = log_keys(spec, doc_id, with_lock=False)
        reply = await self.scripts.oplog(keys, ["read", since, limit], retry=True)
        return page(reply, spec, doc_id, since)
