"""Cached list answers with read-your-writes invalidation (``System.cache``).

A system may mark collections cacheable (:class:`CacheRules`). Their list and relation
answers are stored under the seed's ``api:cache:{endpoint}:{params_hash}`` (inside the
namespace) with the versions of the collections they were computed from folded into the
name (:meth:`Names.cache_key`). Every commit that writes or deletes a document of a cached
collection INCRs its version in the same script (``plan.py``; an absent version starts at
a random value there and in a lookup alike, never at 1), and a lookup reads the
versions and the entry under them in one script (``lua/cache.lua``). So once a write is
acknowledged, every later lookup reads the new version and can only meet an answer computed
after it: a client never reads a cached answer older than its own acknowledged write. An
answer of an older version is never served again; it ages out by its TTL.

The versions are read *before* the answer is computed, so an entry holds data at least as
new as its versions; a write that lands while it is computed moves the version on, and the
entry (stored only while its versions still hold) is not met by anyone who saw that write.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import orjson

from .keys import Names
from .plan import VERSION_START
from .schema import EntitySpec
from .scripts import Scripts

DEFAULT_TTL_SECONDS = 15 * 60
"""The seed's API cache TTL (``api:cache:*``, 15 minutes)."""

MAX_ENTRIES = 256
"""The most answers one endpoint keeps (``lua/cache.lua`` deletes the soonest to expire past
it): a client varying no-op parameters cannot fill memory with copies of one answer."""
MAX_ANSWER_BYTES = 256 * 1024
"""Larger answers are served but not stored: one endpoint holds at most MAX_ENTRIES x this
(64 MiB)."""


@dataclass(frozen=True)
class CacheRules:
    """Which collections' list answers a system caches (``/api/<collection>`` names), and for
    how long an answer is kept. Only the lists of these entities, and the relation routes that
    list them, are cached; an entity that expires cannot be cached (an expiry changes its
    lists without a write to bump the version)."""

    collections: tuple[str, ...]
    ttl_seconds: int = DEFAULT_TTL_SECONDS

    def __post_init__(self) -> None:
        if type(self.ttl_seconds) is not int or self.ttl_seconds <= 0:
            raise ValueError(f"a cache TTL is a positive number of seconds: {self.ttl_seconds!r}")


def params_hash(params: Mapping[str, Sequence[str]]) -> str:
    """A stable hash of a request's query parameters (names sorted, each name's values in
    the order given: ``a=1&b=2`` and ``b=2&a=1`` share an entry, ``a=1&a=2`` and ``a=2&a=1``
    need not)."""
    canonical = orjson.dumps(sorted((name, list(values)) for name, values in params.items()))
    return hashlib.sha256(canonical).hexdigest()[:32]


def version_keys(specs: Sequence[EntitySpec]) -> list[str]:
    """The version keys of the collections an answer is computed from, in a fixed order."""
    return sorted({spec.names.collection_version_key(spec.prefix) for spec in specs})


@dataclass(frozen=True)
class Lookup:
    """What a lookup found: the stored answer (None: a miss) and the versions it read."""

    body: bytes | None
    versions: tuple[str, ...]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class AnswerCache:
    """Lookups and stores of one endpoint's answers, computed from ``specs`` (all cached)."""

    scripts: Scripts
    names: Names
    endpoint: str
    specs: tuple[EntitySpec, ...]
    ttl_seconds: int = DEFAULT_TTL_SECONDS

    def _keys(self) -> list[str]:
        prefix = self.names.cache_prefix(self.endpoint)
        entries = self.names.cache_entries_key(self.endpoint)
        return [self.names.pause_key(), prefix, entries, *version_keys(self.specs)]

    async def get(self, params: str) -> Lookup:
        """The answer stored for ``params`` (a :func:`params_hash`) at the current versions."""
        start = secrets.randbelow(VERSION_START)
        reply = await self.scripts.cache(self._keys(), ["get", params, start])
        body = reply[1] if isinstance(reply[1], bytes) else None
        return Lookup(body, tuple(_text(v) for v in reply[2:]))

    async def put(self, params: str, lookup: Lookup, body: bytes) -> bool:
        """Store ``body`` as the answer at ``lookup``'s versions, unless a write moved one of
        them meanwhile or it is larger than :data:`MAX_ANSWER_BYTES`; True when stored."""
        if len(body) > MAX_ANSWER_BYTES:
            return False
        ttl_ms = self.ttl_seconds * 1000
        reply = await self.scripts.cache(
            self._keys(), ["put", params, ttl_ms, body, MAX_ENTRIES, *lookup.versions]
        )
        return bool(reply[1])

    async def answer(
        self, params: str, compute: Callable[[], Awaitable[bytes]]
    ) -> tuple[bytes, bool]:
        """The stored answer for ``params``, or ``compute()``'s, stored exactly as computed;
        and whether it came from the cache."""
        found = await self.get(params)
        if found.body is not None:
            return found.body, True
        body = await compute()
        await self.put(params, found, body)
        return body, False
