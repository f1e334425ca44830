"""Idempotency-Key outcome records on an encrypted keyspace: ``rotate-key`` re-seals them.

A ``doc`` or ``docs`` outcome (keyspace.idempotency) holds the document(s) as stored, sealed
values included, and a retry replays it for up to a day by opening them. A rotation that
left them under the old key would make every such retry fail once the old key is forgotten,
so keyspace.rekeying passes over them beside the documents: each record whose body holds a
value sealed under another key than the current one is rewritten, in one commit checking the
record is still the bytes read and the keyring still names the current key, with the same
head, the same documents (their values opened and sealed again, the rest unchanged) and the
time it had left to live. The record does not name its entity: the sensitive entity whose
fields hold every sealed value and whose key opens them is it (each value's associated data
binds it to its entity, field and document id, so no other entity's opens it).
"""

from __future__ import annotations

from collections.abc import Sequence

from . import codec, idempotency
from .crypto import parse_sealed
from .errors import Unreadable
from .keys import Names
from .plan import Plan
from .schema import EntitySpec
from .sealing import Sealer


def _resealed_doc(sealer: Sealer, specs: Sequence[EntitySpec], raw: bytes) -> bytes | None:
    try:
        doc = codec.loads(raw)
    except ValueError:
        return None  # not a document: a replay serves nothing sealed from it either
    if not isinstance(doc, dict):
        return None
    kids = {name: s.kid for name, value in doc.items() if (s := parse_sealed(value)) is not None}
    if all(kid == sealer.cipher.current for kid in kids.values()):
        return None
    for spec in specs:
        if spec.id_field not in doc or not kids.keys() <= {e.field for e in spec.sensitive}:
            continue
        doc_id = str(doc[spec.id_field])
        try:
            plain = sealer.open(spec, doc_id, doc)
        except Unreadable:
            continue
        return codec.dumps(sealer.seal(spec, doc_id, plain, doc))
    raise Unreadable("a sealed value of an outcome record does not open under any key held")


def resealed_record(sealer: Sealer, specs: Sequence[EntitySpec], raw: bytes) -> bytes | None:
    """The outcome record ``raw`` with every sealed value under ``sealer``'s current key;
    None when nothing in it needs that (a claim, a body or 204 outcome, all current already).
    Unreadable when a sealed value opens under no key held."""
    record = idempotency.parse(raw)
    if record is None or record.state != "done" or record.kind not in ("doc", "docs"):
        return None
    docs = record.body.split(b"\n") if record.kind == "docs" else [record.body]
    new = [_resealed_doc(sealer, specs, doc) for doc in docs]
    if all(doc is None for doc in new):
        return None
    body = b"\n".join(n if n is not None else old for n, old in zip(new, docs, strict=True))
    return idempotency.done_head(record.fingerprint, record.status, record.kind) + body


def plan_rewrite(names: Names, key: str, raw: bytes, new: bytes, ttl: int, current: str) -> Plan:
    """The commit replacing the record ``raw`` at ``key`` (``ttl`` ms left, -1 none) by
    ``new``: ``stale`` when the key no longer holds ``raw``, ``rekeyed`` when the keyring no
    longer names ``current`` (nothing written then)."""
    plan = Plan(names.pause_key())
    plan.check("string", key, raw)
    plan.check("hequals", names.crypto_key(), "current", current)
    plan.write("set", key, new)
    if ttl > 0:  # the replay window it had left, not a fresh one
        plan.write("pexpire", key, ttl)
    return plan
