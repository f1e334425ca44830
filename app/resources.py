"""Handlers for the entity collections and their relations. Parse, call keyspace, serialize."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from keyspace import (
    EntitySpec,
    KeyspaceError,
    NotFound,
    Page,
    Query,
    TokenKind,
    ValidationFailed,
    is_lookup_id,
    parse,
    vectors,
)

from . import auth, policy
from .auth import caller
from .errors import ApiError
from .state import PREFETCHED, keyspace, system
from .wire import (
    document_response,
    if_match,
    json_response,
    none_match,
    query_params,
    read_object,
    stored_response,
)

MAX_TTL = 365 * 24 * 3600


def page_body(page: Page) -> dict[str, object]:
    return {"items": page.items, "total": page.total, "next_cursor": page.next_cursor}


def _query(spec: EntitySpec, params: dict[str, list[str]]) -> Query:
    try:
        return parse(spec, params)
    except ValidationFailed as exc:
        raise ApiError(400, "invalid_parameter", exc.message, details=exc.details) from None


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
        page = await keyspace(request).list(self.spec, _query(self.spec, query_params(request)))
        return json_response(page_body(page))

    async def create(self, request: web.Request) -> web.Response:
        body: dict[str, Any] | None = None
        try:
            body = await read_object(request)
            prepared = keyspace(request).prepare_create(self.spec, body)
        except (ApiError, KeyspaceError):
            # Refused before the commit could authorize it: authentication still answers first.
            who = await auth.authorize(request)
            if body is not None:
                policy.check_create(who, system(request), self.spec, body)
            raise
        stored = await auth.authorized_create(request, self.spec, body, prepared)
        return stored_response(
            stored, status=201, location=self.url(stored.doc[self.spec.id_field])
        )

    async def get(self, request: web.Request) -> web.Response:
        readable(request, self.spec)
        prefetched = request.get(PREFETCHED)
        if prefetched is None:  # not read during authorization
            stored = await keyspace(request).get(self.spec, request.match_info["id"])
            return none_match(request, stored_response(stored))
        if prefetched.raw is None:
            raise NotFound(f"{self.spec.name} {request.match_info['id']!r} does not exist")
        return none_match(request, document_response(prefetched.raw))

    async def replace(self, request: web.Request) -> web.Response:
        return await self._update(request, merge=False)

    async def patch(self, request: web.Request) -> web.Response:
        return await self._update(request, merge=True)

    async def _update(self, request: web.Request, *, merge: bool) -> web.Response:
        body = await read_object(request)
        ks, doc_id = keyspace(request), request.match_info["id"]
        write = ks.patch if merge else ks.replace
        guard = policy.update_guard(caller(request), system(request), self.spec)
        stored = await write(self.spec, doc_id, body, if_revision=if_match(request), guard=guard)
        return stored_response(stored)

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
        await ks.get(self.target, target_id)  # 404 for an unknown target, not an empty list
        params = query_params(request)
        if self.field in params:
            raise ApiError(400, "invalid_parameter", f"{self.field} is fixed by the URL")
        page = await ks.list(self.spec, _query(self.spec, {**params, self.field: [target_id]}))
        return json_response(page_body(page))


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
        return json_response({"items": [d for d, _ in found], "scores": [s for _, s in found]})


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
        return stored_response(stored)

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
        return stored_response(stored)


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
