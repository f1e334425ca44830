"""Handlers for the entity collections and their relations. Parse, call keyspace, serialize."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from keyspace import (
    AnswerCache,
    EntitySpec,
    KeyspaceError,
    NotFound,
    Page,
    Query,
    Stored,
    TokenKind,
    ValidationFailed,
    is_lookup_id,
    params_hash,
    parse,
    vectors,
)

from . import auth, batch, policy
from .auth import caller
from .errors import ApiError
from .privacy import Withholding, stored_answer, withholding
from .shaping import page_of, read_response, read_stored, selecting, shape, targets
from .state import PREFETCHED, keyspace, system
from .wire import (
    JSON,
    as_object,
    document_response,
    if_match,
    json_response,
    none_match,
    query_params,
    read_json,
    read_object,
    stored_response,
)

MAX_TTL = 365 * 24 * 3600


def _query(spec: EntitySpec, params: dict[str, list[str]]) -> Query:
    try:
        return parse(spec, params)
    except ValidationFailed as exc:
        raise ApiError(400, "invalid_parameter", exc.message, details=exc.details) from None


async def _listed(
    request: web.Request,
    spec: EntitySpec,
    endpoint: str,
    params: dict[str, list[str]],
    compute: Callable[[bool], Awaitable[Page]],
    also: tuple[EntitySpec, ...] = (),
    withholds: Withholding | None = None,
) -> web.Response:
    """A list answer of ``spec``: from the cache when the system caches its lists
    (keyspace.cache), else computed (and then stored exactly as served). ``compute(fresh)``
    reads the primary when ``fresh``: an answer to be cached is never a replica's, which may
    miss a write whose cache version it would be stored under. ``withholds``: what the
    caller may not read (app.privacy)."""

    rules = system(request).cache
    # Expanded documents (``also``) are part of the answer: cached only if theirs are too. An
    # answer withholding private fields is one caller's (never cached: keyspace.privacy).
    cached = rules is not None and spec.cached and all(s.cached for s in also)
    cached = cached and withholds is None

    async def body() -> bytes:
        page = (await compute(cached)).body()
        return orjson.dumps(page if withholds is None else withholds.page(page))

    if rules is None or not cached:
        return web.Response(body=await body(), content_type=JSON)
    ks = keyspace(request)
    cache = AnswerCache(ks.scripts, ks.schema.names, endpoint, (spec, *also), rules.ttl_seconds)
    answer, _ = await cache.answer(params_hash(params), body)
    return web.Response(body=answer, content_type=JSON)


def readable(request: web.Request, spec: EntitySpec) -> None:
    """Refuse a member's read of an entity only admins read (``EntitySpec.admin_read``)."""
    if spec.admin_read:
        policy.require_admin(caller(request), f"read {spec.collection}")


@dataclass(frozen=True)
class Collection:
    """The six routes of one entity collection."""

    spec: EntitySpec

    def url(self, doc_id: str) -> str:
        return f"/api/{self.spec.collection}/{doc_id}"

    async def list(self, request: web.Request) -> web.Response:
        readable(request, self.spec)
        params = query_params(request)
        query = _query(self.spec, selecting(params))  # a bad query is refused before any lookup
        shaped = shape(request, self.spec, params)
        ks = keyspace(request)
        return await _listed(
            request,
            self.spec,
            self.spec.collection,
            params,
            page_of(
                request,
                shaped,
                lambda fresh: ks.list(self.spec, query, fresh=fresh, paths=shaped.kept),
            ),
            targets(request, shaped),
            withholding(request, self.spec, shaped),
        )

    async def create(self, request: web.Request) -> web.Response:
        body: dict[str, Any] | None = None
        sent: Any = None
        try:
            sent = await read_json(request)
            if not isinstance(sent, list):  # an array is a batch create (app.batch)
                body = as_object(sent)
                prepared = keyspace(request).prepare_create(self.spec, body)
        except (ApiError, KeyspaceError):
            # Refused before the commit could authorize it: authentication still answers first.
            who = await auth.authorize(request)
            if body is not None:
                policy.check_create(who, system(request), self.spec, body)
            raise
        if body is None:
            return await batch.create_many(request, self.spec, sent)
        # Who owns what the body refers to (no I/O unless it names owned documents).
        owners = await keyspace(request).reference_owners(self.spec, body)
        stored = await auth.authorized_create(request, self.spec, body, prepared, owners)
        location = self.url(stored.doc[self.spec.id_field])
        return stored_answer(request, self.spec, stored, status=201, location=location)

    async def get(self, request: web.Request) -> web.Response:
        readable(request, self.spec)
        shaped = shape(request, self.spec, query_params(request))
        withholds = withholding(request, self.spec, shaped)
        if not shaped.plain or withholds is not None:
            stored = await read_stored(request, self.spec)
            return await read_response(request, shaped, stored, withholds)
        prefetched = request.get(PREFETCHED)
        if prefetched is None:  # not read during authorization
            stored = await keyspace(request).read(self.spec, request.match_info["id"])
            return none_match(request, stored_response(stored))
        if prefetched.raw is None:
            raise NotFound(f"{self.spec.name} {request.match_info['id']!r} does not exist")
        ks = keyspace(request)
        if ks.documents.sealing(self.spec) is not None:  # sealed values served opened
            stored = Stored.from_raw(prefetched.raw)
            opened = await ks.documents.opened(self.spec, request.match_info["id"], stored)
            return none_match(request, stored_response(opened))
        return none_match(request, document_response(prefetched.raw))

    async def replace(self, request: web.Request) -> web.Response:
        if self.spec.upsert:
            return await self._upsert(request)
        return await self._update(request, merge=False)

    async def _upsert(self, request: web.Request) -> web.Response:
        """PUT of an entity declaring ``upsert``: replaces (200), or creates under the path's
        id (201 with Location) with the rules of a create (``policy.check_create``)."""
        body = await read_object(request)
        ks, doc_id, who, served = (
            keyspace(request),
            request.match_info["id"],
            caller(request),
            system(request),
        )
        owners = {} if who.admin else await ks.reference_owners(self.spec, body)

        def create_guard(doc: Mapping[str, Any]) -> None:
            policy.check_create(who, served, self.spec, doc, owners)

        done = await ks.upsert(
            self.spec,
            doc_id,
            body,
            if_revision=if_match(request),
            guard=policy.update_guard(who, served, self.spec, owners),
            create_guard=create_guard,
        )
        if done.created:
            location = self.url(doc_id)
            return stored_answer(request, self.spec, done.stored, status=201, location=location)
        return stored_answer(request, self.spec, done.stored)

    async def patch(self, request: web.Request) -> web.Response:
        return await self._update(request, merge=True)

    async def _update(self, request: web.Request, *, merge: bool) -> web.Response:
        body = await read_object(request)
        ks, doc_id = keyspace(request), request.match_info["id"]
        write = ks.patch if merge else ks.replace
        who = caller(request)
        owners = {} if who.admin else await ks.reference_owners(self.spec, body)
        guard = policy.update_guard(who, system(request), self.spec, owners)
        stored = await write(self.spec, doc_id, body, if_revision=if_match(request), guard=guard)
        return stored_answer(request, self.spec, stored)

    async def delete(self, request: web.Request) -> web.Response:
        pinned = if_match(request)
        guard = policy.delete_guard(caller(request), system(request), self.spec)
        await keyspace(request).delete(
            self.spec, request.match_info["id"], if_revision=pinned, guard=guard
        )
        return web.Response(status=204)


@dataclass(frozen=True)
class Relation:
    """``GET /api/<targets>/{id}/<relation>``: documents whose ``field`` holds the target's id."""

    spec: EntitySpec
    field: str
    target: EntitySpec

    async def list(self, request: web.Request) -> web.Response:
        readable(request, self.spec)
        target_id = request.match_info["id"]
        ks = keyspace(request)
        await ks.read(self.target, target_id)  # 404 for an unknown target, not an empty list
        params = query_params(request)
        if self.field in params:
            raise ApiError(400, "invalid_parameter", f"{self.field} is fixed by the URL")
        fixed = {**params, self.field: [target_id]}
        query = _query(self.spec, selecting(fixed))
        shaped = shape(request, self.spec, params)
        endpoint = f"{self.spec.collection}.{self.field}"  # its params hold the target's id
        return await _listed(
            request,
            self.spec,
            endpoint,
            fixed,
            page_of(
                request,
                shaped,
                lambda fresh: ks.list(self.spec, query, fresh=fresh, paths=shaped.kept),
            ),
            targets(request, shaped),
            withholding(request, self.spec, shaped),
        )


@dataclass(frozen=True)
class Profiled:
    """``GET /api/<collection>/{id}/profile``: the document's cached profile
    (keyspace.profiles); readable by whoever may read the document and its companion."""

    spec: EntitySpec

    async def get(self, request: web.Request) -> web.Response:
        readable(request, self.spec)
        ks = keyspace(request)
        profile = self.spec.profile
        if profile is not None and profile.companion is not None:
            readable(request, ks.schema.entity(profile.companion))
        body = await ks.profiles.read(self.spec, request.match_info["id"])
        return web.Response(body=body, content_type=JSON)


SEARCH_MEMBERS = ("vector", "k", "filter")


@dataclass(frozen=True)
class Nearest:
    """``POST /api/<collection>/search`` ``{"vector", "k", "filter"}``: the ``k`` nearest
    documents as ``{"items": [...], "scores": [...]}``, ``scores[i]`` the cosine distance of
    ``items[i]``, each document as stored."""

    spec: EntitySpec

    async def search(self, request: web.Request) -> web.Response:
        readable(request, self.spec)
        body = await read_object(request)
        unknown = sorted(set(body) - set(SEARCH_MEMBERS))
        if unknown:
            message = "not a member of a search: vector, k, filter"
            raise ApiError(
                422,
                "validation_failed",
                f"{unknown[0]}: {message}",
                details=[{"field": name, "message": message} for name in unknown],
            )
        try:
            k = vectors.parse_k(body.get("k", vectors.DEFAULT_K))
            query = vectors.parse_filter(self.spec, body.get("filter", {}))
        except ValidationFailed as exc:
            raise ApiError(400, "invalid_parameter", exc.message, details=exc.details) from None
        found = await keyspace(request).nearest(self.spec, body.get("vector"), k, query)
        withholds = withholding(request, self.spec)
        items = [d if withholds is None else withholds.item(d) for d, _ in found]
        return json_response({"items": items, "scores": [s for _, s in found]})


@dataclass(frozen=True)
class Members:
    """Adding and removing one id of an array reference (``/api/collabs/{id}/collaborators``)."""

    spec: EntitySpec
    field: str
    target: EntitySpec

    async def add(self, request: web.Request) -> web.Response:
        body = await read_object(request)
        key = self.target.id_field
        member = body.get(key)
        if set(body) != {key} or not isinstance(member, str) or not is_lookup_id(member):
            raise ApiError(
                422,
                "validation_failed",
                f'the body must be {{"{key}": "<{self.target.name} id>"}}',
                details=[{"field": key, "message": f"must be an existing {self.target.name}'s id"}],
            )
        stored = await keyspace(request).add_member(
            self.spec,
            request.match_info["id"],
            self.field,
            member,
            if_revision=if_match(request),
            guard=policy.membership_guard(caller(request), self.spec, self.field),
        )
        return stored_answer(request, self.spec, stored)

    async def remove(self, request: web.Request) -> web.Response:
        member = next(v for k, v in request.match_info.items() if k != "id")
        stored = await keyspace(request).remove_member(
            self.spec,
            request.match_info["id"],
            self.field,
            member,
            if_revision=if_match(request),
            guard=policy.membership_guard(caller(request), self.spec, self.field),
        )
        return stored_answer(request, self.spec, stored)


async def mint_token(request: web.Request) -> web.Response:
    """``POST /api/users/{id}/tokens``: a new token, shown once."""
    user_id = request.match_info["id"]
    policy.check_mint(caller(request), user_id)
    body = await read_object(request) if request.can_read_body else {}
    kind, ttl = body.get("kind", "session"), body.get("ttl_seconds")
    if set(body) - {"kind", "ttl_seconds"} or kind not in ("session", "api_key"):
        raise ApiError(
            422,
            "validation_failed",
            'body: {"kind": "session"|"api_key", "ttl_seconds": n}',
            details=[{"field": "kind", "message": "must be session or api_key"}],
        )
    if ttl is not None and (
        not isinstance(ttl, int) or isinstance(ttl, bool) or not 1 <= ttl <= MAX_TTL
    ):
        raise ApiError(
            422,
            "validation_failed",
            f"ttl_seconds must be an integer from 1 to {MAX_TTL}",
            details=[{"field": "ttl_seconds", "message": f"1..{MAX_TTL}"}],
        )
    ks = keyspace(request)
    user = await ks.get(system(request).users, user_id)
    minted = await ks.tokens.mint(user_id, user.raw, TokenKind(kind), ttl)
    body_out = {
        "token": minted.token,
        "user_id": user_id,
        "kind": minted.kind.value,
        "expires_in": minted.expires_in,
    }
    return json_response(body_out, status=201, headers={"Cache-Control": "no-store"})


async def revoke_current(request: web.Request) -> web.Response:
    """``DELETE /api/tokens/current``: revoke the token this request was made with."""
    who = caller(request)
    tokens = keyspace(request).tokens
    if tokens.is_operator(who.token_hash):
        raise policy.forbid(
            "operator-token",
            "the operator's token is valid while MULTIFRAME_ADMIN_TOKEN names it; "
            "to retire it, unset or change it and restart",
        )
    await tokens.revoke(who.token_hash, who.user_id)
    return web.Response(status=204)
