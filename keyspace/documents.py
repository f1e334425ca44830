"""Pure document rules: validation, defaults, merge patches and status transitions.

Every function takes the declaration and plain dicts and returns the exact
document to store (in the model's field order, timestamps normalized), or
raises a :class:`~keyspace.errors.KeyspaceError` naming the field at fault.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from . import keys
from .codec import now_iso
from .errors import InvalidTransition, ValidationFailed
from .schema import EntitySpec

MAX_DEPTH = 8


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, Mapping):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def validation_details(error: ValidationError) -> list[dict[str, str]]:
    """Pydantic errors as ``[{"field": "chip_data.cores", "message": ...}]``."""
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or "(document)", "message": e["msg"]}
        for e in error.errors(include_url=False, include_input=False)
    ]


def validate(model: type[BaseModel], doc: Any) -> dict[str, Any]:
    """The stored form of ``doc`` according to ``model``, or ValidationFailed."""
    if not isinstance(doc, Mapping):
        raise ValidationFailed(
            "a document must be a JSON object",
            details=[{"field": "(document)", "message": "must be an object"}],
        )
    try:
        return model.model_validate(doc).model_dump(mode="json")
    except ValidationError as exc:
        # Models have a fixed depth, so validation never descends into deep input and
        # the depth walk can wait for the error path (it cost valid creates ~20%).
        if _depth(doc) > MAX_DEPTH:
            raise ValidationFailed(
                "document nested too deeply",
                details=[{"field": "(document)", "message": f"nesting deeper than {MAX_DEPTH}"}],
            ) from None
        details = validation_details(exc)
        raise ValidationFailed(
            f"invalid {model.__name__}: {details[0]['field']}: {details[0]['message']}",
            details=details,
        ) from None


def _id_mismatch(field: str, expected: str) -> ValidationFailed:
    message = f"must be {expected!r} (ids cannot be changed or chosen here)"
    return ValidationFailed(f"{field}: {message}", details=[{"field": field, "message": message}])


def explicit_id(spec: EntitySpec, data: Mapping[str, Any]) -> str | None:
    """The id a create asks for, validated; None when the service should assign one."""
    if spec.id_field not in data:
        return None
    value = data[spec.id_field]
    if not isinstance(value, str) or not keys.is_valid_id(value):
        message = "must match " + keys.ID_PATTERN
        raise ValidationFailed(
            f"{spec.id_field}: {message}", details=[{"field": spec.id_field, "message": message}]
        )
    return value


def for_create(spec: EntitySpec, data: Mapping[str, Any], doc_id: str) -> dict[str, Any]:
    """The document to create under ``doc_id``: declared defaults filled, then validated."""
    if not isinstance(data, Mapping):
        validate(spec.model, data)
    doc = dict(data)
    if doc.get(spec.id_field, doc_id) != doc_id:
        raise _id_mismatch(spec.id_field, doc_id)
    doc[spec.id_field] = doc_id
    for name in spec.server_time:
        doc[name] = now_iso()
    for name, default in spec.defaults.items():
        if name not in doc:
            doc[name] = default(doc, doc_id)
    return validate(spec.model, doc)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge recursively, ``null`` removes a member."""
    if not isinstance(patch, Mapping):
        return patch
    out = dict(target) if isinstance(target, Mapping) else {}
    for name, value in patch.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = merge_patch(out.get(name), value)
    return out


def for_update(
    spec: EntitySpec, old: Mapping[str, Any], data: Mapping[str, Any], *, merge: bool
) -> dict[str, Any]:
    """The document replacing ``old``: the id kept, transitions checked, touched times set."""
    if not isinstance(data, Mapping):
        validate(spec.model, data)
    doc_id = old[spec.id_field]
    candidate = merge_patch(old, data) if merge else dict(data)
    if candidate.get(spec.id_field, doc_id) != doc_id:
        raise _id_mismatch(spec.id_field, doc_id)
    candidate[spec.id_field] = doc_id
    for name in spec.touch_on_update:
        if name not in data or name in spec.server_time:
            candidate[name] = now_iso()
    if spec.derive_id is not None and spec.derive_id(candidate) != doc_id:
        raise _id_mismatch("chip_id/user_id", "unchanged: they make up the id")
    new = validate(spec.model, candidate)
    check_transition(spec, old, new)
    return new


def check_transition(spec: EntitySpec, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    rule = spec.transitions
    if rule is None:
        return
    before, after = old.get(rule.field), new.get(rule.field)
    if isinstance(before, str) and isinstance(after, str) and not rule.permits(before, after):
        raise InvalidTransition(
            f"{rule.field} cannot change from {before!r} to {after!r}",
            field=rule.field,
            details={"field": rule.field, "from": before, "to": after},
        )
