"""Every Redis key name the service uses, built by small pure functions.

Documents and counters use the seed's exact names (``driver:driver_1``,
``driver_counter``). Everything else the service keeps for itself lives under
the one reserved prefix :data:`RESERVED`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

RESERVED = "mf:"
"""Prefix of every key (and index name) the service adds beside the seed's keys."""

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
_ID_RE = re.compile(ID_PATTERN)
_NS_RE = re.compile(r"[A-Za-z0-9_\-]+(:[A-Za-z0-9_\-]+)*:")


def is_valid_id(value: str) -> bool:
    """True when ``value`` can be used as a document id (no ``:``, ``*``, braces, spaces)."""
    return bool(_ID_RE.fullmatch(value))


_LOOKUP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,299}$")


def is_lookup_id(value: str) -> bool:
    """True when ``value`` may name a stored document (generated, imported or derived id)."""
    return bool(_LOOKUP_RE.fullmatch(value))


def doc_key(prefix: str, doc_id: str) -> str:
    """The seed's document key, e.g. ``doc_key("driver", "driver_1") == "driver:driver_1"``."""
    return f"{prefix}:{doc_id}"


def doc_match(prefix: str) -> str:
    """SCAN pattern matching every document of one entity type."""
    return f"{prefix}:*"


def projection_key(prefix: str, doc_id: str) -> str:
    """What the index sees of one document of a projected entity (keyspace.projection),
    e.g. ``mf:proj:user:user_1``."""
    return f"{RESERVED}proj:{prefix}:{doc_id}"


def projection_match(prefix: str) -> str:
    """SCAN pattern matching every projection of one entity type."""
    return f"{RESERVED}proj:{prefix}:*"


def rank_key(prefix: str, field: str) -> str:
    """The sorted set of one ranked field (keyspace.ranks): score the field's value, member
    the document id, e.g. ``mf:rank:driver:cores``."""
    return f"{RESERVED}rank:{prefix}:{field}"


def rank_match() -> str:
    """SCAN pattern matching every ranked field's sorted set."""
    return f"{RESERVED}rank:*"


def id_from_key(prefix: str, key: str) -> str:
    """Inverse of :func:`doc_key`."""
    return key[len(prefix) + 1 :]


def counter_key(prefix: str) -> str:
    """The seed's INCR counter for an entity, e.g. ``driver_counter``."""
    return f"{prefix}_counter"


def generated_id(prefix: str, number: int) -> str:
    """An id in the seed's style, e.g. ``driver_7``."""
    return f"{generated_prefix(prefix)}{number}"


def generated_prefix(prefix: str) -> str:
    """What every generated id of an entity starts with, e.g. ``driver_``."""
    return f"{prefix}_"


# Counters stay where Lua numbers (doubles) are exact and INCR cannot overflow: an id past this
# is an ordinary explicit id, else one create could leave the counter unusable for everyone.
MAX_COUNTER = 2**53 - 1


def counter_value_of(prefix: str, doc_id: str) -> int | None:
    """The counter value an id in the seed's style stands for (at most :data:`MAX_COUNTER`),
    or None for other ids."""
    head, sep, tail = doc_id.rpartition("_")
    if sep and head == prefix and tail.isascii() and tail.isdigit() and not tail.startswith("0"):
        number = int(tail) if len(tail) <= 16 else MAX_COUNTER + 1
        return number if number <= MAX_COUNTER else None
    return None


def unique_key(prefix: str, field: str, normalized_value: str) -> str:
    """Claim of one unique value; the key holds the id of the document that owns it."""
    return f"{RESERVED}uniq:{prefix}:{field}:{normalized_value}"


def source_claim_key(prefix: str, source: Mapping[str, str]) -> str:
    """Claim of the tuple of values a derived id is built from (``EntitySpec.derived_from``),
    e.g. ``mf:uniq:nft:user_id+chip_id:6:user_1,3:2_c,``; it holds the id of the document.
    Each value is length-prefixed, so two different tuples never share a claim key whatever
    characters their values hold (``user_1`` + ``2_c`` and ``user_1_2`` + ``c`` do not)."""
    return f"{RESERVED}uniq:{prefix}:{'+'.join(source)}:{_tuple(source.values())}"


def _tuple(values: Iterable[str]) -> str:
    return "".join(f"{len(v)}:{v}," for v in values)


def source_values(encoded: str) -> list[str] | None:
    """The values of the last part of a :func:`source_claim_key`; None when malformed."""
    out: list[str] = []
    rest = encoded
    while rest:
        size, sep, rest = rest.partition(":")
        if (
            not (sep and size.isascii() and size.isdigit())
            or rest[int(size) : int(size) + 1] != ","
        ):
            return None
        out.append(rest[: int(size)])
        rest = rest[int(size) + 1 :]
    return out if _tuple(out) == encoded else None  # one spelling only (no "06:")


def ref_key(target_key: str, source_prefix: str, source_field: str) -> str:
    """Set of ids of ``source_prefix`` documents whose ``source_field`` points at ``target_key``."""
    return f"{RESERVED}ref:{target_key}:{source_prefix}.{source_field}"


def delete_fence(target_key: str) -> str:
    """Marker that a delete of ``target_key`` is in progress: new references to it are
    refused while it exists, so a steady writer cannot starve the delete."""
    return f"{RESERVED}deleting:{target_key}"


def lock_key(name: str) -> str:
    """Exclusive lock of one admin operation (``reindex``): SET NX with an expiry, holding
    who took it, so a second run refuses and a dead holder's lock expires."""
    return f"{RESERVED}lock:{name}"


def idempotency_key(user_id: str, key_digest: str) -> str:
    """One caller's Idempotency-Key (keyspace.idempotency): its claim while the request is
    in flight, then its outcome; ``key_digest`` is the client's key hashed."""
    return f"{RESERVED}idem:{user_id}:{key_digest}"


def idempotency_match() -> str:
    """Every :func:`idempotency_key` (``rotate-key`` re-seals the outcomes they hold)."""
    return f"{RESERVED}idem:*"


def lock_key_of(prefix: str, doc_id: str) -> str:
    """The lock of one document of a lockable entity (keyspace.locks), e.g.
    ``doc:lock:<document_id>``: a string holding the seed's JSON (``user_id``, ``locked_at``,
    ``operation``) and the lock's ``fencing_token``, expiring with the lock."""
    return f"{prefix}:{doc_id}"


def fence_key(prefix: str, doc_id: str) -> str:
    """The fencing-token counter of one document's lock (``mf:fence:doc:lock:<id>``): INCR on
    every acquire, never expiring, so a lock's token is larger than every earlier one's."""
    return f"{RESERVED}fence:{prefix}:{doc_id}"


def oplog_key(prefix: str, doc_id: str) -> str:
    """The operation log of one document (keyspace.oplog), e.g. ``doc:ops:<document_id>``: a
    list of the seed's JSON entries, oldest first, expiring after its last append."""
    return f"{prefix}:{doc_id}"


def profile_key(prefix: str, doc_id: str) -> str:
    """The cached profile of one document (keyspace.profiles), e.g. ``user:profile:<user_id>``:
    a JSON string, expiring, deleted by every commit that changes what it summarizes."""
    return f"{prefix}:{doc_id}"


def oplog_seq_key(prefix: str, doc_id: str) -> str:
    """How many entries one document's operation log has ever had (``mf:seq:doc:ops:<id>``):
    the sequence number of its last entry. It never expires, so numbers are never reused."""
    return f"{RESERVED}seq:{prefix}:{doc_id}"


def token_key(token_hash: str) -> str:
    """Hash of one access token (``user_id``, ``role``, ``kind``), stored under its SHA-256."""
    return f"{RESERVED}token:{token_hash}"


def user_tokens_key(user_id: str) -> str:
    """Set of the token hashes of one user, so deleting the user revokes them all."""
    return f"{RESERVED}tokens:{user_id}"


def rate_key(user_id: str, route_class: str) -> str:
    """GCRA state (theoretical arrival time) of one user for one route class, shared by
    all of the user's tokens (and, for ``admin``, by the operator's token)."""
    return f"{RESERVED}rate:{user_id}:{route_class}"


def endpoint_rate_key(user_id: str, endpoint: str) -> str:
    """The seed's per-user, per-endpoint request count in the current window
    (``rate_limit:<user_id>:<endpoint>``, endpoint e.g. ``GET:/api/projects/{id}``), expiring
    with the window. An endpoint starts with its method, so no count key is a window key."""
    return f"rate_limit:{user_id}:{endpoint}"


def endpoint_window_key(user_id: str, endpoint: str) -> str:
    """The seed's JSON of the same window (``rate_limit:window:<user_id>:<endpoint>``:
    ``requests``, ``window_start``, ``limit``), expiring with it."""
    return f"rate_limit:window:{user_id}:{endpoint}"


def endpoint_rate_match() -> str:
    """SCAN pattern of both per-endpoint keys above."""
    return "rate_limit:*"


def cache_key(endpoint: str, params_hash: str, versions: Iterable[str | int]) -> str:
    """One cached answer (keyspace.cache): the seed's ``api:cache:{endpoint}:{params_hash}``
    with the versions of the collections it was computed from folded into the last part
    (``<params_hash>@<v1>,<v2>``; ``lua/cache.lua`` builds the same), so a write that bumps
    one of them makes the answer unreachable: it ages out by its TTL."""
    return f"{cache_prefix(endpoint)}{params_hash}@{','.join(str(v) for v in versions)}"


def cache_prefix(endpoint: str) -> str:
    """What every cached answer of one endpoint starts with (``lua/cache.lua`` appends the
    folded hash to it)."""
    return f"api:cache:{endpoint}:"


def cache_entries_key(endpoint: str) -> str:
    """The index of one endpoint's cached answers (``api:cache:{endpoint}:#entries``, a
    sorted set of entry keys by expiry time): ``lua/cache.lua`` keeps at most a bound of
    them, deleting the soonest to expire. ``#`` never starts a params hash."""
    return f"{cache_prefix(endpoint)}#entries"


def collection_version_key(prefix: str) -> str:
    """The version of one collection's cached answers (``mf:cachever:<prefix>``): every
    commit that writes or deletes one of its documents INCRs it in the same script."""
    return f"{RESERVED}cachever:{prefix}"


def changes_key() -> str:
    """The change feed (``mf:changes``): a capped stream that every commit writing or deleting
    documents appends one entry per document to, in the same script (docs/changes.md)."""
    return f"{RESERVED}changes"


def pause_key() -> str:
    """The exclusive pause (``mf:pause``): while it exists every API request and every write
    script is refused (``multiframe-admin restore`` and ``reset`` hold it while they rewrite
    the keyspace). It holds JSON naming who paused, why and since when; it is never backed
    up, restored, nor deleted by the wipe of the command holding it."""
    return f"{RESERVED}pause"


def migrations_key() -> str:
    """The migration registry (``mf:migrations``, keyspace.migrations): a hash of version ->
    JSON (description, collection, kind, applied_at, documents) of every migration applied.
    Backed up and restored with the data it describes."""
    return f"{RESERVED}migrations"


def migration_progress_key(version: int) -> str:
    """The resume point of one data migration while it runs (``mf:migrating:<version>``): a
    hash (cursor, examined, converted, scanned) written in the commit of each batch and
    deleted in the commit that records the migration. Not backed up: a SCAN cursor means
    nothing on another server."""
    return f"{RESERVED}migrating:{version}"


def migration_progress_match() -> str:
    return f"{RESERVED}migrating:*"


def quarantine_key(key: str) -> str:
    """Where ``import-legacy`` moved a record it could not convert (``mf:quarantine:<key>``,
    e.g. ``mf:quarantine:user:user_4``): a hash of the record's exact bytes (``value``, or
    ``value_base64`` when they are not UTF-8), ``reason``, ``at`` and ``entity``."""
    return f"{RESERVED}quarantine:{key}"


def crypto_key() -> str:
    """The keyring of an encrypted keyspace (``mf:crypto``, keyspace.keyring): a hash of
    the current key id, the blind-index key wrapped under each data key, and, during a
    rotation, the new key wrapped under the old. No key in clear. Backed up and restored
    with the documents it opens."""
    return f"{RESERVED}crypto"


def sealing_progress_key(prefix: str) -> str:
    """The resume point of ``multiframe-admin encrypt`` / ``rotate-key`` over one entity
    (``mf:migrating:encrypt:<prefix>``): a migration's progress hash, so never backed up."""
    return f"{RESERVED}migrating:encrypt:{prefix}"


def index_alias(prefix: str) -> str:
    """The RediSearch alias queries use for one entity; it points at the current version."""
    return f"{RESERVED}idx:{prefix}"


def index_name(prefix: str, version: str) -> str:
    """One concrete RediSearch index version behind :func:`index_alias`."""
    return f"{RESERVED}idx:{prefix}:{version}"


@dataclass(frozen=True)
class Names:
    """The key names of one served system: the functions above, under its namespace.

    MultiFrame's namespace is empty, so its keys are exactly the seed's (``driver:driver_1``,
    ``mf:uniq:...``). Another system's every key starts with its namespace, reserved keys
    included (``normaldance:user:<id>``, ``normaldance:mf:pause``), so no pattern, index or ACL
    rule of one system reaches another's keys. Engine code names keys only through this.
    """

    namespace: str = ""

    def __post_init__(self) -> None:
        if self.namespace and (
            not self.namespace.endswith(":") or not _NS_RE.fullmatch(self.namespace)
        ):
            raise ValueError(
                "a key namespace is letters, digits, '_' and '-' in ':'-separated parts and "
                f"ends with ':' (got {self.namespace!r})"
            )

    @property
    def reserved(self) -> str:
        """Prefix of every key (and index name) the service adds beside the documents."""
        return self.namespace + RESERVED

    def doc_key(self, prefix: str, doc_id: str) -> str:
        return self.namespace + doc_key(prefix, doc_id)

    def doc_match(self, prefix: str) -> str:
        return self.namespace + doc_match(prefix)

    def id_from_key(self, prefix: str, key: str) -> str:
        return key[len(self.doc_key(prefix, "")) :]

    def counter_key(self, prefix: str) -> str:
        return self.namespace + counter_key(prefix)

    def projection_key(self, prefix: str, doc_id: str) -> str:
        return self.namespace + projection_key(prefix, doc_id)

    def projection_match(self, prefix: str) -> str:
        return self.namespace + projection_match(prefix)

    def rank_key(self, prefix: str, field: str) -> str:
        return self.namespace + rank_key(prefix, field)

    def rank_match(self) -> str:
        return self.namespace + rank_match()

    def unique_key(self, prefix: str, field: str, normalized_value: str) -> str:
        return self.namespace + unique_key(prefix, field, normalized_value)

    def source_claim_key(self, prefix: str, source: Mapping[str, str]) -> str:
        return self.namespace + source_claim_key(prefix, source)

    def ref_key(self, target_key: str, source_prefix: str, source_field: str) -> str:
        # target_key is a full (namespaced) document key; its namespace is not repeated.
        local = target_key.removeprefix(self.namespace)
        return self.namespace + ref_key(local, source_prefix, source_field)

    def delete_fence(self, target_key: str) -> str:
        return self.namespace + delete_fence(target_key.removeprefix(self.namespace))

    def lock_key(self, name: str) -> str:
        return self.namespace + lock_key(name)

    def lock_key_of(self, prefix: str, doc_id: str) -> str:
        return self.namespace + lock_key_of(prefix, doc_id)

    def fence_key(self, prefix: str, doc_id: str) -> str:
        return self.namespace + fence_key(prefix, doc_id)

    def oplog_key(self, prefix: str, doc_id: str) -> str:
        return self.namespace + oplog_key(prefix, doc_id)

    def oplog_seq_key(self, prefix: str, doc_id: str) -> str:
        return self.namespace + oplog_seq_key(prefix, doc_id)

    def profile_key(self, prefix: str, doc_id: str) -> str:
        return self.namespace + profile_key(prefix, doc_id)

    def token_key(self, token_hash: str) -> str:
        return self.namespace + token_key(token_hash)

    def user_tokens_key(self, user_id: str) -> str:
        return self.namespace + user_tokens_key(user_id)

    def rate_key(self, user_id: str, route_class: str) -> str:
        return self.namespace + rate_key(user_id, route_class)

    def endpoint_rate_key(self, user_id: str, endpoint: str) -> str:
        return self.namespace + endpoint_rate_key(user_id, endpoint)

    def endpoint_window_key(self, user_id: str, endpoint: str) -> str:
        return self.namespace + endpoint_window_key(user_id, endpoint)

    def endpoint_rate_match(self) -> str:
        return self.namespace + endpoint_rate_match()

    def pause_key(self) -> str:
        return self.namespace + pause_key()

    def changes_key(self) -> str:
        return self.namespace + changes_key()

    def cache_key(self, endpoint: str, params_hash: str, versions: Iterable[str | int]) -> str:
        return self.namespace + cache_key(endpoint, params_hash, versions)

    def cache_prefix(self, endpoint: str) -> str:
        return self.namespace + cache_prefix(endpoint)

    def cache_entries_key(self, endpoint: str) -> str:
        return self.namespace + cache_entries_key(endpoint)

    def collection_version_key(self, prefix: str) -> str:
        return self.namespace + collection_version_key(prefix)

    def probe_key(self) -> str:
        """A key no one writes, read to detect the JSON module (within the ACL's patterns)."""
        return self.reserved + "probe"

    def migrations_key(self) -> str:
        return self.namespace + migrations_key()

    def migration_progress_key(self, version: int) -> str:
        return self.namespace + migration_progress_key(version)

    def migration_progress_match(self) -> str:
        return self.namespace + migration_progress_match()

    def quarantine_key(self, key: str) -> str:
        # key is a full (namespaced) key; its namespace is not repeated.
        return self.namespace + quarantine_key(key.removeprefix(self.namespace))

    def quarantine_match(self) -> str:
        return self.quarantine_key(self.namespace + "*")

    def quarantined_key(self, entry: str) -> str:
        """The original key of a :meth:`quarantine_key` (inverse)."""
        return self.namespace + entry.removeprefix(self.quarantine_key(self.namespace))

    def crypto_key(self) -> str:
        return self.namespace + crypto_key()

    def sealing_progress_key(self, prefix: str) -> str:
        return self.namespace + sealing_progress_key(prefix)

    def index_alias(self, prefix: str) -> str:
        return self.namespace + index_alias(prefix)

    def index_name(self, prefix: str, version: str) -> str:
        return self.namespace + index_name(prefix, version)

    def idempotency_key(self, user_id: str, key_digest: str) -> str:
        return self.namespace + idempotency_key(user_id, key_digest)

    def idempotency_match(self) -> str:
        return self.namespace + idempotency_match()


SEED_NAMES = Names()
"""MultiFrame's names: the seed's exact keys."""


SETTINGS_KEY = RESERVED + "settings"
"""The operating settings singleton of a system without MultiFrame's config:system
(keyspace.settings); a schema's bind puts the system's namespace in front."""
