"""Reading and verifying backup files before ``restore`` writes anything.

Every record is checked twice over: its shape (fields, type tag, expiry) and its value
against the declarations (``keyspace.schema``): a document must validate against its
entity's model under its own id, a singleton against its model, a counter must be an
integer a counter can hold, a claim must name an id, a reference set hold ids, a token
hash carry a user id, role and kind. A file that passes writes without a Redis error (a
document RedisJSON would refuse, e.g. nested past its depth limit, fails its model first),
so a restore never stops half-way for a bad record. The checksum proves the file is what
``backup`` wrote; this proves what it wrote is data this service can hold.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import zlib
from collections.abc import Callable, Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, get_args

import orjson

from keyspace import keys, quarantine
from keyspace.documents import validate
from keyspace.errors import ValidationFailed
from keyspace.inventory import patterns
from keyspace.keys import Names
from keyspace.migrations import parse_applied
from keyspace.schema import EntitySpec, Schema
from keyspace.sealing import validate_stored
from keyspace.system import MEMBER
from keyspace.systems.multiframe.models import Role
from keyspace.tokens import TokenKind

FORMAT, VERSION = "multiframe-backup", 2
READABLE = (1, 2)
FIELDS = {1: {"k", "t", "v"}, 2: {"k", "t", "v", "pxat"}}
Record = dict[str, Any]

DIGEST = re.compile(r"[0-9a-f]{64}")
# MultiFrame's roles, and the one role of the other systems' non-admin users (keyspace.system).
ROLES, KINDS = {*get_args(Role), MEMBER}, {kind.value for kind in TokenKind}


def transient(names: Names) -> str:
    """GCRA state lives at most one rate period and is rewritten by every request: a copy is
    stale before the backup ends, and restoring it would only throttle clients for a window
    long gone."""
    return names.rate_key("*", "*")


def locks(names: Names) -> str:
    """An admin command's lock belongs to a process of the source deployment, which is gone."""
    return names.lock_key("*")


def coordination(schema: Schema) -> list[str]:
    """Document locks and operation logs (keyspace.locks, keyspace.oplog): a lock belongs to a
    client of the source deployment and lives seconds, a log is an hour's catch-up buffer
    whose document is the state of record. Neither is backed up; their counters are, so
    fencing tokens and sequence numbers never go back: after a restore a stale token is
    refused and a client reading on from a number it had is told 410 ``gone``."""
    names = schema.names
    out = [names.lock_key_of(s.lock.key, "*") for s in schema.entities if s.lock is not None]
    return out + [names.oplog_key(s.oplog.key, "*") for s in schema.entities if s.oplog]


def profiles(schema: Schema) -> list[str]:
    """Cached profiles (keyspace.profiles): computed from documents, which are backed up, and
    deleted by the writes that change them; a restore's documents are not what they were
    computed from."""
    names = schema.names
    return [names.profile_key(s.profile.key, "*") for s in schema.entities if s.profile]


def derived(names: Names, key: str) -> bool:
    """Search projections and ranked fields' sets (keyspace.ranks) are derived from the
    documents, like indexes: restore writes them anew."""
    return fnmatchcase(key, names.projection_match("*")) or fnmatchcase(key, names.rank_match())


def ttl_lost_in_v1(names: Names) -> tuple[str, str]:
    """Version 1 dropped every TTL, and these keys are only ever written with one: restored
    without it a delete fence would refuse references to its target for good, so such records
    count as expired."""
    return transient(names), names.delete_fence("*")


class BadBackup(Exception):
    """The file is not a complete, intact backup in a format this version reads, or a
    record holds what the declarations do not allow."""


def never_restored(names: Names, key: str) -> bool:
    """Keys a backup never carries and restore skips if a file has them: search projections
    and ranked fields' sets (restore derives them from the documents), the pause and admin
    commands' locks."""
    return (
        key == names.pause_key()
        or derived(names, key)
        or fnmatchcase(key, locks(names))
        or fnmatchcase(key, names.migration_progress_match())
    )


def cached(names: Names) -> tuple[str, str]:
    """Cached answers and the collection versions they are keyed by (keyspace.cache): a
    restore's data is not what they were computed from, and versions deleted with them start
    again at random values, so no answer from before can be met."""
    return names.cache_prefix("*") + "*", names.collection_version_key("*")


def endpoint_windows(names: Names) -> str:
    """Per-endpoint counts and their windows (``rate_limit:*``): stale for the same reason."""
    return names.endpoint_rate_match()


def momentary(names: Names, key: str) -> bool:
    """Keys a backup leaves out as state of the moment: rate-limit state, locks and cached
    answers, a running migration's resume point (a SCAN cursor means nothing on another
    server; the restored registry says the migration is pending, and it runs again, changing
    only documents not yet converted), and Idempotency-Key claims and outcomes (answers of
    the source deployment's requests: a retry against restored data runs again)."""
    return (
        fnmatchcase(key, transient(names))
        or fnmatchcase(key, names.idempotency_key("*", "*"))
        or fnmatchcase(key, endpoint_windows(names))
        or fnmatchcase(key, locks(names))
        or fnmatchcase(key, names.migration_progress_match())
        or any(fnmatchcase(key, pattern) for pattern in cached(names))
    )


def _json(value: str) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:  # also past orjson's nesting limit
        raise ValueError(f"not JSON ({exc})") from None


def _model(model: Any, doc: Any) -> str | None:
    """None when ``doc`` is valid and in the form the service stores; its stored form when
    valid but spelled otherwise (a file edited by hand, or an older version's data);
    ValueError when invalid. ``model``: a singleton's model, or an entity (whose sealed
    values are checked for their form only: keyspace.sealing)."""
    try:
        stored = (
            validate_stored(model, doc) if isinstance(model, EntitySpec) else validate(model, doc)
        )
    except ValidationFailed as exc:
        raise ValueError(exc.message) from None
    return None if stored == doc else orjson.dumps(stored).decode()


def _ids(values: Any) -> bool:
    return all(keys.is_lookup_id(v) for v in values)


Rule = tuple[str, str, Callable[[str, Any], str | None]]
"""(key pattern, type tag, check of (key, value) raising ValueError with the reason, or
answering the value in stored form when it differs)."""


def _rules(schema: Schema) -> list[Rule]:
    """What each service key may hold, from the declarations (first match applies)."""
    names = schema.names
    out: list[Rule] = []
    for single in schema.singletons:

        def singleton(_key: str, value: str, model: Any = single.model) -> str | None:
            return _model(model, _json(value))

        out.append((single.key, "json", singleton))
    for spec in schema.entities:

        def document(key: str, value: str, spec: Any = spec) -> str | None:
            doc_id = names.id_from_key(spec.prefix, key)
            if not keys.is_lookup_id(doc_id):
                raise ValueError(f"{doc_id!r} is not a document id")
            doc = _json(value)
            stored = _model(spec, doc)
            if stored is not None:
                doc = orjson.loads(stored)
            if doc.get(spec.id_field) != doc_id:
                raise ValueError(f"{spec.id_field} {doc.get(spec.id_field)!r} is not the key's id")
            if spec.derive_id is not None and spec.derive_id(doc) != doc_id:
                raise ValueError(f"{spec.id_field} must be {spec.derive_id(doc)!r} (derived)")
            return stored

        out.append((names.doc_match(spec.prefix), "json", document))
        out.append((names.counter_key(spec.prefix), "string", _counter))
    out += [
        (names.unique_key("*", "*", "*"), "string", _claim),
        (names.ref_key("*", "*", "*"), "set", _members),
        (names.token_key("*"), "hash", lambda k, v: _token(k.removeprefix(names.token_key("")), v)),
        (names.user_tokens_key("*"), "set", _digests),
        (names.migrations_key(), "hash", _registry),
        (names.crypto_key(), "hash", _keyring),
        (names.delete_fence("*"), "string", lambda _k, _v: None),
        (names.fence_key("*", "*"), "string", _counter),  # lock fencing tokens
        (names.oplog_seq_key("*", "*"), "string", _counter),  # operation log numbers
        (transient(names), "string", lambda _k, _v: None),
        (names.quarantine_key("*"), "hash", _quarantined),
    ]
    return out


def _quarantined(_key: str, value: dict[str, str]) -> None:
    if (why := quarantine.problem(value)) is not None:
        raise ValueError(f"a quarantine entry {why}")


def _counter(_key: str, value: str) -> None:
    if not (value == "0" or (value.isascii() and value.isdigit() and value[0] != "0")):
        raise ValueError(f"counter {value[:40]!r} is not a non-negative integer")
    if len(value) > 16 or int(value) > keys.MAX_COUNTER:
        raise ValueError(f"counter {value[:40]} is past {keys.MAX_COUNTER} (2^53 - 1)")


def _claim(_key: str, value: str) -> None:
    if not keys.is_lookup_id(value):
        raise ValueError(f"claim holder {value[:40]!r} is not a document id")


def _members(_key: str, value: list[str]) -> None:
    if not _ids(value):
        raise ValueError("a reference set member is not a document id")


def _keyring(_key: str, value: dict[str, str]) -> None:
    """The keyring (keyspace.keyring): its fields' names only; its entries are checked by the
    key that opens them when the service starts on the restored data."""
    allowed = ("version", "current", "plaintext", "rotating_since")
    prefixes = ("check:", "next:", "prev:", "retired:")
    if "current" not in value or any(
        f not in allowed and not f.startswith(prefixes) for f in value
    ):
        raise ValueError("not a keyring: fields current, check:<key id>, ...")


def _registry(_key: str, value: dict[str, str]) -> None:
    for version, entry in value.items():
        parse_applied(version, entry)  # ValueError naming what is wrong


def _digests(_key: str, value: list[str]) -> None:
    if not all(DIGEST.fullmatch(v) for v in value):
        raise ValueError("a token set member is not a SHA-256 hex digest")


def _token(digest: str, value: dict[str, str]) -> None:
    if not DIGEST.fullmatch(digest):
        raise ValueError("a token key must end in a SHA-256 hex digest")
    if not set(value) <= {"user_id", "role", "kind"} or not keys.is_lookup_id(
        value.get("user_id", "")
    ):
        raise ValueError("a token must hold user_id (an id), role and kind, nothing else")
    if value.get("role") not in ROLES or value.get("kind", "session") not in KINDS:
        raise ValueError(f"a token's role must be one of {sorted(ROLES)}, kind one of {KINDS}")


class Verifier:
    """Checks records of one file against one schema (:meth:`check`)."""

    def __init__(self, schema: Schema, version: int) -> None:
        self.service, self.rules, self.version = patterns(schema), _rules(schema), version
        self.names = schema.names

    def check(self, record: Any, number: int) -> Record:
        """A well-formed record of a service key holding what its declaration allows, else
        BadBackup naming the line and key. Version 1 records of keys that always have a TTL
        come back as already expired (``pxat`` 0)."""
        fields = FIELDS[self.version]
        if not isinstance(record, dict) or not {"k", "t", "v"} <= set(record) <= fields:
            extra = " (and may have pxat)" if "pxat" in fields else ""
            raise BadBackup(f"line {number}: a record must have the fields k, t, v{extra}")
        key, kind, value = record["k"], record["t"], record["v"]
        if not isinstance(key, str) or not any(fnmatchcase(key, p) for p in self.service):
            raise BadBackup(f"line {number}: record key {key!r} is not a service key")
        if not self._shape(kind, value) or not _expiry(record):
            raise BadBackup(f"line {number}: record {key!r} has a bad type, value or expiry")
        if not never_restored(self.names, key) and (
            stored := self._declared(number, key, kind, value)
        ):
            # Restored as the service stores it: the raw spelling (e.g. a timestamp with
            # "+00:00") would break cursors and disagree with what a write of it makes.
            record["v"], record["normalized"] = stored, True
        if self.version == 1 and any(fnmatchcase(key, p) for p in ttl_lost_in_v1(self.names)):
            record["pxat"] = 0
        return record

    def _shape(self, kind: Any, value: Any) -> bool:
        if kind == "set":
            return (
                isinstance(value, list) and bool(value) and all(isinstance(m, str) for m in value)
            )
        if kind == "hash" and self.version >= 2:
            return (
                isinstance(value, dict)
                and bool(value)
                and all(isinstance(m, str) for m in value.values())
            )
        return kind in ("json", "string") and isinstance(value, str)

    def _declared(self, number: int, key: str, kind: str, value: Any) -> str | None:
        rule = next((r for r in self.rules if fnmatchcase(key, r[0])), None)
        if rule is None:
            raise BadBackup(f"line {number}: {key!r} is no key the service declares")
        if kind != rule[1]:
            raise BadBackup(f"line {number}: {key!r} must be a {rule[1]}, not a {kind}")
        try:
            return rule[2](key, value)
        except ValueError as exc:
            raise BadBackup(f"line {number}: {key!r}: {exc}") from None


def _expiry(record: Record) -> bool:
    return "pxat" not in record or (type(record["pxat"]) is int and record["pxat"] > 0)


def records(path: Path, schema: Schema) -> Iterator[tuple[Record, int]]:
    """Verified records of ``path`` and their sizes; BadBackup at the end on a bad trailer."""
    sha, count, trailer = hashlib.sha256(), 0, None
    verifier = Verifier(schema, VERSION)
    try:
        with gzip.open(path, "rb") as lines:
            for number, line in enumerate(lines, 1):
                if trailer is not None:
                    raise BadBackup(f"line {number}: data after the trailer")
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError:
                    raise BadBackup(f"line {number} is not JSON (damaged file?)") from None
                if number == 1:
                    verifier = Verifier(schema, version(obj))
                elif isinstance(obj, dict) and "sha256" in obj and "k" not in obj:
                    trailer = obj
                    continue
                else:
                    count += 1
                    yield verifier.check(obj, number), len(line)
                sha.update(line)
    except (OSError, EOFError, zlib.error) as exc:
        raise BadBackup(f"cannot read {path}: {exc}") from None
    if trailer is None:
        raise BadBackup("no trailer: the file is truncated")
    if trailer.get("records") != count:
        raise BadBackup(f"trailer says {trailer.get('records')} records, file has {count}")
    if trailer.get("sha256") != sha.hexdigest():
        raise BadBackup("checksum mismatch: the file is damaged or was modified")


def version(head: Any) -> int:
    """The format version of a header line this code reads, else BadBackup."""
    head = head if isinstance(head, dict) else {}
    found = head.get("version")
    if head.get("format") != FORMAT or type(found) is not int:
        raise BadBackup(f"not a {FORMAT} file")
    if found not in READABLE:
        raise BadBackup(f"version {found} is not one this multiframe-admin reads {READABLE}")
    return found


class TokenLedger:
    """Tokens of one file against its users, for after the last record: every token must act
    as a user the file holds, with that user's role. Each record can be valid alone while a
    token names a role its user lacks: restored, it would be a key nobody issued."""

    def __init__(self, schema: Schema, operator: str) -> None:
        self.names, self.users = schema.names, schema.users
        self.operator = operator  # its tokens are left out without its user (restore.py)
        self.roles: dict[str, str] = {}
        self.tokens: list[tuple[str, str, str]] = []  # key, user id, role

    def add(self, record: Record) -> None:
        """Note ``record`` if it is a user or a token."""
        key, kind, value = record["k"], record["t"], record["v"]
        users, names = self.users, self.names
        if kind == "json" and fnmatchcase(key, names.doc_match(users.prefix)):
            doc = orjson.loads(value)
            assert users.satellites is not None
            self.roles[str(doc[users.id_field])] = str(users.satellites.derive(doc).get("role"))
        elif kind == "hash" and fnmatchcase(key, names.token_key("*")):
            self.tokens.append((key, value.get("user_id", ""), value.get("role", "")))

    def check(self) -> None:
        """BadBackup naming the first token that disagrees with its user."""
        for key, user_id, role in self.tokens:
            if user_id == self.operator and user_id not in self.roles:
                continue
            if user_id not in self.roles:
                raise BadBackup(f"{key!r} acts as {user_id!r}, a user the file does not hold")
            if role != self.roles[user_id]:
                has = self.roles[user_id]
                raise BadBackup(f"{key!r} has role {role!r}, but its user {user_id!r} is {has!r}")
