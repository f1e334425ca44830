"""Idempotent retries: the claim, the outcome record, and how a commit carries them.

A write sent with a client's idempotency key first claims the key (SET NX PX, a
``pending`` record naming a random claim token). The commit that performs the write then
checks that the claim is still ours (``claimed``) and replaces it, in the same script, with
the outcome (``outcome``: status and the document the commit returns), which a retry of the
same request replays for :data:`DONE_MS`. A commit whose reply was lost therefore left its
outcome behind: the retry answers it instead of writing again.

Records are strings, one field per line, the body last (it may hold anything)::

    pending\\n<fingerprint>\\n<claim token>
    done\\n<fingerprint>\\n<status>\\n<kind>\\n<body>

``kind`` is ``doc`` (the body is the stored document, as the commit returned it), ``docs``
(one per line, in the answer's order: a batch create, batch_commit.lua), ``none`` (no
body: a 204) or ``body`` (the body as answered: a refusal after the claim).
"""

from __future__ import annotations

import hashlib
import secrets
from contextvars import ContextVar
from dataclasses import dataclass, replace

from redis.asyncio import Redis

from .errors import Conflict
from .keys import Names
from .plan import Plan

PENDING_MS = 60_000
"""How long a claim of a request in flight lasts: a process that died mid-request frees the
key after this, and a retry then runs the write (its commit never happened)."""

DONE_MS = 24 * 3600 * 1000
"""How long an outcome is replayed."""

MAX_KEY = 255
LOST = "idempotency_lost"  # commit.lua's refusal when the claim is no longer ours

KINDS = ("doc", "none", "body", "docs")


class KeyInFlight(Conflict):
    """Another request with the same idempotency key is in flight (or took the key over
    after this one's claim expired): nothing was written."""

    code = "idempotency_key_in_flight"


def valid_key(value: str) -> bool:
    """1 to 255 printable ASCII characters (space included, as RFC 9110 field values)."""
    return 1 <= len(value) <= MAX_KEY and all(" " <= c <= "~" for c in value)


def fingerprint(method: str, target: str, body: bytes) -> str:
    """What makes two requests the same request: method, path with query, and body."""
    digest = hashlib.sha256()
    for part in (method.upper().encode(), target.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def key_digest(client_key: str) -> str:
    """The client's key as it appears in a key name: fixed length, any characters."""
    return hashlib.sha256(client_key.encode()).hexdigest()


def pending_record(fp: str, token: str) -> bytes:
    return f"pending\n{fp}\n{token}".encode()


def done_head(fp: str, status: int, kind: str) -> bytes:
    """A ``done`` record up to its body (commit.lua appends the document it returns)."""
    assert kind in KINDS
    return f"done\n{fp}\n{status}\n{kind}\n".encode()


@dataclass(frozen=True)
class Record:
    """A key's record as read: ``state`` is ``pending`` or ``done``."""

    state: str
    fingerprint: str
    status: int = 0
    kind: str = "none"
    body: bytes = b""


def parse(value: bytes | str) -> Record | None:
    """The record ``value`` encodes, or None for anything else (the key is then treated as
    free once it expires: never replayed)."""
    raw = value.encode() if isinstance(value, str) else value
    state, _, rest = raw.partition(b"\n")
    if state == b"pending":
        fp, _, token = rest.partition(b"\n")
        return Record("pending", fp.decode()) if token else None
    if state != b"done":
        return None
    parts = rest.split(b"\n", 3)
    if len(parts) != 4 or not parts[1].isdigit() or parts[2].decode() not in KINDS:
        return None
    return Record("done", parts[0].decode(), int(parts[1]), parts[2].decode(), parts[3])


@dataclass
class Claim:
    """A key this request holds. ``status``: what the write answers when it succeeds (None:
    201 when its plan creates the returned document, else 200: an upsert). ``committed``
    turns True once a commit carried the outcome: later commits of the request (a delete's
    fence lowered) carry nothing more."""

    key: str
    fingerprint: str
    token: str
    status: int | None = None
    done_ms: int = DONE_MS
    committed: bool = False

    def held(self) -> bytes:
        return pending_record(self.fingerprint, self.token)


def status_of(plan: Plan, claim: Claim) -> int:
    """The status a successful commit of ``plan`` answers (see :attr:`Claim.status`)."""
    if claim.status is not None:
        return claim.status
    creates = plan.returning and any(
        op[0] == "absent" and op[1] == plan.returning for op in plan.checks
    )
    return 201 if creates else 200


def remember(plan: Plan, claim: Claim) -> Plan:
    """``plan`` with the claim checked and its outcome written last (a copy: ``plan`` may be
    committed again on its own). A script applying several plans at once checks
    :meth:`Claim.held` before its first write and stores ``done_head(...)`` and its answer
    after its last, as ``outcome`` does here."""
    out = replace(
        plan,
        keys=list(plan.keys),
        checks=list(plan.checks),
        writes=list(plan.writes),
        _index=dict(plan._index),
        _bumped=set(plan._bumped),
    )
    kind = "doc" if plan.returning else "none"
    out.check("claimed", claim.key, claim.held())
    out.write(
        "outcome",
        claim.key,
        done_head(claim.fingerprint, status_of(plan, claim), kind),
        claim.done_ms,
    )
    return out


def settled_plan(names: Names, claim: Claim, status: int, body: bytes) -> Plan:
    """A plan storing a refusal's answer under a claim still ours (nothing else written)."""
    plan = Plan(names.pause_key())
    plan.check("claimed", claim.key, claim.held())
    plan.write(
        "outcome", claim.key, done_head(claim.fingerprint, status, "body") + body, claim.done_ms
    )
    return plan


def release_plan(names: Names, claim: Claim) -> Plan:
    """A plan deleting the claim if it is still ours: the write did not happen."""
    plan = Plan(names.pause_key())
    plan.check("claimed", claim.key, claim.held())
    plan.write("del", claim.key)
    return plan


# The claim of the request being handled: each request runs in a task of its own, so the
# commit it makes deep in the store finds it here without every signature carrying it.
current: ContextVar[Claim | None] = ContextVar("idempotency_claim", default=None)


def attach(plan: Plan) -> Plan:
    """The plan a request's write commits: with the claim's check and outcome while the
    request holds a claim no commit carried yet."""
    claim = current.get()
    if claim is None or claim.committed:
        return plan
    return remember(plan, claim)


def carried(ok: bool, error: str | None, key: str) -> None:
    """After a commit of an attached plan: mark the claim used, or raise KeyInFlight when
    the claim was lost (expired, and another request took the key)."""
    claim = current.get()
    if claim is None or claim.committed:
        return
    if ok:
        claim.committed = True
    elif error == LOST:
        raise KeyInFlight(
            "this request's claim of its Idempotency-Key expired (or another request took "
            "the key over); nothing was written",
            details={"key": key},
        )


async def claim(
    client: Redis, key: str, fp: str, *, status: int | None, pending_ms: int, done_ms: int
) -> Claim | Record:
    """Claim ``key`` for a request with fingerprint ``fp``: our Claim, or the record that
    holds the key (a request in flight, or an outcome to replay)."""
    token = secrets.token_hex(16)
    for _ in range(3):
        if await client.set(key, pending_record(fp, token), nx=True, px=pending_ms):
            return Claim(key, fp, token, status, done_ms)
        raw = await client.get(key)
        if raw is None:
            continue  # expired between the two: claim again
        record = parse(raw)
        if record is not None:
            return record
        return Record("pending", "")  # unreadable: as a request in flight until it expires
    return Record("pending", fp)
