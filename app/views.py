"""A system's declared read routes (keyspace.views): one handler serves every view, readable
by whoever may read every collection the view reads."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from keyspace import Rows, System, ValidationFailed, View, viewing

from .errors import ApiError
from .resources import readable
from .routing import Route
from .state import keyspace, system
from .wire import JSON, none_match, query_params, stored_response

CACHE_HEADER = "X-Cache"  # HIT or MISS on a cached view's answer


@dataclass(frozen=True)
class Viewed:
    view: View

    async def get(self, request: web.Request) -> web.Response:
        ks, served = keyspace(request), system(request)
        for collection in self.view.collections(served.aggregates):
            readable(request, ks.schema.collection(collection))
        path = dict(request.match_info)
        try:
            if (one := self.view.document) is not None:
                for name in query_params(request):
                    message = "unknown query parameter"
                    raise ValidationFailed(
                        f"{name}: {message}", details=[{"field": name, "message": message}]
                    )
                spec = ks.schema.collection(one.collection)
                stored = await viewing.document(ks, spec, one.field, path[one.param])
                return none_match(request, stored_response(stored))
            ttl = served.view_ttl(self.view)
            body, hit = await viewing.answer(
                ks, self.view, served.aggregates, ttl, path, query_params(request)
            )
        except ValidationFailed as exc:
            raise ApiError(400, "invalid_parameter", exc.message, details=exc.details) from None
        headers = {} if ttl is None else {CACHE_HEADER: "HIT" if hit else "MISS"}
        return web.Response(body=body, content_type=JSON, headers=headers)


def _returns(served: System, view: View) -> str:
    if view.answer is not None:
        return view.answer.__name__
    if (one := view.document) is not None:
        return served.schema.collection(one.collection).model.__name__
    ((_, part),) = view.parts  # one list: its page
    assert isinstance(part, Rows)
    return f"{served.schema.collection(part.collection).model.__name__}Page"


def view_routes(served: System) -> list[Route]:
    """One GET route per declared view, in declaration order."""
    out = []
    for v in served.views:
        guarded = any(
            served.schema.collection(c).admin_read for c in v.collections(served.aggregates)
        )
        out.append(
            Route(
                "GET",
                v.path,
                Viewed(v).get,
                v.summary,
                v.tag,
                returns=_returns(served, v),
                view=v,
                errors=(400, 403, 404) if guarded else (400, 404),
            )
        )
    return out
