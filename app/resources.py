"""Handlers for the entity collections and their relations. Parse, call keyspace, serialize."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from keyspace import COLLAB, USER, EntitySpec, Page, Query, ValidationFailed, parse
from keyspace.keys import is_lookup_id

from .errors import ApiError
from .state import keyspace
from .wire import if_match, json_response, query_params, read_object, stored_response


def page_body(page: Page) -> dict[str, object]:
    return {"items": page.items, "total": page.total, "next_cursor": page.next_cursor}


def _query(spec: EntitySpec, params: dict[str, list[str]]) -> Query:
    try:
        return parse(spec, params)
    except ValidationFailed as exc:
        raise ApiError(400, "invalid_parameter", exc.message, details=exc.details) from None


@dataclass(frozen=True)
class Collection:
    """The six routes of one entity collection."""

    spec: EntitySpec

    def url(self, doc_id: str) -> str:
        return f"/api/{self.spec.collection}/{doc_id}"

    async def list(self, request: web.Request) -> web.Response:
        page = await keyspace(request).list(self.spec, _query(self.spec, query_params(request)))
        return json_response(page_body(page))

    async def create(self, request: web.Request) -> web.Response:
        stored = await keyspace(request).create(self.spec, await read_object(request))
        return stored_response(
            stored, status=201, location=self.url(stored.doc[self.spec.id_field])
        )

    async def get(self, request: web.Request) -> web.Response:
        return stored_response(await keyspace(request).get(self.spec, request.match_info["id"]))

    async def replace(self, request: web.Request) -> web.Response:
        body = await read_object(request)
        pinned = if_match(request)
        stored = await keyspace(request).replace(
            self.spec, request.match_info["id"], body, if_revision=pinned
        )
        return stored_response(stored)

    async def patch(self, request: web.Request) -> web.Response:
        body = await read_object(request)
        pinned = if_match(request)
        stored = await keyspace(request).patch(
            self.spec, request.match_info["id"], body, if_revision=pinned
        )
        return stored_response(stored)

    async def delete(self, request: web.Request) -> web.Response:
        pinned = if_match(request)
        await keyspace(request).delete(self.spec, request.match_info["id"], if_revision=pinned)
        return web.Response(status=204)


@dataclass(frozen=True)
class UserRelation:
    """``GET /api/users/{id}/<collection>``: documents whose ``field`` holds the user's id."""

    spec: EntitySpec
    field: str

    async def list(self, request: web.Request) -> web.Response:
        user_id = request.match_info["id"]
        ks = keyspace(request)
        await ks.get(USER, user_id)  # 404 for an unknown user rather than an empty list
        params = query_params(request)
        if self.field in params:
            raise ApiError(400, "invalid_parameter", f"{self.field} is fixed by the URL")
        page = await ks.list(self.spec, _query(self.spec, {**params, self.field: [user_id]}))
        return json_response(page_body(page))


async def add_collaborator(request: web.Request) -> web.Response:
    body = await read_object(request)
    member = body.get("user_id")
    if set(body) != {"user_id"} or not isinstance(member, str) or not is_lookup_id(member):
        raise ApiError(
            422,
            "validation_failed",
            'the body must be {"user_id": "<user id>"}',
            details=[{"field": "user_id", "message": "must be an existing user's id"}],
        )
    stored = await keyspace(request).add_member(
        COLLAB, request.match_info["id"], "collaborators", member, if_revision=if_match(request)
    )
    return stored_response(stored)


async def remove_collaborator(request: web.Request) -> web.Response:
    stored = await keyspace(request).remove_member(
        COLLAB,
        request.match_info["id"],
        "collaborators",
        request.match_info["user_id"],
        if_revision=if_match(request),
    )
    return stored_response(stored)
