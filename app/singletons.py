"""Handlers for ``config:system`` and ``analytics:metrics`` (MultiFrame), and the other
systems' operating settings (``/api/settings``)."""

from __future__ import annotations

from aiohttp import web

from .auth import caller
from .errors import ApiError
from .policy import require_admin
from .state import keyspace
from .wire import (
    if_match,
    json_response,
    none_match,
    read_object,
    refuse_none_match,
    stored_response,
)


async def get_config(request: web.Request) -> web.Response:
    return none_match(request, stored_response(await keyspace(request).get_config()))


async def put_config(request: web.Request) -> web.Response:
    require_admin(caller(request), "write config:system")
    body = await read_object(request)
    return stored_response(
        await keyspace(request).replace_config(body, if_revision=if_match(request))
    )


async def patch_config(request: web.Request) -> web.Response:
    require_admin(caller(request), "write config:system")
    body = await read_object(request)
    return stored_response(
        await keyspace(request).patch_config(body, if_revision=if_match(request))
    )


async def get_settings(request: web.Request) -> web.Response:
    return none_match(request, stored_response(await keyspace(request).get_settings()))


async def put_settings(request: web.Request) -> web.Response:
    require_admin(caller(request), "write the settings")
    body = await read_object(request)
    return stored_response(
        await keyspace(request).replace_settings(body, if_revision=if_match(request))
    )


async def patch_settings(request: web.Request) -> web.Response:
    require_admin(caller(request), "write the settings")
    body = await read_object(request)
    return stored_response(
        await keyspace(request).patch_settings(body, if_revision=if_match(request))
    )


async def get_metrics(request: web.Request) -> web.Response:
    return none_match(request, stored_response(await keyspace(request).get_metrics()))


async def put_metrics(request: web.Request) -> web.Response:
    require_admin(caller(request), "write analytics")
    body = await read_object(request)
    return stored_response(
        await keyspace(request).replace_metrics(body, if_revision=if_match(request))
    )


async def get_chip(request: web.Request) -> web.Response:
    return json_response(await keyspace(request).get_chip_metrics(request.match_info["chip_id"]))


async def put_chip(request: web.Request) -> web.Response:
    require_admin(caller(request), "write analytics")
    refuse_none_match(request)
    if "If-Match" in request.headers:
        # A chip's entry has no revision of its own; ignoring the header would drop the
        # guard the client asked for.
        raise ApiError(
            400,
            "invalid_header",
            "If-Match is not supported on one chip's metrics (each write replaces that chip "
            "atomically); guard the whole document with PUT /api/analytics/metrics",
        )
    body = await read_object(request)
    return json_response(
        await keyspace(request).set_chip_metrics(request.match_info["chip_id"], body)
    )
