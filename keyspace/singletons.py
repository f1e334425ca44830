"""``config:system`` and ``analytics:metrics``: single documents under fixed keys."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from . import codec, keys
from .codec import now_iso
from .connection import call
from .documents import merge_patch, validate
from .errors import Contention, NotFound, StaleRevision, ValidationFailed
from .keys import Names
from .plan import Plan
from .schema import SingletonSpec
from .scripts import Scripts
from .store import MAX_ATTEMPTS, Stored


def chip_path(chip_id: str) -> str:
    """JSONPath of one chip's entry; only validated ids are ever put in it."""
    if not keys.is_valid_id(chip_id):
        raise ValidationFailed(
            f"chip_id must match {keys.ID_PATTERN}",
            details=[{"field": "chip_id", "message": f"must match {keys.ID_PATTERN}"}],
        )
    return f'$.chip_metrics["{chip_id}"]'


class Singletons:
    """Read and write the singleton documents, validated on every write."""

    def __init__(self, client: Redis, scripts: Scripts, names: Names) -> None:
        self.names = names
        self.client = client
        self.scripts = scripts

    async def ensure(self, spec: SingletonSpec) -> bool:
        """Store the declared default if the key is missing; True when it was created.

        A key of another type (a legacy MultiFrame 11.0 string awaiting
        ``import-legacy``) is left alone for the importer and ``check`` to handle.
        """
        try:  # NX: a key already there, whatever its type, is left as it is
            return bool(
                await call(self.client, "JSON.SET", spec.key, "$", codec.dumps(spec.default), "NX")
            )
        except ResponseError:  # a server that refuses NX over a key of another type
            return False

    async def get(self, spec: SingletonSpec) -> Stored:
        raw: bytes | None = await call(self.client, "JSON.GET", spec.key, ".")
        if raw is None:
            raise NotFound(f"{spec.key} does not exist")
        return Stored.from_raw(raw)

    async def replace(
        self, spec: SingletonSpec, data: Any, *, if_revision: str | None = None
    ) -> Stored:
        return await self._write(spec, lambda _old: data, if_revision)

    async def patch(
        self, spec: SingletonSpec, changes: Any, *, if_revision: str | None = None
    ) -> Stored:
        if not isinstance(changes, Mapping):
            validate(spec.model, changes)
        return await self._write(spec, lambda old: merge_patch(old, changes), if_revision)

    async def _write(self, spec: SingletonSpec, change: Any, if_revision: str | None) -> Stored:
        for _ in range(MAX_ATTEMPTS):
            raw: bytes | None = await call(self.client, "JSON.GET", spec.key, ".")
            if if_revision is not None and (raw is None or codec.revision(raw) != if_revision):
                raise StaleRevision(f"{spec.key} has changed since revision {if_revision}")
            old = codec.loads(raw) if raw is not None else dict(spec.default)
            new = validate(spec.model, change(old))
            plan = Plan(self.names.pause_key())
            if raw is None:
                plan.check("absent", spec.key)
            else:
                plan.check("equals", spec.key, raw)
            plan.write("jset", spec.key, codec.dumps(new))
            plan.returns(spec.key)
            result = await self.scripts.commit(plan)
            if result.ok and result.raw is not None:
                return Stored.from_raw(result.raw)
            if if_revision is not None:
                raise StaleRevision(f"{spec.key} changed while being written")
        raise Contention(f"{spec.key} is changing too fast; try again")

    async def get_chip(self, spec: SingletonSpec, chip_id: str) -> dict[str, Any]:
        raw = await call(self.client, "JSON.GET", spec.key, chip_path(chip_id))
        found = codec.loads(raw) if raw else []
        if not found:
            raise NotFound(f"no metrics for chip {chip_id!r}")
        chip: dict[str, Any] = found[0]
        return chip

    async def set_chip(self, spec: SingletonSpec, chip_id: str, metrics: Any) -> dict[str, Any]:
        """Write one chip's metrics (``last_updated`` set here); other chips are untouched."""
        sent, kept = spec.entry_models  # what a client sends, what is stored
        values = validate(sent, metrics)
        stored = validate(kept, {**values, "last_updated": now_iso()})
        raw = await self.scripts.set_chip_metrics(
            spec.key,
            self.names.pause_key(),
            chip_path(chip_id),
            codec.dumps(stored),
            codec.dumps({"chip_metrics": {}}),
        )
        chip: dict[str, Any] = codec.loads(raw)[0]
        return chip
