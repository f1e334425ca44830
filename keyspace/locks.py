"""Document locks with fencing tokens, for every entity declaring ``lock=Lockable(...)``.

A lock is one string key per document (``doc:lock:<id>`` under the system's namespace, as the
NeuraForge seed names it) holding the seed's JSON (``user_id``, ``locked_at``, ``operation``)
plus the lock's ``fencing_token``, with the declared TTL (30 s by default). At most one user
holds it; only that user (or an admin) refreshes or releases it. Every acquire takes the next
number of a per-document counter (``mf:fence:doc:lock:<id>``) that never expires and is never
reset by an expiry, so a later lock always carries a larger token than any earlier one: a
writer whose lock expired while it paused still holds its old token, and whoever compares
tokens (the operation log, keyspace.oplog) refuses it.

The functions here are pure (keys, arguments, reading replies); :class:`Locks` sends each call
as one ``lua/lock.lua`` script, so every check and write of a call is atomic.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from .errors import Conflict, KeyspaceError, NotFound, ValidationFailed
from .features import Lockable
from .keys import is_lookup_id
from .plan import Arg
from .schema import EntitySpec
from .scripts import Scripts

DEFAULT_OPERATION = "editing"
OPERATION = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}")
MAX_TOKEN = 2**53 - 1  # counters stay where Lua's doubles are exact


class Locked(Conflict):
    """The document is locked by someone else (or, for an acquire, by anyone, the caller
    included); ``details`` name the holder, its operation and the seconds left."""

    code = "locked"


class StaleFencingToken(Conflict):
    """The fencing token given is not the current lock's: that lock ended (released or
    expired) and the document may have been locked again since. Nothing was written."""

    code = "stale_fencing_token"


class NotLocked(NotFound):
    """The document is not locked: never was, or its lock was released or expired."""

    code = "not_locked"


class NotLockHolder(KeyspaceError):
    """Another user holds the lock; only it (or an admin) may refresh or release it."""

    code = "not_lock_holder"


@dataclass(frozen=True)
class Lock:
    """One document's lock as stored, with the time it has left."""

    holder: str
    operation: str
    locked_at: str
    fencing_token: int
    expires_in_ms: int | None  # None: the key has no expiry (set by hand)

    @property
    def expires_in(self) -> int | None:
        """Whole seconds left, rounded up (so waiting that long finds it gone)."""
        return None if self.expires_in_ms is None else math.ceil(self.expires_in_ms / 1000)

    def body(self) -> dict[str, Any]:
        """The lock as the API answers it."""
        return {
            "holder": self.holder,
            "fencing_token": self.fencing_token,
            "expires_in": self.expires_in,
            "operation": self.operation,
            "locked_at": self.locked_at,
        }


def now_ms() -> str:
    """The current UTC time in the engine's naive ISO form, to the millisecond."""
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds")


def lockable(spec: EntitySpec) -> Lockable:
    """The entity's lock declaration; ValueError when it declares none (a programming error)."""
    if spec.lock is None:
        raise ValueError(f"{spec.name} declares no lock")
    return spec.lock


def operation_of(value: Any) -> str:
    """The lock's ``operation`` (default ``editing``): a short word such as ``editing``."""
    if value is None:
        return DEFAULT_OPERATION
    if not isinstance(value, str) or not OPERATION.fullmatch(value):
        raise ValidationFailed(
            "operation must be a word of letters, digits, '_', '.' or '-' (at most 64), "
            "starting with a letter, e.g. editing",
            details=[{"field": "operation", "message": "a word such as editing"}],
        )
    return value


def fencing_token_of(value: Any, field: str = "fencing_token") -> int | None:
    """A fencing token a client sent (a positive integer), or None when absent."""
    if value is None:
        return None
    if type(value) is not int or not 1 <= value <= MAX_TOKEN:
        raise ValidationFailed(
            f"{field} must be a positive integer (a lock's fencing_token)",
            details=[{"field": field, "message": "a positive integer"}],
        )
    return value


def lock_keys(spec: EntitySpec, doc_id: str) -> list[str]:
    """KEYS of lock.lua: the pause key, the lock, its fencing counter and the document."""
    lock, names = lockable(spec), spec.names
    return [
        names.pause_key(),
        names.lock_key_of(lock.key, doc_id),
        names.fence_key(lock.key, doc_id),
        spec.key(doc_id),
    ]


def acquire_args(spec: EntitySpec, user_id: str, operation: str, locked_at: str) -> list[Arg]:
    """ARGV of an acquire: the lock's JSON split around the token the script draws."""
    head = orjson.dumps({"user_id": user_id, "locked_at": locked_at, "operation": operation})
    ttl = lockable(spec).ttl_seconds * 1000
    return ["acquire", ttl, "", "0", "", head[:-1] + b',"fencing_token":', b"}"]


def holder_args(
    op: str, spec: EntitySpec, user_id: str, admin: bool, token: int | None
) -> list[Arg]:
    """ARGV of a refresh, release or read by ``user_id``."""
    ttl = lockable(spec).ttl_seconds * 1000
    return [op, ttl, user_id, "1" if admin else "0", "" if token is None else token]


def parse_lock(raw: bytes | None, pttl: int) -> Lock:
    """The stored lock; a value that is not the lock's JSON reads as held by nobody."""
    try:
        doc = orjson.loads(raw or b"")
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):
        doc = {}
    token = doc.get("fencing_token")
    return Lock(
        holder=str(doc.get("user_id", "")),
        operation=str(doc.get("operation", "")),
        locked_at=str(doc.get("locked_at", "")),
        fencing_token=token if type(token) is int else 0,
        expires_in_ms=pttl if pttl >= 0 else None,
    )


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def held_by(spec: EntitySpec, doc_id: str, lock: Lock) -> Locked:
    """The 409 for a document someone holds."""
    left = "" if lock.expires_in is None else f" for {lock.expires_in} more seconds"
    return Locked(
        f"{spec.name} {doc_id!r} is locked by {lock.holder!r} ({lock.operation}){left}",
        details={
            "holder": lock.holder,
            "operation": lock.operation,
            "locked_at": lock.locked_at,
            "expires_in": lock.expires_in,
        },
    )


def stale_token(spec: EntitySpec, doc_id: str, token: int, lock: Lock | None) -> StaleFencingToken:
    current = None if lock is None else lock.fencing_token
    return StaleFencingToken(
        f"fencing token {token} is not the current lock's of {spec.name} {doc_id!r} "
        f"({'no lock' if current is None else current}): that lock ended; acquire it again",
        details={"fencing_token": token, "current": current},
    )


def outcome(reply: list[Any], spec: EntitySpec, doc_id: str, token: int | None = None) -> Lock:
    """The lock a lock.lua reply carries, or the error it reports."""
    status = _text(reply[0])
    lock = parse_lock(reply[1], int(reply[2])) if reply[1] is not None else None
    if status == "ok" and lock is not None:
        return lock
    if status == "not_found":
        raise NotFound(f"{spec.name} {doc_id!r} does not exist")
    if status == "no_lock":
        raise NotLocked(f"{spec.name} {doc_id!r} is not locked (released or expired)")
    if status == "locked" and lock is not None:
        raise held_by(spec, doc_id, lock)
    if status == "not_holder" and lock is not None:
        raise NotLockHolder(
            f"{spec.name} {doc_id!r} is locked by {lock.holder!r}: only it or an admin may "
            "refresh or release the lock",
            details={"holder": lock.holder, "expires_in": lock.expires_in},
        )
    if status == "stale_token" and token is not None:
        raise stale_token(spec, doc_id, token, lock)
    raise RuntimeError(f"lock.lua answered {reply!r}")


class Locks:
    """The locks of every lockable entity of one keyspace (``Keyspace.locks``)."""

    def __init__(self, scripts: Scripts) -> None:
        self.scripts = scripts

    @staticmethod
    def _keys(spec: EntitySpec, doc_id: str) -> list[str]:
        if not is_lookup_id(doc_id):
            raise NotFound(f"{spec.name} {doc_id!r} does not exist")
        return lock_keys(spec, doc_id)

    async def acquire(
        self, spec: EntitySpec, doc_id: str, user_id: str, operation: str | None = None
    ) -> Lock:
        """Lock the existing document ``doc_id`` for ``user_id`` with a new fencing token;
        Locked while anyone holds it (the caller too: refresh instead), NotFound when the
        document does not exist, ValidationFailed for an ``operation`` that is no word
        (default ``editing``). Sent once: a lost reply raises, and the lock may be held."""
        keys = self._keys(spec, doc_id)
        args = acquire_args(spec, user_id, operation_of(operation), now_ms())
        about = {"collection": spec.collection, "id": doc_id}
        reply = await self.scripts.lock(keys, args, retry=False, writes=True, about=about)
        return outcome(reply, spec, doc_id)

    async def refresh(
        self,
        spec: EntitySpec,
        doc_id: str,
        user_id: str,
        *,
        admin: bool = False,
        fencing_token: int | None = None,
    ) -> Lock:
        """Give the lock its whole TTL again. Only its holder or an admin (NotLockHolder);
        NotLocked when there is none; StaleFencingToken when ``fencing_token`` is given and
        is not the lock's."""
        keys = self._keys(spec, doc_id)
        fencing_token = fencing_token_of(fencing_token)
        args = holder_args("refresh", spec, user_id, admin, fencing_token)
        about = {"collection": spec.collection, "id": doc_id}
        # PEXPIRE twice is harmless
        reply = await self.scripts.lock(keys, args, retry=True, writes=True, about=about)
        return outcome(reply, spec, doc_id, fencing_token)

    async def release(
        self,
        spec: EntitySpec,
        doc_id: str,
        user_id: str,
        *,
        admin: bool = False,
        fencing_token: int | None = None,
    ) -> Lock:
        """Delete the lock and answer it as it was; the same rules as :meth:`refresh`. A
        released (or expired) lock is gone: releasing it again is NotLocked, or NotLockHolder
        once another user holds the document."""
        keys = self._keys(spec, doc_id)
        fencing_token = fencing_token_of(fencing_token)
        args = holder_args("release", spec, user_id, admin, fencing_token)
        about = {"collection": spec.collection, "id": doc_id}
        reply = await self.scripts.lock(keys, args, retry=False, writes=True, about=about)
        return outcome(reply, spec, doc_id, fencing_token)

    async def get(self, spec: EntitySpec, doc_id: str) -> Lock:
        """The document's current lock; NotLocked when there is none."""
        keys = self._keys(spec, doc_id)
        args = holder_args("read", spec, "", False, None)
        reply = await self.scripts.lock(keys, args, retry=True, writes=False)
        return outcome(reply, spec, doc_id)
