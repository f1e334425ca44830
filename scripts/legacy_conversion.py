"""What a MultiFrame 11.0 legacy value becomes: its document (validated like a create, with
defaults and normalized times), or the reason it cannot become one.

Pure, reading and writing nothing: ``import-legacy`` converts each record it reads, and
``quarantine restore`` converts a quarantined record again (scripts.quarantine), without
an importer's reading and counting around it.
"""

from __future__ import annotations

import json
from typing import Any

from keyspace import codec
from keyspace.documents import for_create, validate
from keyspace.errors import ValidationFailed
from keyspace.keys import Names
from keyspace.schema import EntitySpec, SingletonSpec

FAST_PARSE = 2**20  # orjson needs ~15 times a value's size while parsing it; json 2 to 5


def convert_single(spec: SingletonSpec, raw: bytes) -> dict[str, Any] | str:
    """The singleton document for a legacy value, or why it cannot be imported."""
    try:
        return validate(spec.model, _loads(raw))
    except (ValueError, RecursionError):
        return "not valid JSON"
    except ValidationFailed as exc:
        return _invalid(exc)


def convert(names: Names, spec: EntitySpec, key: str, raw: bytes) -> dict[str, Any] | str:
    """The document for one legacy record, or why it cannot be imported."""
    doc_id = names.id_from_key(spec.prefix, key)
    try:
        record = _loads(raw)
    except (ValueError, RecursionError):
        return "not valid JSON"
    if not isinstance(record, dict):
        return "not a JSON object"
    if (stated := record.get(spec.id_field, doc_id)) != doc_id:
        return f"{spec.id_field} {stated!r} does not match the key"
    if spec.derive_id is not None and spec.derive_id(record) != doc_id:
        return f"{spec.id_field} must be {spec.derive_id(record)!r} (nft_<user_id>_<chip_id>)"
    try:
        return for_create(spec, record, doc_id)
    except ValidationFailed as exc:
        return _invalid(exc)


def _loads(raw: bytes) -> Any:
    """A legacy value's JSON; ValueError (or RecursionError) when it is none."""
    if len(raw) <= FAST_PARSE:
        return codec.loads(raw)
    return json.loads(raw, parse_constant=_no_constant)  # less memory for large values


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _invalid(exc: ValidationFailed) -> str:
    first = exc.details[0] if isinstance(exc.details, list) and exc.details else None
    return f"{first['field']}: {first['message']}" if first else exc.message
