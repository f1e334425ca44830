"""``GET /api/<collection>/aggregate``: groups and metrics of any collection
(keyspace.aggregate), readable by whoever may list the collection."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from keyspace import EntitySpec, ValidationFailed, parse_aggregation

from .errors import ApiError
from .resources import readable
from .state import keyspace
from .wire import json_response, query_params


@dataclass(frozen=True)
class Aggregated:
    """The aggregate route of one collection: ``group_by``, ``metrics``, ``limit``, ``order``
    and the list's filters in, ``{"groups": [...], "truncated": bool}`` out."""

    spec: EntitySpec

    async def get(self, request: web.Request) -> web.Response:
        readable(request, self.spec)
        try:
            # A bad aggregation is refused before any lookup; a group past what an exact
            # sum covers (keyspace.aggregate.MAX_GROUP_DOCUMENTS) is refused after.
            aggregation = parse_aggregation(self.spec, query_params(request))
            result = await keyspace(request).aggregate(self.spec, aggregation)
        except ValidationFailed as exc:
            raise ApiError(400, "invalid_parameter", exc.message, details=exc.details) from None
        return json_response(result.body())
