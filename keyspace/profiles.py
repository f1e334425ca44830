"""Cached profiles (``EntitySpec.profile``): a summary of a document, kept under the seed's
``user:profile:{user_id}`` (inside the namespace) for an hour.

A profile is some fields of a document plus some of its one-to-one companion's (NeuraForge:
a user's ``name`` and ``avatar_url``, and its ``user_profiles`` document's
``research_interests``). A read that finds no entry computes the profile from the documents
as read and stores it only while they still hold exactly that (``lua/profile.lua``). Every
commit that writes the document or a companion of it deletes the entry in the same script
(:func:`stale_keys`, used by ``plan.py``), so once a write is acknowledged no later read
meets a profile from before it, and a profile computed before it is never stored after it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from redis.asyncio import Redis

from . import codec, keys
from .connection import call
from .errors import NotFound
from .features import Profile
from .schema import EntitySpec, Schema

if TYPE_CHECKING:  # scripts imports plan, which imports stale_keys from here
    from .scripts import Scripts


def compose(
    schema: Schema, profile: Profile, doc: Mapping[str, Any], companion: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The profile of ``doc``: its ``fields``, then the companion's (its declared defaults, or
    null, while it has none)."""
    out = {name: doc.get(name) for name in profile.fields}
    if profile.companion is None:
        return out
    defaults = schema.entity(profile.companion).defaults
    for name in profile.companion_fields:
        if companion is not None:
            out[name] = companion.get(name)
        else:
            out[name] = defaults[name]({}, "") if name in defaults else None
    return out


def stale_keys(
    schema: Schema, spec: EntitySpec, doc_id: str | None, doc: Mapping[str, Any]
) -> list[str]:
    """The profile entries a write of ``doc`` (an ``spec`` document) makes stale: its own
    (when ``doc_id`` is known) and those of the documents it is the companion of."""
    names = schema.names
    out: list[str] = []
    if spec.profile is not None and doc_id is not None:
        out.append(names.profile_key(spec.profile.key, doc_id))
    for _, profile in schema.profiled_through(spec):
        target = doc.get(profile.via)
        if isinstance(target, str) and keys.is_lookup_id(target):
            out.append(names.profile_key(profile.key, target))
    return out


@dataclass(frozen=True)
class Profiles:
    """Reads of cached profiles for one keyspace."""

    client: Redis
    scripts: Scripts
    schema: Schema

    async def read(self, spec: EntitySpec, doc_id: str) -> bytes:
        """The profile of ``doc_id`` as JSON, from its entry or computed (and then stored,
        when the profile is ``cached``); NotFound when the document does not exist."""
        profile = spec.profile
        assert profile is not None, f"{spec.name} declares no profile"
        cached = profile.cached
        names = self.schema.names
        if not keys.is_lookup_id(doc_id):
            raise NotFound(f"{spec.name} {doc_id!r} does not exist")
        entry = names.profile_key(profile.key, doc_id)
        base = [names.pause_key(), entry]
        if cached:
            found = (await self.scripts.profile(base, ["get"]))[1]
            if isinstance(found, bytes):
                return found
        doc_key = names.doc_key(spec.prefix, doc_id)
        raw: bytes | None = await call(self.client, "JSON.GET", doc_key, ".")
        if raw is None:
            raise NotFound(f"{spec.name} {doc_id!r} does not exist")
        sources: list[str] = [doc_key]
        args: list[str | bytes] = [raw]
        companion: Mapping[str, Any] | None = None
        if profile.companion is not None:
            companion_spec = self.schema.entity(profile.companion)
            ref_set = names.ref_key(doc_key, companion_spec.prefix, profile.via)
            listed = await self.client.smembers(ref_set)
            members = sorted(m.decode() if isinstance(m, bytes) else m for m in listed)
            sources.append(ref_set)
            args += [str(len(members)), *members]
            if members:
                companion_key = names.doc_key(companion_spec.prefix, members[0])
                companion_raw: bytes | None = await call(
                    self.client, "JSON.GET", companion_key, "."
                )
                sources.append(companion_key)
                args.append(companion_raw or b"")
                companion = codec.loads(companion_raw) if companion_raw else None
        body = orjson.dumps(compose(self.schema, profile, codec.loads(raw), companion))
        if cached:
            await self.scripts.profile([*base, *sources], ["put", profile.ms, body, *args])
        return body
