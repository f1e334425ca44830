"""Server-generated document ids: Prisma-style cuids and UUIDs, and the patterns a
client-chosen id of each strategy must match.

Ids are also key names and are compared as stored, so each strategy has one spelling:
a client-chosen id must already be in it. An upper-case UUID is refused rather than
lower-cased, because a lookup by the other spelling would then need the same rewrite
everywhere an id arrives (paths, references, cursors); the 400 names the pattern.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Mapping

from .keys import ID_PATTERN
from .schema import IdStrategy

CUID_PATTERN = r"^c[0-9a-z]{24}$"
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

ID_PATTERNS: Mapping[IdStrategy, str] = {
    IdStrategy.COUNTER: ID_PATTERN,
    IdStrategy.DERIVED: ID_PATTERN,
    IdStrategy.CUID: CUID_PATTERN,
    IdStrategy.UUID: UUID_PATTERN,
}

_BASE = 36
_BLOCK = 4  # cuid v1: every part but the timestamp is 4 base-36 digits
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_SPAN: int = _BASE**_BLOCK


def id_pattern(strategy: IdStrategy) -> str:
    """The regex an id of ``strategy`` must match (generated or chosen by a client)."""
    return ID_PATTERNS[strategy]


def _base36(number: int) -> str:
    out = ""
    while True:
        number, digit = divmod(number, _BASE)
        out = _DIGITS[digit] + out
        if number == 0:
            return out


def _block(number: int, size: int = _BLOCK) -> str:
    """``number`` in base 36, the last ``size`` digits, zero-padded."""
    return _base36(number % _BASE**size).rjust(size, "0")


_HOST = socket.gethostname()
_HOST_BLOCK = _block(sum(ord(ch) for ch in _HOST) + len(_HOST) + _BASE, 2)


def _fingerprint() -> str:
    # As cuid v1: two digits from the process id (read per call: a fork changes it), two
    # from the host name.
    return _block(os.getpid(), 2) + _HOST_BLOCK


_counter = secrets.randbelow(_SPAN)
_lock = threading.Lock()


def _next_count() -> int:
    global _counter
    with _lock:
        _counter = (_counter + 1) % _SPAN
        return _counter


def new_cuid() -> str:
    """A cuid v1 (``c`` + 8 digits of milliseconds + counter + fingerprint + 8 random
    digits, 25 lower-case base-36 characters), as Prisma's ``cuid()`` makes them."""
    millis = _block(time.time_ns() // 1_000_000, 8)
    random = _block(secrets.randbelow(_SPAN)) + _block(secrets.randbelow(_SPAN))
    return "c" + millis + _block(_next_count()) + _fingerprint() + random


def new_id(strategy: IdStrategy) -> str:
    """A fresh id of a service-generated strategy (CUID or UUID)."""
    if strategy is IdStrategy.CUID:
        return new_cuid()
    if strategy is IdStrategy.UUID:
        return str(uuid.uuid4())
    raise ValueError(f"{strategy.name} ids are not generated here")
