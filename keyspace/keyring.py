"""The keyring of an encrypted keyspace (``mf:crypto``) and the keys a process holds.

The keyring is a hash that holds no key in clear (docs/encryption.md):

- ``current``: the key id every new sealed value uses (commits check it: ``hequals``);
- ``check:<kid>``: the blind-index key wrapped (AES-GCM) under the data key ``kid``: whoever
  holds that key unwraps it, and a wrong key fails its tag, so it is also the key check;
- ``next:<old>`` / ``prev:<new>``: during a rotation, the new key wrapped under the old and the
  old under the new (``<kid>:<wrapped>``), so a process holding either reads both;
- ``retired:<kid>``: when a rotation retired that key (its ``check:`` and ``prev:`` entries are
  gone; its ``next:`` entry stays, so a running process that missed the rotation still
  learns the new key, until ``rotate-key --forget-retired`` or the next rotation drops it);
- ``plaintext``: ``1`` while documents may still hold plaintext (``encrypt`` not complete).

:func:`unlock` is pure: from the hash and the keys a process holds to its
:class:`~keyspace.sealing.Sealer`, or a :class:`KeyringError` that says what to configure.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from redis.asyncio import Redis

from . import crypto, inventory
from .crypto import BadKey, Cipher, Undecryptable
from .errors import KeyspaceError, Paused
from .keys import Names
from .plan import Plan
from .schema import Schema
from .scripts import Scripts
from .sealing import Sealer

ENV_KEY = "MULTIFRAME_ENCRYPTION_KEY"
ENV_KEY_FILE = "MULTIFRAME_ENCRYPTION_KEY_FILE"
log = logging.getLogger("multiframe.keyring")
REFRESH_S = 2.0
"""How often a service re-reads the keyring (a rotation's new key, the end of a conversion);
``rotate-key`` waits several times this before it retires the old key."""


class KeyringError(Exception):
    """The configured key cannot serve this keyspace (missing, wrong, retired, malformed);
    the message says what to configure. Raised before anything is written."""


class KeyRetired(KeyringError, KeyspaceError):
    """A running process can no longer seal or open: the keyring no longer serves the keys
    it holds (its key was retired and the route to the new one forgotten, or the keyring was
    replaced). The service answers 503 with this code and /ready is 503 until it is
    restarted with the key the message names."""

    code = "encryption_key_retired"


def configured(env: Mapping[str, str] | None = None) -> bytes | None:
    """The key of ``MULTIFRAME_ENCRYPTION_KEY`` or the file ``MULTIFRAME_ENCRYPTION_KEY_FILE``
    names (not both); None when neither is set."""
    env = os.environ if env is None else env
    text, path = env.get(ENV_KEY, ""), env.get(ENV_KEY_FILE, "")
    if text and path:
        raise KeyringError(f"set {ENV_KEY} or {ENV_KEY_FILE}, not both")
    source = ENV_KEY
    if path:
        source = f"{ENV_KEY_FILE} ({path})"
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise KeyringError(f"{source}: cannot read the key file: {exc.strerror}") from None
    if not text:
        return None
    try:
        return crypto.parse_key(text)
    except BadKey as exc:
        raise KeyringError(f"{source}: {exc}") from None


def _aad(kind: str, *kids: str) -> bytes:
    return "\x00".join(("mf-keyring-v1", kind, *kids)).encode()


def check_entry(key: bytes, blind_key: bytes) -> tuple[str, str]:
    kid = crypto.key_id(key)
    return f"check:{kid}", crypto.wrap(key, blind_key, _aad("check", kid))


def link_entries(old: bytes, new: bytes) -> dict[str, str]:
    """The ``next:`` and ``prev:`` entries that let holders of either key learn the other."""
    a, b = crypto.key_id(old), crypto.key_id(new)
    return {
        f"next:{a}": f"{b}:{crypto.wrap(old, new, _aad('next', a, b))}",
        f"prev:{b}": f"{a}:{crypto.wrap(new, old, _aad('prev', b, a))}",
    }


def _learn(fields: Mapping[str, str], held: dict[str, bytes]) -> None:
    """Add to ``held`` every key a ``next:``/``prev:`` entry wraps under a key held."""
    learned = True
    while learned:
        learned = False
        for name, value in fields.items():
            kind, _, src = name.partition(":")
            dst, _, wrapped = value.partition(":")
            if kind not in ("next", "prev") or src not in held or dst in held:
                continue
            try:
                key = crypto.unwrap(held[src], wrapped, _aad(kind, src, dst))
            except Undecryptable:
                raise KeyringError(f"the keyring entry {name} does not open") from None
            if crypto.key_id(key) == dst:
                held[dst] = key
                learned = True


def unlock(
    fields: Mapping[str, str],
    keys: Mapping[str, bytes],
    keyring_key: str,
    *,
    starting: bool = False,
) -> Sealer:
    """The sealer of a keyspace whose keyring holds ``fields``, for a process holding
    ``keys`` (key id -> key; the configured one, and any learned before). ``starting``: a
    process starting with a retired key is refused even while the keyring still links it to
    the new one; a running one follows that link (a service paused through a rotation)."""
    current = fields.get("current", "")
    known = sorted(n.partition(":")[2] for n in fields if n.startswith("check:"))
    if not keys:
        raise KeyringError(
            f"this keyspace stores its sensitive fields encrypted (key id {current}): set "
            f"{ENV_KEY} or {ENV_KEY_FILE} to its key; nothing was written"
        )
    # The current key is never refused: a keyring that retired it once and was rotated back
    # to it (before rotations cleared that entry) still starts with it.
    retired = sorted(k for k in keys if f"retired:{k}" in fields and k != current)
    if starting and retired and len(retired) == len(keys):
        raise KeyringError(
            f"the configured key (key id {', '.join(retired)}) was retired by a rotation to "
            f"key id {current}: configure that key; nothing was written"
        )
    held = dict(keys)
    _learn(fields, held)
    blind: bytes | None = None
    for kid, key in held.items():
        wrapped = fields.get(f"check:{kid}")
        if wrapped is None:
            continue
        try:
            blind = crypto.unwrap(key, wrapped, _aad("check", kid))
        except Undecryptable:
            raise KeyringError(f"key id {kid} does not open this keyspace's keyring") from None
        break
    if blind is None:
        mine = ", ".join(sorted(keys))
        retired = [k for k in keys if f"retired:{k}" in fields]
        if retired:
            raise KeyringError(
                f"the configured key (key id {mine}) was retired by a rotation to key id "
                f"{current}: configure that key; nothing was written"
            )
        raise KeyringError(
            f"the configured key (key id {mine}) is not this keyspace's: its sensitive fields "
            f"are encrypted under key id {', '.join(known) or current}; nothing was written"
        )
    if current not in held:
        raise KeyringError(
            f"this keyspace was re-keyed to key id {current}: configure that key "
            f"({ENV_KEY}); nothing was written"
        )
    cipher = Cipher(held, current, blind)
    return Sealer(
        cipher,
        plaintext_left=fields.get("plaintext") == "1",
        keyring_key=keyring_key,
        keyring_check=fields.get(f"check:{current}", ""),
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def read(client: Redis, names: Names) -> dict[str, str]:
    raw = await client.hgetall(names.crypto_key())
    return {_text(k): _text(v) for k, v in raw.items()}


def plan_create(
    names: Names, key: bytes, *, plaintext: bool, blind_key: bytes | None = None
) -> Plan:
    """The commit creating a keyring for ``key`` (refused when one exists: ``absent``),
    around ``blind_key`` (None: a new one)."""
    plan = Plan(names.pause_key())
    keyring = names.crypto_key()
    plan.check("absent", keyring)
    check, wrapped = check_entry(key, crypto.new_secret() if blind_key is None else blind_key)
    fields = {
        "version": "1",
        "current": crypto.key_id(key),
        check: wrapped,
        "plaintext": "1" if plaintext else "0",
    }
    for name, value in fields.items():
        plan.write("hset", keyring, name, value)
    return plan


async def holds_sensitive(client: Redis, schema: Schema) -> bool:
    """Whether any document of an entity with sensitive fields exists (its keys, no index)."""
    for spec in schema.entities:
        if spec.sensitive and await inventory.any_document(client, spec):
            return True
    return False


class Keys:
    """The keys one :class:`~keyspace.engine.Keyspace` holds and its current sealer (None:
    encryption off). Shared by its document stores; refreshed from the keyring when a commit
    finds it re-keyed or a value names a key not held yet."""

    def __init__(self, scripts: Scripts, schema: Schema) -> None:
        self.scripts = scripts
        self.client = scripts.client
        self.schema = schema
        self.sealer: Sealer | None = None
        self.held: dict[str, bytes] = {}
        self.locked = False  # a keyring exists and no key is configured (refused at start)
        # Why a running process can no longer seal or open ("" while it can): /ready says so.
        self.stranded = ""

    async def unlock(self, key: bytes | None, *, create: bool = True) -> Sealer | None:
        """Read the keyring and become able to seal and open with ``key`` (None: none
        configured). With ``create``, a key and no keyring make one (the first encrypted
        start; every process that writes passes it, so none writes plaintext beside an
        encrypted one). KeyringError when ``key`` cannot serve the keyspace; nothing is
        written then."""
        names = self.schema.names
        fields = await read(self.client, names)
        if not fields and key is not None and create:
            plaintext = await holds_sensitive(self.client, self.schema)
            await self.scripts.commit(plan_create(names, key, plaintext=plaintext))
            fields = await read(self.client, names)  # created here, or by a racing process
        if not fields:  # encryption off (or, without ``create``, nothing sealed to open yet)
            self.sealer, self.held = None, {}
            return None
        self.held = {} if key is None else {crypto.key_id(key): key}
        self.sealer = unlock(fields, self.held, names.crypto_key(), starting=True)
        self.held = dict(self.sealer.cipher.keys)
        self.stranded = ""
        return self.sealer

    async def refresh(self) -> None:
        """Read the keyring again (a rotation's keys, the end of a conversion). KeyRetired
        when it no longer serves the keys held (:attr:`stranded` says why until it does).
        A keyring gone from under a process that holds a key (a ``restore --replace`` of a
        backup taken before encryption, a flush) is made again, as a start would."""
        if not self.held:
            return
        fields = await read(self.client, self.schema.names)
        if not fields:
            fields = await self._remake()
            if not fields:
                return  # paused (being rewritten), or stranded: a later read decides
        try:
            self.sealer = unlock(fields, self.held, self.schema.names.crypto_key())
        except KeyringError as exc:
            self.stranded = f"{exc}; restart this service with that key"
            raise KeyRetired(self.stranded) from None
        self.held = dict(self.sealer.cipher.keys)
        self.stranded = ""

    async def _remake(self) -> dict[str, str]:
        """The keyring made again under the current key and the blind-index key this process
        holds: every process that held the old keyring keeps sealing the same blind tokens,
        whichever of them makes it. ``plaintext`` as at a start: 1 when documents of a
        sensitive entity exist (a restored backup's, in clear). {} while paused."""
        if self.sealer is None or self.stranded:
            return {}  # a process the keyring no longer served must not impose its key
        names, cipher = self.schema.names, self.sealer.cipher
        plaintext = await holds_sensitive(self.client, self.schema)
        plan = plan_create(
            names, cipher.keys[cipher.current], plaintext=plaintext, blind_key=cipher.blind_key
        )
        try:
            made = (await self.scripts.commit(plan)).ok  # refused: another process made it
        except Paused:
            return {}
        if made:
            log.warning(
                "encryption: the keyring %s was gone (a restore or a flush replaced the "
                "keyspace); made it again under key id %s%s",
                names.crypto_key(),
                cipher.current,
                "; plaintext left: run `multiframe-admin encrypt`" if plaintext else "",
            )
        return await read(self.client, names)
