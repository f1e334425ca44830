"""Sensitive fields in documents: sealing before a write, opening after a read (pure).

A :class:`Sealer` holds the process's :class:`~keyspace.crypto.Cipher` and applies it to the
fields an entity declares sensitive (:class:`~keyspace.schema.Sensitive`). The store seals
every document it writes and opens every document it returns (keyspace.store,
keyspace.engine); everything between (plans, claims, projections, the scan path's filters)
works on the stored form, which carries each value's blind token, so none of it needs a key.

While a keyspace still holds plaintext values (``plaintext_left``: the keyring says a
conversion, ``multiframe-admin encrypt``, has not completed), a value's plaintext claim key is
guarded as well as its token's, and an equality filter asks for both forms, so uniqueness and
filters stay right across the conversion (docs/encryption.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, create_model

from .crypto import Cipher, Sealed, Undecryptable, field_aad, parse_sealed, reserved
from .documents import validate
from .errors import Unreadable, ValidationFailed
from .keys import Names
from .plan import Plan
from .query import Query
from .schema import EntitySpec, Indexed, Sensitive


def _label(spec: EntitySpec, entry: Sensitive) -> str:
    return f"{spec.prefix}.{entry.field}"


@dataclass
class Sealer:
    """Seals and opens the sensitive fields of documents with ``cipher``."""

    cipher: Cipher
    plaintext_left: bool = False
    # The keyring key (keys.Names.crypto_key): every commit of a sealed value checks that
    # its ``current`` still names the key it was sealed under, so no write lands under a key
    # a rotation has retired (keyspace.keyring).
    keyring_key: str = ""
    # The keyring's ``check:<current>`` as read: it wraps the blind-index key, so a commit
    # checking it is refused when the keyring was made again around another blind-index key
    # (a restore, a flush) and this process has not read it yet ("": not checked).
    keyring_check: str = ""

    def token(self, spec: EntitySpec, entry: Sensitive, plaintext: str) -> str:
        return self.cipher.token(_label(spec, entry), entry.normalize(plaintext))

    def seal(
        self,
        spec: EntitySpec,
        doc_id: str,
        doc: Mapping[str, Any],
        old: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``doc`` (validated plaintext) with every sensitive value sealed; a value equal to
        the one ``old`` (the stored form it replaces) holds under the current key is kept as
        stored. Every plaintext is sealed, whatever it looks like: a sealed value is never
        ambiguous (what a client may write is :func:`refuse_reserved`'s)."""
        out = dict(doc)
        for entry in spec.sensitive:
            value = doc.get(entry.field)
            if not isinstance(value, str):
                continue
            kept = self._kept(spec, doc_id, entry, value, old)
            if kept is not None:
                out[entry.field] = kept
                continue
            token = self.token(spec, entry, value)
            aad = field_aad(spec.prefix, doc_id, entry.field, token)
            out[entry.field] = self.cipher.seal(value, token, aad)
        return out

    def _kept(
        self,
        spec: EntitySpec,
        doc_id: str,
        entry: Sensitive,
        value: str,
        old: Mapping[str, Any] | None,
    ) -> str | None:
        stored = old.get(entry.field) if old is not None else None
        sealed = parse_sealed(stored)
        if sealed is None or sealed.kid != self.cipher.current:
            return None
        try:
            same = self._open(spec, doc_id, entry, sealed) == value
        except Unreadable:
            return None
        return stored if same else None

    def _open(self, spec: EntitySpec, doc_id: str, entry: Sensitive, sealed: Sealed) -> str:
        aad = field_aad(spec.prefix, doc_id, entry.field, sealed.token)
        try:
            return self.cipher.open(sealed, aad)
        except KeyError:
            raise Unreadable(
                f"{spec.name} {doc_id} {entry.field} is sealed under key id {sealed.kid}, "
                "which this process does not hold"
            ) from None
        except Undecryptable:
            raise Unreadable(
                f"{spec.name} {doc_id} {entry.field} does not open: not this document's "
                "value, or changed outside the service"
            ) from None

    def open(self, spec: EntitySpec, doc_id: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        """``doc`` (stored form) with every sealed value replaced by its plaintext;
        Unreadable when one does not open."""
        out = dict(doc)
        for entry in spec.sensitive:
            sealed = parse_sealed(doc.get(entry.field))
            if sealed is not None:
                out[entry.field] = self._open(spec, doc_id, entry, sealed)
        return out

    def stale(self, spec: EntitySpec, doc: Mapping[str, Any]) -> bool:
        """True when a sensitive value of ``doc`` (stored form) is plaintext or sealed under
        another key than the current one: what ``encrypt`` and ``rotate-key`` rewrite."""
        for entry in spec.sensitive:
            value = doc.get(entry.field)
            if not isinstance(value, str):
                continue
            sealed = parse_sealed(value)
            if sealed is None or sealed.kid != self.cipher.current:
                return True
        return False

    def fence(
        self,
        names: Names,
        plan: Plan,
        spec: EntitySpec,
        doc_id: str,
        plain: Mapping[str, Any],
    ) -> None:
        """Add to ``plan`` (writing ``plain`` sealed under ``doc_id``) the checks that keep it
        right during a rotation or a conversion: the keyring still names the current key,
        and, while plaintext is left, no other document claims the plaintext form."""
        if not spec.sensitive:
            return
        plan.check("hequals", self.keyring_key, "current", self.cipher.current)
        if self.keyring_check:
            plan.check(
                "hequals", self.keyring_key, f"check:{self.cipher.current}", self.keyring_check
            )
        if not self.plaintext_left:
            # A keyring made again over restored plaintext says 1 again: a process that has
            # not read it yet must not skip the plaintext claims below (refused ``rekeyed``).
            plan.check("hequals", self.keyring_key, "plaintext", "0")
            return
        for unique in spec.uniques:
            value = plain.get(unique.field)
            if spec.sensitive_field(unique.field) is None or not isinstance(value, str):
                continue
            claim = names.unique_key(spec.prefix, unique.field, unique.normalize(value))
            plan.check("free", claim, doc_id, unique.field)

    def query(self, spec: EntitySpec, query: Query) -> Query:
        """``query`` with each equality value of a sensitive field replaced by its blind
        token (and kept as well while plaintext is left)."""
        if not any(field.sensitive for field, _ in query.equals):
            return query
        equals: list[tuple[Indexed, tuple[str | float, ...]]] = []
        for field, values in query.equals:
            entry = spec.sensitive_field(field.path) if field.sensitive else None
            if entry is None:
                equals.append((field, values))
                continue
            tokens = [self.cipher.token(_label(spec, entry), str(v)) for v in values]
            kept = [str(v) for v in values] if self.plaintext_left else []
            equals.append((field, tuple(dict.fromkeys([*tokens, *kept]))))
        return Query(**{**query.__dict__, "equals": tuple(equals)})


_STORED_MODELS: dict[int, type[BaseModel]] = {}


def _stored_model(spec: EntitySpec) -> type[BaseModel]:
    """``spec``'s model with its sensitive fields as plain strings: what a stored document
    with sealed values is checked against without a key (a restore's verification, a
    migration's batch)."""
    found = _STORED_MODELS.get(id(spec.model))
    if found is None:
        declared = spec.model.model_fields
        loosened: dict[str, Any] = {}
        for entry in spec.sensitive:
            required = declared[entry.field].is_required()
            loosened[entry.field] = (str, ...) if required else (str | None, None)
        found = create_model(f"{spec.model.__name__}Stored", __base__=spec.model, **loosened)
        _STORED_MODELS[id(spec.model)] = found
    return found


def refuse_reserved(
    spec: EntitySpec, doc: Mapping[str, Any], old: Mapping[str, Any] | None = None
) -> None:
    """ValidationFailed when a client writes a sensitive value a stored plaintext could be
    mistaken for (:func:`keyspace.crypto.reserved`: a well-formed sealed value or a bare blind
    token), with or without a key, so what a client may write never depends on encryption.
    A value ``old`` (the stored form) already holds as it is passes: an update of another
    field never fails on a value stored before this rule (``encrypt`` seals or reports it)."""
    for entry in spec.sensitive:
        value = doc.get(entry.field)
        if not reserved(value) or (old is not None and old.get(entry.field) == value):
            continue
        message = "must not have the form of an encrypted value (enc:v1:<key id>:<token>:<data>)"
        raise ValidationFailed(
            f"{entry.field}: {message}", details=[{"field": entry.field, "message": message}]
        )


def validate_stored(spec: EntitySpec, doc: Any) -> dict[str, Any]:
    """:func:`keyspace.documents.validate` of a document in stored form: a sealed value
    (the full form only) is checked by its form (no key needed), everything else as declared;
    a plaintext that merely starts with ``enc:`` is plaintext. ValidationFailed otherwise."""
    sealed = isinstance(doc, Mapping) and any(
        parse_sealed(doc.get(entry.field)) is not None for entry in spec.sensitive
    )
    return validate(_stored_model(spec) if sealed else spec.model, doc)
