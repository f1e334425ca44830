"""Array references edited one member at a time (a collab's ``collaborators``), and the
owners of the documents a document's single references name: what :class:`Keyspace`'s
``add_member``, ``remove_member`` and ``reference_owners`` are made of."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from redis.asyncio import Redis

from . import codec, keys
from .documents import validate
from .errors import NotFound, ValidationFailed
from .schema import EntitySpec, Schema

Edit = Callable[[dict[str, Any]], dict[str, Any]]


def _many(spec: EntitySpec, field: str, member: str) -> None:
    if not any(r.field == field and r.many for r in spec.references):
        raise ValueError(f"{spec.name}.{field} is not a list of references")
    if not isinstance(member, str) or not member:
        raise ValidationFailed(
            f"{field}: member must be an id",
            details=[{"field": field, "message": "must be an id"}],
        )


def adding(spec: EntitySpec, field: str, member: str) -> Edit:
    """The edit adding ``member`` to the array ``field`` once (a present member: no change)."""
    _many(spec, field, member)

    def add(old: dict[str, Any]) -> dict[str, Any]:
        current = list(old.get(field, []))
        new = {**old, field: current if member in current else [*current, member]}
        return validate(spec.model, new)

    return add


def removing(spec: EntitySpec, doc_id: str, field: str, member: str) -> Edit:
    """The edit removing ``member`` from the array ``field``; NotFound when it is not there."""
    _many(spec, field, member)

    def remove(old: dict[str, Any]) -> dict[str, Any]:
        current = list(old.get(field, []))
        if member not in current:
            raise NotFound(f"{member!r} is not in {spec.name} {doc_id} {field}")
        return {**old, field: [m for m in current if m != member]}

    return remove


async def reference_owners(
    client: Redis, schema: Schema, spec: EntitySpec, doc: Mapping[str, Any]
) -> dict[str, str | None]:
    """For each single reference of ``doc`` to an entity that has owners (other than the
    users themselves), the owner of the document it names (None: missing or ownerless),
    in one pipelined read; no I/O when there is none."""
    asked: list[tuple[str, str, str]] = []  # field, target key, owner path
    for ref in spec.references:
        target = schema.entity(ref.target)
        value = doc.get(ref.field) if isinstance(doc, Mapping) else None
        if ref.many or target.owner is None or target.satellites is not None:
            continue
        if isinstance(value, str) and keys.is_lookup_id(value):
            asked.append((ref.field, target.key(value), "$." + target.owner))
    if not asked:
        return {}
    async with client.pipeline(transaction=False) as pipe:
        for _, key, path in asked:
            pipe.execute_command("JSON.GET", key, path)
        replies = await pipe.execute(raise_on_error=False)
    out: dict[str, str | None] = {}
    for (field, _, _), reply in zip(asked, replies, strict=True):
        found = codec.loads(reply) if isinstance(reply, bytes) else None
        out[field] = found[0] if isinstance(found, list) and found else None
    return out
