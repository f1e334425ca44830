"""Field encryption, pure: keys, the sealed string format, blind indexes and key wrapping.

A sensitive value is stored as one string (docs/encryption.md)::

    enc:v1:<key id>:<blind token>:<base64url(nonce | ciphertext | tag)>

sealed with AES-256-GCM under the key named by ``<key id>`` (8 hex digits, a keyed hash
of the key, never the key). The associated data binds the entity, the document id, the
field and the blind token, so a ciphertext moved to another document or field, or given
another blind token, does not open. The blind token (``enc:<32 hex digits>``) is an
HMAC-SHA256 of the field's normalized value under the keyspace's blind-index key: equal
values have equal tokens, so claims and equality filters compare tokens, never plaintext.
The blind-index key is random, made once per keyspace and stored only wrapped (AES-GCM)
under each data key (keyspace.keyring), so it survives key rotation unchanged.

Nothing here does I/O; keyspace.keyring reads and writes the keyring, keyspace.sealing
applies this to documents.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "enc:v1:"
TOKEN_PREFIX = "enc:"
"""What every sealed value, and every blind token, starts with. Only the full forms are
reserved (:func:`reserved`): a plaintext such as ``enc:x@example.com`` is an ordinary value."""
KEY_BYTES = 32
NONCE_BYTES = 12
BLIND_HEX = 32  # 128 bits of HMAC-SHA256
_KID = re.compile(r"[0-9a-f]{8}")
_BLIND = re.compile(f"[0-9a-f]{{{BLIND_HEX}}}")
_BODY = re.compile(r"[A-Za-z0-9_\-]+")
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")


class BadKey(ValueError):
    """A configured key that is not 32 bytes in hex or base64."""


class Undecryptable(Exception):
    """A sealed value or wrapped secret that does not open: another key, or tampered with."""


def parse_key(text: str) -> bytes:
    """A 256-bit key from its text: 64 hex digits, or base64 (standard or URL-safe) of 32
    bytes; surrounding whitespace (a key file's final newline) is ignored."""
    raw = text.strip()
    if _HEX_KEY.fullmatch(raw):
        return bytes.fromhex(raw)
    try:
        key = base64.b64decode(raw.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise BadKey(
            "an encryption key is 32 random bytes as 64 hex digits or base64 "
            "(e.g. `openssl rand -base64 32`)"
        )
    return key


def key_id(key: bytes) -> str:
    """The key's public name in sealed values and the keyring: 8 hex digits of an HMAC."""
    return hmac.new(key, b"multiframe key id", hashlib.sha256).hexdigest()[:8]


def new_secret() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


@dataclass(frozen=True)
class Sealed:
    """The parts of a sealed value."""

    kid: str
    token: str  # the blind token, ``enc:<hex>``
    body: str


def parse_sealed(value: object) -> Sealed | None:
    """The parts of ``value`` when it is a well-formed sealed string, else None."""
    if not isinstance(value, str) or not value.startswith(PREFIX):
        return None
    parts = value[len(PREFIX) :].split(":")
    if len(parts) != 3:
        return None
    kid, blind, body = parts
    if not (_KID.fullmatch(kid) and _BLIND.fullmatch(blind) and _BODY.fullmatch(body)):
        return None
    return Sealed(kid, TOKEN_PREFIX + blind, body)


def sealed_bytes_kid(value: str) -> str | None:
    """The key id of a well-formed :meth:`Cipher.seal_bytes` string, else None."""
    kid, _, body = value.partition(":")
    return kid if _KID.fullmatch(kid) and _BODY.fullmatch(body) else None


def reserved(value: object) -> bool:
    """True for a string a stored plaintext could be mistaken for: a well-formed sealed value
    or a bare blind token. Any other string, ``enc:`` prefix or not, is plaintext."""
    if not isinstance(value, str) or not value.startswith(TOKEN_PREFIX):
        return False
    bare = value[len(TOKEN_PREFIX) :]
    return parse_sealed(value) is not None or _BLIND.fullmatch(bare) is not None


def blind_token(blind_key: bytes, label: str, normalized: str) -> str:
    """The blind token of a normalized value of the field ``label`` (``<entity>.<field>``):
    the label keeps equal values of different fields apart."""
    message = label.encode() + b"\x00" + normalized.encode()
    return TOKEN_PREFIX + hmac.new(blind_key, message, hashlib.sha256).hexdigest()[:BLIND_HEX]


def field_aad(entity: str, doc_id: str, field: str, token: str) -> bytes:
    """What a sealed value is bound to: its entity, document, field and blind token."""
    return "\x00".join(("mf-field-v1", entity, doc_id, field, token)).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise Undecryptable("not base64") from None


def _encrypt(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)  # random 96-bit nonces: AES-GCM's own rule
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _decrypt(key: bytes, blob: bytes, aad: bytes) -> bytes:
    if len(blob) < NONCE_BYTES + 16:
        raise Undecryptable("too short")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except InvalidTag:
        raise Undecryptable("the authentication tag does not match") from None


def wrap(key: bytes, secret: bytes, aad: bytes) -> str:
    """``secret`` encrypted under ``key`` (a keyring entry), base64url."""
    return _b64(_encrypt(key, secret, aad))


def unwrap(key: bytes, wrapped: str, aad: bytes) -> bytes:
    """The secret :func:`wrap` sealed; Undecryptable under another key or aad."""
    return _decrypt(key, _unb64(wrapped), aad)


class Cipher:
    """The data keys a process holds (key id -> key), the one new values are sealed under
    (``current``) and the keyspace's blind-index key."""

    def __init__(self, keys: Mapping[str, bytes], current: str, blind_key: bytes) -> None:
        assert current in keys, "the current key must be held"
        self.keys = dict(keys)
        self.current = current
        self.blind_key = blind_key

    def token(self, label: str, normalized: str) -> str:
        return blind_token(self.blind_key, label, normalized)

    def seal(self, plaintext: str, token: str, aad: bytes) -> str:
        """``plaintext`` sealed under the current key, carrying ``token``."""
        body = _b64(_encrypt(self.keys[self.current], plaintext.encode(), aad))
        return f"{PREFIX}{self.current}:{token.removeprefix(TOKEN_PREFIX)}:{body}"

    def seal_bytes(self, data: bytes, aad: bytes) -> str:
        """``data`` (a whole record: a quarantine entry's) sealed under the current key, as
        ``<key id>:<base64url(nonce | ciphertext | tag)>``."""
        return f"{self.current}:{wrap(self.keys[self.current], data, aad)}"

    def open_bytes(self, sealed: str, aad: bytes) -> bytes:
        """What :meth:`seal_bytes` sealed; KeyError for a key id not held, Undecryptable when
        it does not open."""
        kid, _, body = sealed.partition(":")
        return unwrap(self.keys[kid], body, aad)

    def open(self, sealed: Sealed, aad: bytes) -> str:
        """The plaintext of ``sealed``; KeyError for a key id not held, Undecryptable when
        it does not open (another document's value, or tampered with)."""
        key = self.keys[sealed.kid]
        try:
            return _decrypt(key, _unb64(sealed.body), aad).decode()
        except UnicodeDecodeError:
            raise Undecryptable("not UTF-8") from None
