"""Durable acknowledged writes: ``MULTIFRAME_MIN_REPLICAS`` (docs/scaling.md, "Durable writes").

Redis replicates asynchronously: a primary that dies right after acknowledging a write can
take it along, and a failover then promotes a replica without it. With a :class:`Durability`
of N replicas, every writing script is followed by ``WAIT N timeout`` on the same connection,
pipelined with it (keyspace.scripts): WAIT answers how many replicas hold everything that
connection wrote, so one round trip tells both the script's outcome and whether N replicas
confirmed it. A write they did not confirm in time raises :class:`~keyspace.errors.NotDurable`
(the API's 503 ``not_durable``), naming what was written, instead of being acknowledged.

The server's own ``min-replicas-to-write`` is not set: every request's rate-limit count is a
write (``authorize.lua``), so the server would refuse reads as well while a replica is away.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import codec
from .errors import NotDurable
from .schema import EntitySpec

REPLICAS_ENV = "MULTIFRAME_MIN_REPLICAS"
TIMEOUT_ENV = "MULTIFRAME_MIN_REPLICAS_TIMEOUT_MS"
DEFAULT_TIMEOUT_MS = 1000


@dataclass(frozen=True)
class Durability:
    """How many replicas must confirm a write before it is acknowledged (0: none, no WAIT),
    and how long to wait for them."""

    replicas: int = 0
    timeout_ms: int = DEFAULT_TIMEOUT_MS

    def __post_init__(self) -> None:
        if self.replicas < 0:
            raise ValueError(f"{REPLICAS_ENV} must be 0 (off) or a number of replicas")
        # WAIT's 0 means "forever": a write would then hang while its replicas are away.
        if self.timeout_ms < 1:
            raise ValueError(f"{TIMEOUT_ENV} must be a positive number of milliseconds")

    @property
    def wait(self) -> tuple[str, int, int] | None:
        """The WAIT command that follows each writing script, or None when off."""
        return ("WAIT", self.replicas, self.timeout_ms) if self.replicas else None

    def check(self, redis_timeout_s: float) -> None:
        """ValueError when a WAIT could outlast the client's socket timeout: the reply would
        then be cut off and the write answered as an unreachable server."""
        if self.replicas and self.timeout_ms >= redis_timeout_s * 1000:
            raise ValueError(
                f"{TIMEOUT_ENV} ({self.timeout_ms}) must be below the Redis timeout "
                f"({redis_timeout_s:g} s): a WAIT longer than it is cut off"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Durability:
        """From ``MULTIFRAME_MIN_REPLICAS`` and ``MULTIFRAME_MIN_REPLICAS_TIMEOUT_MS``;
        ValueError naming a value that is not a whole number in range."""
        return cls(
            replicas=_whole(env, REPLICAS_ENV, 0),
            timeout_ms=_whole(env, TIMEOUT_ENV, DEFAULT_TIMEOUT_MS),
        )

    def unconfirmed(self, confirmed: int, about: Mapping[str, Any]) -> NotDurable:
        """The error for a write ``confirmed`` replicas held when WAIT returned; ``about``
        names what was written (see :func:`written`)."""
        return NotDurable(
            f"{_describe(about)} was applied on the primary, but only {confirmed} of the "
            f"{self.replicas} replica(s) required confirmed it within {self.timeout_ms} ms, so "
            "a failover could still undo it. Read it before retrying (docs/scaling.md, "
            "'Durable writes')",
            details={**about, "replicas": {"required": self.replicas, "confirmed": confirmed}},
        )


def _whole(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None


def written(
    raw: bytes | None, spec: EntitySpec | None, doc_id: str | None = None
) -> dict[str, Any]:
    """What a commit wrote, for a client to check before retrying: the collection, the
    document's id (``doc_id``, else the id field of the returned document ``raw``: a
    generated id) and the revision (the ETag a read answers while the write is there)."""
    out: dict[str, Any] = {}
    doc = codec.loads(raw) if raw else None
    if spec is not None:
        out["collection"] = spec.collection
        found = doc.get(spec.id_field) if isinstance(doc, dict) else None
        out["id"] = doc_id if doc_id is not None else found
    if raw:
        out["revision"] = codec.revision(raw)
    return out


def _describe(about: Mapping[str, Any]) -> str:
    if "id" in about and "collection" in about:
        return f"the write of {about['collection']} {about['id']}"
    return "the write"
