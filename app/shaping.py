"""``fields=`` and ``expand=`` on reads by id and lists (keyspace.sparse): parsing them from
a request, and shaping a read's or a page's documents.

A read by id reads the whole document (its ETag is the hash of its stored bytes) and
projects it here; a list through the index reads only the paths asked for (and those its
filters need) of each document, the scan path reads everything: both project here, so they
answer alike. Expanded targets come in one pipeline after the document or the page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from keyspace import EntitySpec, NotFound, Page, Stored, ValidationFailed, embedding, sparse

from . import policy
from .auth import caller
from .errors import ApiError
from .privacy import Withholding
from .state import PREFETCHED, keyspace
from .wire import JSON, etag, none_match


def shape(request: web.Request, spec: EntitySpec, params: dict[str, list[str]]) -> sparse.Shape:
    """The request's shape; 400 ``invalid_parameter`` naming an unknown path or reference,
    and the refusal a read of an expanded target's entity would get (admin-only entities)."""
    try:
        paths = sparse.parse_fields(spec, params.get(sparse.FIELDS))
        refs = sparse.parse_expand(spec, params.get(sparse.EXPAND))
    except ValidationFailed as exc:
        raise ApiError(400, "invalid_parameter", exc.message, details=exc.details) from None
    schema = keyspace(request).schema
    for ref in refs:
        target = schema.entity(ref.target)
        if target.admin_read:  # nothing seen through expand that a read would not show
            policy.require_admin(caller(request), f"read {target.collection}")
    return sparse.Shape(paths, refs)


def selecting(params: dict[str, list[str]]) -> dict[str, list[str]]:
    """``params`` without the shaping ones: what selects the documents."""
    return {k: v for k, v in params.items() if k not in sparse.PARAMS}


def targets(request: web.Request, shaped: sparse.Shape) -> tuple[EntitySpec, ...]:
    """The entities whose documents the answer embeds, each once."""
    schema = keyspace(request).schema
    return tuple(schema.entity(name) for name in dict.fromkeys(r.target for r in shaped.expand))


async def _expanded(
    request: web.Request, shaped: sparse.Shape, docs: list[dict[str, object]], fresh: bool
) -> embedding.Found:
    if not shaped.expand:
        return {}
    ks = keyspace(request)
    wanted = shaped.wanted(docs)
    return await ks.replica.run(
        lambda client: embedding.fetch(client, ks.schema, wanted, ks.documents.open_doc),
        fresh=fresh,
    )


def page_of(
    request: web.Request, shaped: sparse.Shape, compute: Callable[[bool], Awaitable[Page]]
) -> Callable[[bool], Awaitable[Page]]:
    """``compute`` with its items shaped."""
    if shaped.plain:
        return compute

    async def shaped_page(fresh: bool) -> Page:
        page = await compute(fresh)
        found = await _expanded(request, shaped, page.items, fresh)
        items = [shaped.apply(d, found) for d in page.items]
        return Page(items, page.total, page.next_cursor)

    return shaped_page


async def read_stored(request: web.Request, spec: EntitySpec) -> Stored:
    """The document read (opened), or the one read during authorization (NotFound)."""
    prefetched, doc_id = request.get(PREFETCHED), request.match_info["id"]
    ks = keyspace(request)
    if prefetched is None:
        return await ks.read(spec, doc_id)
    if prefetched.raw is None:
        raise NotFound(f"{spec.name} {doc_id!r} does not exist")
    return await ks.documents.opened(spec, doc_id, Stored.from_raw(prefetched.raw))


async def read_response(
    request: web.Request,
    shaped: sparse.Shape,
    stored: Stored,
    withholds: Withholding | None = None,
) -> web.Response:
    """A read's shaped answer, less what ``withholds`` (app.privacy): the document's own ETag
    (a partial read names the revision it was cut from, so If-Match on a write works; one
    withholding fields names what the caller is shown, ``Withholding.etag``),
    If-None-Match evaluated unless it embeds other documents (their changes do not change
    that ETag)."""
    found = await _expanded(request, shaped, [stored.doc], fresh=True)  # as reads by id
    shown = shaped.apply(stored.doc, found)
    body = orjson.dumps(shown if withholds is None else withholds.item(shown))
    tag = etag(stored.revision) if withholds is None else withholds.etag(stored)
    response = web.Response(body=body, content_type=JSON, headers={"ETag": tag})
    return response if shaped.expand else none_match(request, response)
