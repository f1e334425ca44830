"""Access tokens and per-token rate limits.

A token is random (256 bits), shown once, and stored only as its SHA-256: the
hash ``mf:token:<sha256>`` holds ``user_id``, ``role`` and ``kind`` and expires
with the token; ``mf:tokens:<user_id>`` lists a user's token hashes so that
deleting the user (a satellite of the user declaration) revokes every token in
the same commit, and a role change is mirrored into each of them.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

from . import codec, keys
from .entities import SYSTEM_CONFIG, USER
from .errors import NotFound, StaleRevision
from .plan import Arg, Plan
from .scripts import AuthReply, Scripts

SESSION_TTL = 24 * 3600
PREFIX = "mf_"


class Kind(StrEnum):
    SESSION = "session"
    API_KEY = "api_key"


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Minted:
    token: str
    user_id: str
    kind: Kind
    expires_in: int | None


@dataclass(frozen=True)
class Limits:
    """Requests per ``period_ms`` per role and route class; 0 means unlimited."""

    designer_read: int = 600
    designer_write: int = 120
    engineer_read: int = 600
    engineer_write: int = 120
    admin_read: int = 0
    admin_write: int = 0
    period_ms: int = 60_000

    def args(self) -> list[int]:
        return [
            self.period_ms,
            self.admin_read,
            self.admin_write,
            self.designer_read,
            self.designer_write,
            self.engineer_read,
            self.engineer_write,
        ]


@dataclass(frozen=True)
class Decision:
    """Outcome of :meth:`Tokens.authorize`."""

    status: str  # ok | unknown | maintenance | limited
    user_id: str
    role: str
    limit: int
    remaining: int
    reset_ms: int
    retry_after_ms: int
    token_hash: str
    prefetched: bytes | None = None  # the requested document when allowed (None: missing)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class Authorization:
    """One request's ``authorize.lua`` call: its KEYS and ARGV, and how to read the reply."""

    token_hash: str
    keys: list[str]
    args: list[Arg]

    @classmethod
    def of(cls, token: str, route_class: str, limits: Limits) -> Authorization:
        digest = token_hash(token)
        return cls(
            digest,
            [keys.token_key(digest), keys.rate_key(digest, route_class), SYSTEM_CONFIG.key],
            [route_class, *limits.args()],
        )

    def decision(self, reply: AuthReply) -> Decision:
        status, user_id, role, limit, remaining, reset, retry = reply[:7]
        document = reply[7] if len(reply) > 7 and isinstance(reply[7], bytes) else None
        return Decision(
            _text(status),
            _text(user_id),
            _text(role),
            int(limit),
            int(remaining),
            int(reset),
            int(retry),
            self.token_hash,
            document,
        )


class Tokens:
    """Mint, revoke and check tokens; every write is one commit plan."""

    def __init__(self, scripts: Scripts) -> None:
        self.scripts = scripts

    async def mint(
        self,
        user_id: str,
        user_raw: bytes,
        kind: Kind = Kind.SESSION,
        ttl: int | None = None,
        token: str | None = None,
    ) -> Minted:
        """Store a new token for the user whose stored document is ``user_raw`` (the commit
        re-checks it, so the role copied into the token is current). Sessions expire
        after ``ttl`` (default 24 h); API keys only when a ``ttl`` is given."""
        plan = Plan()
        user_key = keys.doc_key(USER.prefix, user_id)
        plan.check("equals", user_key, user_raw)
        plan.check("unfenced", keys.delete_fence(user_key), "user_id", user_id)
        role = str(codec.loads(user_raw)["role"])
        return await self._store(plan, user_id, role, kind, ttl, token or new_token())

    async def grant(self, token: str, user_id: str, role: str) -> Minted:
        """Make ``token`` an API key of ``user_id`` with ``role`` whether or not a user
        document exists: the operator's ``MULTIFRAME_ADMIN_TOKEN`` at start-up."""
        return await self._store(Plan(), user_id, role, Kind.API_KEY, None, token)

    async def _store(
        self, plan: Plan, user_id: str, role: str, kind: Kind, ttl: int | None, token: str
    ) -> Minted:
        digest = token_hash(token)
        expires = ttl if ttl is not None else (SESSION_TTL if kind is Kind.SESSION else None)
        key = keys.token_key(digest)
        plan.write("del", key)
        for name, value in (("user_id", user_id), ("role", role), ("kind", kind.value)):
            plan.write("hset", key, name, value)
        if expires:
            plan.write("pexpire", key, expires * 1000)
        plan.write("sadd", keys.user_tokens_key(user_id), digest)
        result = await self.scripts.commit(plan)
        if not result.ok:
            raise StaleRevision(f"user {user_id!r} changed while the token was minted; retry")
        return Minted(token, user_id, kind, expires)

    async def revoke(self, digest: str, user_id: str) -> None:
        plan = Plan()
        plan.write("del", keys.token_key(digest))
        plan.write("srem", keys.user_tokens_key(user_id), digest)
        await self.scripts.commit(plan)

    async def authorize(
        self, token: str, route_class: str, limits: Limits, prefetch: str | None = None
    ) -> Decision:
        """Check ``token`` and count the request; with ``prefetch`` (a document key) the
        same round trip also returns that document when the request is allowed."""
        asked = Authorization.of(token, route_class, limits)
        reply = await self.scripts.authorize(
            asked.keys + ([prefetch] if prefetch is not None else []), asked.args
        )
        return asked.decision(reply)

    async def held(self, token: str) -> bool:
        """Whether ``token`` is a token the service holds (not revoked, not expired)."""
        return bool(await self.scripts.client.exists(keys.token_key(token_hash(token))))

    async def owner(self, digest: str) -> str:
        user_id = await self.scripts.client.hget(keys.token_key(digest), "user_id")
        if user_id is None:
            raise NotFound("no such token")
        return _text(user_id)
