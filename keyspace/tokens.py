"""Access tokens and per-user rate limits.

A token is random (256 bits), shown once, and stored only as its SHA-256: the
hash ``mf:token:<sha256>`` holds ``user_id``, ``role`` and ``kind`` and expires
with the token; ``mf:tokens:<user_id>`` lists a user's token hashes so that
deleting the user (a satellite of the user declaration) revokes every token in
the same commit, and a role change is mirrored into each of them.

The operator's token (``MULTIFRAME_ADMIN_TOKEN``) is never stored: :class:`Tokens`
recognises it in process and authorizes it as an admin acting as :data:`OPERATOR`, so
no user document, backup, restore or reset can change or carry it, and it stops
working with the configuration that names it.

Rate limits are per user and route class (``mf:rate:<user_id>:<class>``), shared by
all of a user's tokens. The client names that key from the token's owner, which it
resolves once and caches; ``authorize.lua`` checks the owner and answers ``moved``
when it is not, and the client asks again with the right key.

A system may also declare per-user, per-endpoint limits (:class:`EndpointLimits`, the
seed's ``rate_limit:<user_id>:<endpoint>`` counts in fixed windows of an hour), checked
in the same script; a request must pass both, and is counted by neither when refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TypeVar

from . import codec
from .errors import Contention, NotFound, StaleRevision, WrongType
from .keys import Names
from .plan import Arg, Plan
from .schema import Schema
from .scripts import AuthReply, Scripts

SESSION_TTL = 24 * 3600
PREFIX = "mf_"
OPERATOR = "admin"
"""The user id the operator's token acts as (no user document is needed)."""
OWNERS_CACHED = 10_000  # token hash -> user id hints kept in process (~2 MB at most)
RESOLVE_TRIES = 3  # a token found under another user than cached: ask again, this often


class TokenKind(StrEnum):
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
    kind: TokenKind
    expires_in: int | None


@dataclass(frozen=True)
class EndpointLimit:
    """One request's per-endpoint limit: ``limit`` requests of ``endpoint`` per user in a
    fixed window of ``window_ms``."""

    endpoint: str
    limit: int
    window_ms: int


def endpoint_name(method: str, template: str) -> str:
    """How a route is named in per-endpoint limits and their keys: its method and path
    template, ``GET:/api/projects/{id}``; HEAD is a GET without the body."""
    return f"{'GET' if method == 'HEAD' else method}:{template}"


@dataclass(frozen=True)
class EndpointLimits:
    """A system's per-user, per-endpoint limits (``System.rate_limits``): requests per
    window of each endpoint (:func:`endpoint_name`), by default ``read`` for GET and
    ``write`` for every other method, unless ``endpoints`` names its own; 0 is unlimited.
    Admins are not limited by them."""

    read: int = 100
    write: int = 100
    endpoints: Mapping[str, int] = field(default_factory=dict)
    window_seconds: int = 3600

    def of(self, method: str, template: str) -> EndpointLimit | None:
        """The limit of one route; None when it is unlimited."""
        name = endpoint_name(method, template)
        default = self.read if name.startswith("GET:") else self.write
        limit = self.endpoints.get(name, default)
        return EndpointLimit(name, limit, self.window_seconds * 1000) if limit > 0 else None

    def configured(self, overrides: Mapping[str, int]) -> EndpointLimits:
        """These limits with ``overrides`` (:func:`parse_endpoint_limits`) applied: ``read``
        and ``write`` replace the defaults, an endpoint's name its own limit."""
        endpoints = {**self.endpoints}
        endpoints.update((k, v) for k, v in overrides.items() if k not in ("read", "write"))
        return replace(
            self,
            read=overrides.get("read", self.read),
            write=overrides.get("write", self.write),
            endpoints=endpoints,
        )


def parse_endpoint_limits(raw: str) -> dict[str, int]:
    """``name=requests,...`` (``MULTIFRAME_ENDPOINT_LIMITS``), each name ``read``, ``write``
    or an endpoint (``GET:/api/projects/{id}``), as a mapping; ValueError when malformed."""
    out: dict[str, int] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        name, sep, number = (p.strip() for p in item.rpartition("="))
        method, colon, path = name.partition(":")
        named = name in ("read", "write") or (
            colon and method.isalpha() and method.isupper() and path.startswith("/")
        )
        if not sep or not named or not (number.isascii() and number.isdigit()):
            raise ValueError(f"{item!r} is not read=N, write=N or METHOD:/path=N")
        if name in out:
            raise ValueError(f"{name} is given twice")
        out[name] = int(number)
    return out


@dataclass(frozen=True)
class Limits:
    """Requests per ``period_ms`` per role and route class; 0 means unlimited. ``mint`` is
    ``POST /api/users/{id}/tokens``, which counts against its own limit, not ``write``."""

    designer_read: int = 600
    designer_write: int = 120
    designer_mint: int = 10
    engineer_read: int = 600
    engineer_write: int = 120
    engineer_mint: int = 10
    admin_read: int = 0
    admin_write: int = 0
    admin_mint: int = 0
    period_ms: int = 60_000
    # The request's per-endpoint limit besides these (EndpointLimits.of); None: none.
    endpoint: EndpointLimit | None = None

    def args(self) -> list[int]:
        ends = self.endpoint
        return [
            self.period_ms,
            self.admin_read,
            self.admin_write,
            self.admin_mint,
            self.designer_read,
            self.designer_write,
            self.designer_mint,
            self.engineer_read,
            self.engineer_write,
            self.engineer_mint,
            *([ends.limit, ends.window_ms] if ends is not None else []),
        ]


@dataclass(frozen=True)
class Decision:
    """Outcome of :meth:`Tokens.authorize`."""

    status: str  # ok | unknown | paused | maintenance | limited (| moved, internal to run)
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
    def of(
        cls,
        names: Names,
        maintenance: str,
        digest: str,
        user_id: str,
        operator_role: str,
        route_class: str,
        limits: Limits,
    ) -> Authorization:
        """The call for the token ``digest`` believed to belong to ``user_id``; with an
        ``operator_role`` the script takes the caller as given instead of reading a token.
        ``maintenance`` is the document whose ``system.maintenance`` refuses members' writes."""
        keys = [
            names.token_key(digest),
            names.rate_key(user_id, route_class),
            maintenance,
            names.pause_key(),
        ]
        if limits.endpoint is not None:
            endpoint = limits.endpoint.endpoint
            keys += [
                names.endpoint_rate_key(user_id, endpoint),
                names.endpoint_window_key(user_id, endpoint),
            ]
        return cls(digest, keys, [route_class, user_id, operator_role, *limits.args()])

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


R = TypeVar("R")
Send = Callable[[Authorization], Awaitable[tuple[AuthReply, R]]]
"""Sends one authorization (alone, or with a commit) and returns its reply and what else ran."""


class Tokens:
    """Mint, revoke and check tokens; every write is one commit plan."""

    def __init__(self, scripts: Scripts, schema: Schema) -> None:
        self.scripts = scripts
        self.names = names = schema.names
        self.users = schema.users
        # MultiFrame's config:system carries the maintenance flag; elsewhere a reserved key
        # no one writes stands in (those systems have the pause, not a maintenance flag).
        self.maintenance = schema.maintenance_key or names.reserved + "maintenance"
        self._operator: str | None = None  # SHA-256 of the operator's token, when configured
        self._owners: dict[str, str] = {}  # token hash -> user id: a hint the script checks

    def configure_operator(self, token: str | None) -> None:
        """Recognise ``token`` (``MULTIFRAME_ADMIN_TOKEN``) as an admin acting as
        :data:`OPERATOR`, in this process only; None recognises no operator token."""
        self._operator = token_hash(token) if token else None

    def is_operator(self, digest: str) -> bool:
        """Whether ``digest`` is the configured operator token's (constant-time compare)."""
        return self._operator is not None and hmac.compare_digest(digest, self._operator)

    async def mint(
        self,
        user_id: str,
        user_raw: bytes,
        kind: TokenKind = TokenKind.SESSION,
        ttl: int | None = None,
        token: str | None = None,
    ) -> Minted:
        """Store a new token for the user whose stored document is ``user_raw`` (the commit
        re-checks it, so the role copied into the token is current). Sessions expire
        after ``ttl`` (default 24 h); API keys only when a ``ttl`` is given."""
        names, users = self.names, self.users
        plan = Plan(names.pause_key())
        user_key = names.doc_key(users.prefix, user_id)
        plan.check("equals", user_key, user_raw)
        plan.check("unfenced", names.delete_fence(user_key), users.id_field, user_id)
        assert users.satellites is not None
        role = str(users.satellites.derive(codec.loads(user_raw)).get("role", ""))
        token = token or new_token()
        digest = token_hash(token)
        expires = ttl if ttl is not None else (SESSION_TTL if kind is TokenKind.SESSION else None)
        key = names.token_key(digest)
        plan.write("del", key)
        for name, value in (("user_id", user_id), ("role", role), ("kind", kind.value)):
            plan.write("hset", key, name, value)
        if expires:
            plan.write("pexpire", key, expires * 1000)
        plan.write("sadd", names.user_tokens_key(user_id), digest)
        result = await self.scripts.commit(plan)
        if result.error == "wrong_type":
            raise WrongType(
                f"{result.value} holds an unexpected type; nothing was written "
                "(run `multiframe-admin check` to find and repair it)",
                details={"key": result.value},
            )
        if result.error in ("not_found", "missing_reference"):  # deleted, or being deleted
            raise NotFound(f"user {user_id!r} does not exist")
        if not result.ok:
            raise StaleRevision(f"user {user_id!r} changed while the token was minted; retry")
        return Minted(token, user_id, kind, expires)

    async def revoke(self, digest: str, user_id: str) -> None:
        names = self.names
        plan = Plan(names.pause_key())
        plan.write("del", names.token_key(digest))
        plan.write("srem", names.user_tokens_key(user_id), digest)
        await self.scripts.commit(plan)
        self._owners.pop(digest, None)

    async def authorize(
        self, token: str, route_class: str, limits: Limits, prefetch: str | None = None
    ) -> Decision:
        """Check ``token`` and count the request; with ``prefetch`` (a document key) the
        same round trip also returns that document when the request is allowed."""
        extra = [prefetch] if prefetch is not None else []

        async def send(asked: Authorization) -> tuple[AuthReply, None]:
            return await self.scripts.authorize(asked.keys + extra, asked.args), None

        decision, _ = await self.run(token, route_class, limits, send)
        return decision

    async def run(
        self, token: str, route_class: str, limits: Limits, send: Send[R]
    ) -> tuple[Decision, R | None]:
        """Authorize ``token`` through ``send`` (``authorize.lua`` alone or inside another
        script), on its owner's rate key: one round trip once the owner is known. What
        ``send`` returned besides the reply is None when the token is unknown."""
        digest = token_hash(token)
        for _ in range(RESOLVE_TRIES):
            asked = self._asking(digest, route_class, limits)
            reply, extra = await send(asked)
            decision = asked.decision(reply)
            if decision.status == "unknown":
                self._owners.pop(digest, None)
            if decision.status != "moved":
                return decision, extra
            self._remember(digest, decision.user_id)
        raise Contention("the token's owner kept changing while it was checked; retry")

    def _asking(self, digest: str, route_class: str, limits: Limits) -> Authorization:
        """The call for ``digest``. A token whose owner this process does not know yet is
        asked about as user '': the script answers 'paused' first (the token may be gone
        from a keyspace being restored), else 'unknown' or 'moved' with its owner."""
        if self.is_operator(digest):
            return Authorization.of(
                self.names, self.maintenance, digest, OPERATOR, "admin", route_class, limits
            )
        user_id = self._owners.get(digest, "")
        return Authorization.of(
            self.names, self.maintenance, digest, user_id, "", route_class, limits
        )

    def _remember(self, digest: str, user_id: str) -> None:
        if digest not in self._owners and len(self._owners) >= OWNERS_CACHED:
            del self._owners[next(iter(self._owners))]  # the oldest hint
        self._owners[digest] = user_id

    async def role_of(self, digest: str) -> str | None:
        """The role a token acts with now (None: revoked, expired or its user deleted),
        without a rate-limit decision: for a long-lived request re-checking its caller."""
        if self.is_operator(digest):
            return "admin"  # the operator acts as an admin (authorize.lua)
        role = await self.scripts.client.hget(self.names.token_key(digest), "role")
        return None if role is None else _text(role)

    async def owner(self, digest: str) -> str:
        user_id = await self.scripts.client.hget(self.names.token_key(digest), "user_id")
        if user_id is None:
            raise NotFound("no such token")
        return _text(user_id)

    async def retire_operator_tokens(self, configured: str | None) -> int:
        """Remove what older versions stored for the operator's token (this one never
        stores it), so it cannot outlive its configuration; the number of tokens removed.

        That is the stored copy of the ``configured`` value, and every token of
        :data:`OPERATOR` while no user document :data:`OPERATOR` exists: only the operator's
        token could be one (deleting a user revokes its tokens). A token an older version
        stored under another value while a user ``admin`` existed cannot be told from that
        user's own API keys and stays (revoke it with ``DELETE /api/tokens/current``)."""
        retired = 0
        if configured:
            digest = token_hash(configured)
            with contextlib.suppress(NotFound):
                await self.revoke(digest, await self.owner(digest))
                retired += 1
        names = self.names
        index = names.user_tokens_key(OPERATOR)
        members = [_text(m) for m in await self.scripts.client.smembers(index)]
        if not members:
            return retired
        plan = Plan(names.pause_key())
        plan.check("absent", names.doc_key(self.users.prefix, OPERATOR))
        plan.check("card", index, len(members), index)  # none added meanwhile
        for digest in members:
            plan.write("del", names.token_key(digest))
            self._owners.pop(digest, None)
        plan.write("del", index)
        return retired + (len(members) if (await self.scripts.commit(plan)).ok else 0)
