"""``multiframe-admin encrypt`` and ``rotate-key``: sealing every sensitive value under the
current key, beside the live service, in resumable batches (docs/encryption.md).

Both are one pass per entity with sensitive fields, as a data migration's (keyspace.migrating):
SCAN from the resume point in ``mf:migrating:encrypt:<prefix>``, and per batch one commit that
checks every document is still the bytes read, writes each with its values sealed under the
current key (plaintext sealed, other keys' values opened and sealed again; blind tokens never
change, so claims and projections stay as they are except for plaintext's), checks the
keyring still names that key, and records the next resume point. A document a client wrote
meanwhile is read again. The quarantine's entries and the Idempotency-Key outcome records
(keyspace.resealing) are sealed again one commit each. After the passes a check pass over
everything must find nothing left; only then does the keyring say so (``plaintext`` 0, or
the old key retired).
One run at a time: the admin lock ``mf:lock:encrypt``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from . import crypto, keyring, quarantine
from .codec import now_iso
from .crypto import Undecryptable
from .errors import Contention, Unreadable
from .migrating import BATCH, STALE_TRIES, _read, _text, holding
from .migrations import Progress, parse_progress, plan_batch
from .plan import Loaded, Plan
from .resealing import plan_rewrite, resealed_record
from .schema import EntitySpec
from .sealing import Sealer

if TYPE_CHECKING:
    from .engine import Keyspace

Batches = Callable[[EntitySpec, int, int], None]  # after each batch: entity, read, rewritten
SETTLE_S = 3 * keyring.REFRESH_S
"""How long a rotation lets running services pick up the new key before the old one is
retired (they re-read the keyring every REFRESH_S, and at once on a refused commit)."""


class RekeyFailed(Exception):
    """The keyring or a batch refused the run; the message says why. What was done stays."""


@dataclass
class Summary:
    """What a run did: documents read and rewritten per collection, and those that could not
    be opened (named by key; a key this process does not hold, or tampered with)."""

    examined: dict[str, int] = field(default_factory=dict)
    rewritten: dict[str, int] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    finished: bool = False


def _sealer(ks: Keyspace) -> Sealer:
    sealer = ks.keys.sealer
    if sealer is None:
        raise RekeyFailed("no encryption key is configured (MULTIFRAME_ENCRYPTION_KEY)")
    return sealer


def _resealed(ks: Keyspace, loaded: Loaded, summary: Summary) -> dict[str, Any] | None:
    sealer, spec = _sealer(ks), loaded.spec
    if not sealer.stale(spec, loaded.doc):
        return None
    try:
        plain = sealer.open(spec, loaded.doc_id, loaded.doc)
    except Unreadable:
        summary.unreadable.append(loaded.key)
        return None
    return sealer.seal(spec, loaded.doc_id, plain, loaded.doc)


def _plan(
    ks: Keyspace, changes: dict[str, tuple[Loaded, dict[str, Any]]], key: str, at: Progress
) -> Plan:
    sealer, names = _sealer(ks), ks.schema.names
    plan = plan_batch(ks.schema, list(changes.values()), key, at)
    if changes:
        plan.check("hequals", names.crypto_key(), "current", sealer.cipher.current)
    for old, new in changes.values():
        plain = sealer.open(old.spec, old.doc_id, new)
        sealer.fence(names, plan, old.spec, old.doc_id, plain)
    return plan


async def _batch(
    ks: Keyspace, spec: EntitySpec, key: str, at: Progress, summary: Summary
) -> Progress:
    names = ks.schema.names
    cursor, found = await ks.client.scan(at.cursor, match=names.doc_match(spec.prefix), count=BATCH)
    keys_: list[str] = []
    for raw in dict.fromkeys(found):  # SCAN may repeat a key
        with contextlib.suppress(UnicodeDecodeError):
            keys_.append(_text(raw))
    loaded = await _read(ks, spec, keys_)
    changes = {old.key: (old, new) for old in loaded if (new := _resealed(ks, old, summary))}
    for _ in range(STALE_TRIES):
        after = Progress(int(cursor), at.examined + len(loaded), at.converted + len(changes))
        after = Progress(after.cursor, after.examined, after.converted, int(cursor) == 0)
        result = await ks.commit(_plan(ks, changes, key, after))
        if result.ok:
            return after
        if result.error == "rekeyed":
            raise RekeyFailed(
                f"the keyring now names key id {result.value}, not "
                f"{_sealer(ks).cipher.current}: another rotation ran; nothing of this batch "
                "was written"
            )
        if result.error not in ("stale", "not_found") or result.value not in changes:
            what = f"{result.error} {result.field} {result.value}".strip()
            raise RekeyFailed(f"a batch of {spec.collection} was refused ({what})")
        del changes[result.value]  # written meanwhile: seal what is there now
        for again in await _read(ks, spec, [result.value]):
            if (new := _resealed(ks, again, summary)) is not None:
                changes[again.key] = (again, new)
    raise Contention(f"{spec.collection} kept changing; run the command again")


async def _pass(
    ks: Keyspace, spec: EntitySpec, summary: Summary, batches: Batches | None, *, resume: bool
) -> int:
    """One pass over ``spec``'s documents; how many were rewritten. ``resume``: from (and
    recording) the resume point, else from the start with a throwaway one."""
    names = ks.schema.names
    key = names.sealing_progress_key(spec.prefix)
    at = Progress()
    if resume:
        stored = await ks.client.hgetall(key)
        at = parse_progress({_text(k): _text(v) for k, v in stored.items()}) or Progress()
    start = at.converted
    while not at.scanned:
        before = at
        at = await _batch(ks, spec, key, at, summary)
        if batches is not None:
            batches(spec, at.examined - before.examined, at.converted - before.converted)
    summary.examined[spec.collection] = summary.examined.get(spec.collection, 0) + at.examined
    done = at.converted - start
    summary.rewritten[spec.collection] = summary.rewritten.get(spec.collection, 0) + done
    return done


async def _quarantine_pass(ks: Keyspace, summary: Summary) -> int:
    """Seal every quarantine entry's record under the current key (keyspace.quarantine):
    plaintext records, and those sealed under another key; how many were rewritten. An
    entry restored or dropped meanwhile is gone, nothing to do."""
    names, cipher = ks.schema.names, _sealer(ks).cipher
    done = 0
    for entry_key in await quarantine.entry_keys(ks.client, names):
        for _ in range(STALE_TRIES):
            try:
                plan = quarantine.plan_reseal(
                    names, entry_key, await ks.client.hgetall(entry_key), cipher
                )
            except (KeyError, Undecryptable):
                summary.unreadable.append(entry_key)
                break
            if plan is None:
                break
            result = await ks.commit(plan)
            if result.ok:
                done += 1
                break
        else:
            raise Contention(f"{entry_key} kept changing; run the command again")
    if done:
        summary.examined["quarantine"] = summary.examined.get("quarantine", 0) + done
        summary.rewritten["quarantine"] = summary.rewritten.get("quarantine", 0) + done
    return done


OUTCOMES = "idempotency"  # the summary's name for the Idempotency-Key outcome records


async def _outcomes_pass(ks: Keyspace, summary: Summary) -> int:
    """Seal the documents the Idempotency-Key outcome records hold under the current key
    (keyspace.resealing), so a retry replays them after the old key is gone; how many
    records were rewritten. A record rewritten or expired meanwhile is read again."""
    names, sealer = ks.schema.names, _sealer(ks)
    specs = [spec for spec in ks.schema.entities if spec.sensitive]
    done = 0
    async for found in ks.client.scan_iter(match=names.idempotency_match(), count=BATCH):
        try:
            key = _text(found)
        except UnicodeDecodeError:
            continue  # no name the service makes, nor one a commit can address
        for _ in range(STALE_TRIES):
            try:
                held: bytes | str | None = await ks.client.get(key)
            except ResponseError:
                break  # not a string: no record (a replay treats it as in flight)
            raw = held.encode() if isinstance(held, str) else held
            ttl = int(await ks.client.pttl(key))  # read after: as new as the value, or newer
            if raw is None or ttl == -2:
                break
            try:
                new = resealed_record(sealer, specs, raw)
            except Unreadable:
                summary.unreadable.append(key)
                break
            if new is None:
                break
            result = await ks.commit(plan_rewrite(names, key, raw, new, ttl, sealer.cipher.current))
            if result.ok:
                done += 1
                break
            if result.error == "rekeyed":
                raise RekeyFailed(
                    f"the keyring now names key id {result.value}, not "
                    f"{sealer.cipher.current}: another rotation ran"
                )
        else:
            raise Contention(f"{key} kept changing; run the command again")
    if done:
        summary.examined[OUTCOMES] = summary.examined.get(OUTCOMES, 0) + done
        summary.rewritten[OUTCOMES] = summary.rewritten.get(OUTCOMES, 0) + done
    return done


async def _converge(ks: Keyspace, summary: Summary, batches: Batches | None) -> None:
    """Resumable passes over every sensitive entity, then the quarantine and the outcome
    records, then check passes until one rewrites nothing (services that wrote meanwhile
    under a key they had not yet dropped)."""
    sensitive = [s for s in ks.schema.entities if s.sensitive]
    for spec in sensitive:
        await _pass(ks, spec, summary, batches, resume=True)
    await _quarantine_pass(ks, summary)
    await _outcomes_pass(ks, summary)
    while True:
        rewritten = 0
        for spec in sensitive:
            rewritten += await _pass(ks, spec, summary, batches, resume=False)
        rewritten += await _quarantine_pass(ks, summary)
        rewritten += await _outcomes_pass(ks, summary)
        if not rewritten:
            return


def _finish(ks: Keyspace, current: str, extra: dict[str, str], dropped: list[str]) -> Plan:
    names = ks.schema.names
    plan = Plan(names.pause_key())
    ring = names.crypto_key()
    plan.check("hequals", ring, "current", current)
    for name, value in {"plaintext": "0", **extra}.items():
        plan.write("hset", ring, name, value)
    for name in dropped:
        plan.write("hdel", ring, name)
    for spec in ks.schema.entities:
        if spec.sensitive:
            plan.write("del", names.sealing_progress_key(spec.prefix))
    return plan


async def encrypt(ks: Keyspace, *, batches: Batches | None = None) -> Summary:
    """Seal every plaintext sensitive value under the current key, then mark the keyring as
    holding no plaintext. Resumable: a run stopped half-way continues where it was."""
    sealer, summary = _sealer(ks), Summary()
    async with holding(ks, "encrypt"):
        await _converge(ks, summary, batches)
        if summary.unreadable:
            return summary
        result = await ks.commit(_finish(ks, sealer.cipher.current, {}, []))
        if not result.ok:
            raise RekeyFailed(f"the keyring changed meanwhile ({result.error} {result.value})")
        await ks.keys.refresh()
        summary.finished = True
        return summary


async def rotate(
    ks: Keyspace,
    new_key: bytes,
    *,
    batches: Batches | None = None,
    settle: float = SETTLE_S,
) -> Summary:
    """Re-seal every sensitive value under ``new_key`` while services keep running, then
    retire the old key. ``ks`` must hold the keyspace's current key (or, resuming a rotation,
    either). Both keys open everything until the end; resumable."""
    new_kid, summary = crypto.key_id(new_key), Summary()
    async with holding(ks, "encrypt"):
        fields = await keyring.read(ks.client, ks.schema.names)
        old_kid = fields.get("current", "")
        if old_kid != new_kid:
            await _begin(ks, fields, new_key)
        else:
            old_kid = fields.get(f"prev:{new_kid}", "").partition(":")[0]
            if not old_kid:
                summary.finished = True  # already the current key, nothing in rotation
                return summary
        ks.keys.held[new_kid] = new_key
        await ks.keys.refresh()
        await _converge(ks, summary, batches)
        if summary.unreadable:
            return summary
        began = float((await keyring.read(ks.client, ks.schema.names)).get("rotating_since", 0))
        await asyncio.sleep(max(0.0, began + settle - time.time()))
        await _converge(ks, summary, batches)  # what a service sealed under the old key since
        # ``next:<old>`` stays: a service that did not read the keyring during the rotation
        # (paused, partitioned) still learns the new key from it. A start with the old key is
        # refused all the same (``retired:``); forget_retired() or the next rotation drops it.
        dropped = [f"check:{old_kid}", f"prev:{new_kid}", "rotating_since"]
        plan = _finish(ks, new_kid, {f"retired:{old_kid}": now_iso()}, dropped)
        result = await ks.commit(plan)
        if not result.ok:
            raise RekeyFailed(f"the keyring changed meanwhile ({result.error} {result.value})")
        summary.finished = True
        return summary


async def _begin(ks: Keyspace, fields: dict[str, str], new_key: bytes) -> None:
    """Make ``new_key`` current, readable by holders of the old key and vice versa."""
    sealer = _sealer(ks)
    old_kid = sealer.cipher.current
    if fields.get("current") != old_kid or old_kid not in sealer.cipher.keys:
        raise RekeyFailed("the keyring changed while it was read; run the command again")
    unfinished = fields.get(f"prev:{old_kid}", "").partition(":")[0]
    if unfinished:
        raise RekeyFailed(
            f"the rotation from key id {unfinished} to {old_kid} is not finished: run "
            f"rotate-key with --new-key naming key id {old_kid} first"
        )
    names, ring = ks.schema.names, ks.schema.names.crypto_key()
    plan = Plan(names.pause_key())
    plan.check("hequals", ring, "current", old_kid)
    for name in _routes_from_retired(fields):
        plan.write("hdel", ring, name)  # a key retired by an earlier rotation opens nothing
    new_kid = crypto.key_id(new_key)
    for kid in (old_kid, new_kid):  # a key rotated back to is current again, not retired
        if f"retired:{kid}" in fields:
            plan.write("hdel", ring, f"retired:{kid}")
    check, wrapped = keyring.check_entry(new_key, sealer.cipher.blind_key)
    entries = {
        check: wrapped,
        **keyring.link_entries(sealer.cipher.keys[old_kid], new_key),
        "rotating_since": f"{time.time():.3f}",
        "current": new_kid,
    }
    for name, value in entries.items():
        plan.write("hset", ring, name, value)
    result = await ks.commit(plan)
    if not result.ok:
        raise RekeyFailed(f"the keyring changed meanwhile ({result.error} {result.value})")


def _routes_from_retired(fields: dict[str, str]) -> list[str]:
    return [
        name
        for name in fields
        if name.startswith("next:") and f"retired:{name.partition(':')[2]}" in fields
    ]


async def forget_retired(ks: Keyspace) -> list[str]:
    """Drop the ``next:`` entries a rotation left for its retired key (a late service's
    route to the new key): from now on a retired key opens nothing. The key ids forgotten."""
    sealer = _sealer(ks)
    async with holding(ks, "encrypt"):
        fields = await keyring.read(ks.client, ks.schema.names)
        if f"prev:{fields.get('current', '')}" in fields:
            raise RekeyFailed("a rotation is not finished: run rotate-key to its end first")
        routes = _routes_from_retired(fields)
        if not routes:
            return []
        plan = Plan(ks.schema.names.pause_key())
        ring = ks.schema.names.crypto_key()
        plan.check("hequals", ring, "current", sealer.cipher.current)
        for name in routes:
            plan.write("hdel", ring, name)
        result = await ks.commit(plan)
        if not result.ok:
            raise RekeyFailed(f"the keyring changed meanwhile ({result.error} {result.value})")
        return [name.partition(":")[2] for name in routes]
