"""The batch create: ``POST /api/<collection>`` with a JSON array (keyspace.batch).

The request is authorized once (it counts as one write against the rate limits), each item
must pass the rules of a single create (``policy.check_create``), and the documents are
created all or none in one script call. Every refusal names the items at fault: one 4xx
whose ``details`` holds an entry per refused item (``index``, ``status``, ``code``,
``field``, ``with_index``, ``message``, ``details``); the answer's status and code are the
first entry's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from keyspace import MAX_BATCH, BatchRefused, EntitySpec, OutsideImportWindow

from . import auth, policy
from .errors import ApiError, status_of
from .privacy import shown_body
from .state import keyspace, system
from .wire import JSON


def _entry(index: int, error: ApiError) -> dict[str, Any]:
    out: dict[str, Any] = {"index": index, "status": error.status, "code": error.code}
    details = error.details
    if isinstance(details, Mapping) and isinstance(details.get("field"), str):
        out["field"] = details["field"]
    out["message"] = error.message
    if details is not None:
        out["details"] = details
    return out


def _refused(entries: Sequence[dict[str, Any]]) -> ApiError:
    first = entries[0]
    indexes = ", ".join(str(e["index"]) for e in entries[:10])
    more = f" and {len(entries) - 10} more" if len(entries) > 10 else ""
    return ApiError(
        first["status"],
        first["code"],
        f"nothing was created: {len(entries)} item(s) refused (index {indexes}{more}); "
        f"the first: {first['message']}",
        details=list(entries),
    )


def _from_batch(spec: EntitySpec, exc: BatchRefused) -> ApiError:
    entries = []
    for refusal in exc.refusals:
        entry = refusal.entry()
        error = refusal.error
        if isinstance(error, OutsideImportWindow):  # answered as the single create does
            api = policy.outside_import_window(spec, error)
            entry.update(_entry(refusal.index, api))
        else:
            entry["status"] = status_of(error)
        entries.append(dict(sorted(entry.items(), key=lambda kv: _ORDER.get(kv[0], 9))))
    return _refused(entries)


_ORDER = {"index": 0, "status": 1, "code": 2, "field": 3, "with_index": 4, "message": 5}


def _size(items: Sequence[Any]) -> None:
    if not items:
        raise ApiError(
            400,
            "empty_batch",
            f"the array holds no document: send 1 to {MAX_BATCH} objects",
            details={"max_items": MAX_BATCH, "items": 0},
        )
    if len(items) > MAX_BATCH:
        raise ApiError(
            413,
            "payload_too_large",
            f"a batch creates at most {MAX_BATCH} documents, not {len(items)}; split it",
            details={"max_items": MAX_BATCH, "items": len(items)},
        )


async def _allowed(request: web.Request, spec: EntitySpec, items: Sequence[Any]) -> int | None:
    """The import window of the caller's explicit ids (None: an admin's, unlimited); 403
    naming every item the caller may not create (the rules of a single create)."""
    who = auth.caller(request)
    if who.admin:
        return None
    ks, served = keyspace(request), system(request)
    entries = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            continue  # refused as invalid next
        owners = await ks.reference_owners(spec, item)
        try:
            policy.check_create(who, served, spec, item, owners)
        except ApiError as exc:
            entries.append(_entry(index, exc))
    if entries:
        raise _refused(entries)
    return policy.IMPORT_WINDOW


async def create_many(request: web.Request, spec: EntitySpec, items: list[Any]) -> web.Response:
    """201 with the created documents in order, as a JSON array."""
    await auth.authorize(request)  # 401, 503 and 429 first, as for a single create
    _size(items)
    window = await _allowed(request, spec, items)
    try:
        made = await keyspace(request).create_many(spec, items, window=window)
    except BatchRefused as exc:
        raise _from_batch(spec, exc) from None
    body = b"[" + b",".join(shown_body(request, spec, stored) for stored in made) + b"]"
    return web.Response(body=body, status=201, content_type=JSON)
