"""The per-document features an entity may declare beyond its fields: a lock
(:class:`Lockable`, keyspace.locks), an operation log (:class:`OpLog`, keyspace.oplog), a
cached profile (:class:`Profile`, keyspace.profiles) and a time to live (:class:`Expiry`).

Each is a small frozen declaration checked on its own when made; how it fits its entity and
the other entities (an expiring entity has no profile, key prefixes never overlap) is checked
by keyspace.schema, whose :class:`~keyspace.schema.EntitySpec` carries them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Lockable:
    """Documents of the entity can be locked, one holder at a time (keyspace.locks): the lock
    lives under ``<key>:<id>`` for ``ttl_seconds`` unless refreshed, and every acquire draws a
    fencing token from a per-document counter that never expires, so tokens only grow."""

    ttl_seconds: int = 30
    key: str = "doc:lock"  # key prefix inside the system's namespace, e.g. doc:lock:<id>

    def __post_init__(self) -> None:
        assert self.ttl_seconds >= 1, f"{self.key}: a lock lives at least a second"
        assert _KEY_PREFIX.fullmatch(self.key), f"lock key prefix {self.key!r}"


@dataclass(frozen=True)
class OpLog:
    """Each document of the entity has an append-only operation log (keyspace.oplog) under
    ``<key>:<id>``: entries numbered 1, 2, ... per document, at most ``cap`` kept (oldest
    dropped), the whole log expiring ``ttl_seconds`` after its last append. ``lock_guarded``:
    while the document is locked (the entity must be :class:`Lockable`), only the lock's
    holder appends."""

    key: str = "doc:ops"
    ttl_seconds: int = 3600
    cap: int = 10_000
    lock_guarded: bool = True

    def __post_init__(self) -> None:
        assert self.ttl_seconds >= 1 and self.cap >= 1, f"{self.key}: ttl and cap are >= 1"
        assert _KEY_PREFIX.fullmatch(self.key), f"operation log key prefix {self.key!r}"


@dataclass(frozen=True)
class Profile:
    """A cached summary of each document (keyspace.profiles), served at
    ``GET /api/<collection>/{id}/profile`` and kept under ``<key>:<id>`` for ``ttl_seconds``:
    ``fields`` of the document, plus ``companion_fields`` of the one document of
    ``companion`` that refers to it through its unique reference ``via`` (a one-to-one
    companion; the companion's declared defaults stand in while it has none). Every commit
    writing the document or a companion of it deletes the entry in the same script."""

    key: str
    fields: tuple[str, ...]
    companion: str | None = None
    via: str = ""
    companion_fields: tuple[str, ...] = ()
    ttl_seconds: int = 3600
    # False: computed on every read, never stored (a deployment that turned caching off);
    # writes still delete entries, which another process on the same server may store.
    cached: bool = True

    def __post_init__(self) -> None:
        assert type(self.ttl_seconds) is int and self.ttl_seconds >= 1, f"{self.key}: ttl"
        assert _KEY_PREFIX.fullmatch(self.key), f"profile key prefix {self.key!r}"
        assert (self.companion is None) == (not self.via) == (not self.companion_fields), (
            f"{self.key}: a companion comes with its reference and its fields"
        )

    @property
    def ms(self) -> int:
        return self.ttl_seconds * 1000


# A key prefix inside the namespace: ':'-separated parts of letters, digits, '_' and '-'.
_KEY_PREFIX = re.compile(r"[A-Za-z0-9_\-]+(:[A-Za-z0-9_\-]+)*")


@dataclass(frozen=True)
class Expiry:
    """A document's time to live: it expires ``seconds`` after its create and, when
    ``refresh_on_write``, after every later write (else a write keeps the time it has left).
    Its unique claims and search projection expire with it, in the same millisecond."""

    seconds: int
    refresh_on_write: bool = True

    def __post_init__(self) -> None:
        assert type(self.seconds) is int and self.seconds > 0, f"a TTL of {self.seconds!r}"

    @property
    def ms(self) -> int:
        return self.seconds * 1000
