"""The exceptions of the keyspace API. Every one carries a stable machine-readable code."""

from __future__ import annotations

from typing import Any


class KeyspaceError(Exception):
    """Base class; ``code`` is stable and suitable for API error bodies."""

    code = "keyspace_error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(KeyspaceError):
    """The document (or singleton, or chip) does not exist."""

    code = "not_found"


class ValidationFailed(KeyspaceError):
    """The document or query does not satisfy its declaration. ``details`` lists the fields."""

    code = "validation_failed"


class Conflict(KeyspaceError):
    """A write conflicts with stored state; ``field`` names what conflicted."""

    code = "conflict"

    def __init__(self, message: str, *, field: str | None = None, details: Any = None) -> None:
        super().__init__(message, details=details if details is not None else {"field": field})
        self.field = field


class UniqueConflict(Conflict):
    """Another document already holds this unique value."""

    code = "unique_conflict"


class AlreadyExists(Conflict):
    """A document with this id already exists."""

    code = "already_exists"


class WrongType(Conflict):
    """A key the write needs holds another Redis type (or a counter no integer); nothing
    was written. ``details["key"]`` names it."""

    code = "wrong_type"


class CounterExhausted(Conflict):
    """The entity's counter is at :data:`keyspace.keys.MAX_COUNTER`: no further id can be
    generated (explicit ids still work); nothing was written."""

    code = "counter_exhausted"


class OutsideImportWindow(KeyspaceError):
    """An explicit seed-style id lies further past its counter than the caller may move it
    (``details``: ``field``, ``value``, ``highest`` allowed id); nothing was written."""

    code = "import_window"


class IdCollision(Conflict):
    """The id derived from the document is held by a document derived from other values
    (``nft_<user_id>_<chip_id>``: ``user_1`` + ``2_c`` and ``user_1_2`` + ``c``)."""

    code = "id_collision"


class InvalidTransition(Conflict):
    """The status change is not allowed by the entity's declared transitions."""

    code = "invalid_transition"


class MissingReference(Conflict):
    """The document refers to a document that does not exist."""

    code = "missing_reference"


class HasDependents(Conflict):
    """The document cannot be deleted while others refer to it."""

    code = "has_dependents"


class StaleRevision(KeyspaceError):
    """The expected revision does not match the stored document; nothing was written."""

    code = "stale_revision"


class NoAccess(KeyspaceError):
    """The Redis user may not touch the served system's keys (its ACL key patterns)."""

    code = "no_access"


class NotReady(KeyspaceError):
    """The search index is still being built; answering now could return partial results."""

    code = "not_ready"


class Contention(KeyspaceError):
    """A write kept losing optimistic races and gave up; retrying later is safe."""

    code = "contention"


class Paused(KeyspaceError):
    """The keyspace is paused (:func:`keyspace.keys.pause_key`): a command is rewriting it
    wholesale (``multiframe-admin restore``, ``reset``); nothing was read or written."""

    code = "maintenance"


class Held(KeyspaceError):
    """Another process holds an admin operation's lock (``mf:lock:reindex``,
    ``mf:lock:migrate``; keyspace.exclusive); the message names the holder. Try again later."""

    code = "busy"


class NotDurable(KeyspaceError):
    """The write was applied on the primary, but fewer replicas than required
    (``MULTIFRAME_MIN_REPLICAS``, keyspace.durability) confirmed it in time: a failover before
    they catch up could undo it, so it is not acknowledged. ``details`` names what was written
    (collection, id, revision, where known) and the replicas required and confirmed."""

    code = "not_durable"


class Unreadable(KeyspaceError):
    """A stored sealed value that does not open (keyspace.sealing): under a key this process
    does not hold, or not this document's (moved or changed outside the service). Nothing is
    served from it; ``multiframe-admin check`` lists such documents."""

    code = "undecryptable"
