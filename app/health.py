"""Service endpoints: liveness, readiness and the OpenAPI document (its page: app/swagger.py)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from .errors import error_response
from .state import OPENAPI, SETTINGS, keyspace
from .wire import json_response

HEALTH_TIMEOUT_S = 2.0


async def health(request: web.Request) -> web.Response:
    """200 while this process can reach its Redis (one PING), else 503: a service whose Redis
    is gone serves nothing, and a liveness probe must say so. /ready is the stricter check
    (modules and complete indexes too)."""
    timeout = min(HEALTH_TIMEOUT_S, request.app[SETTINGS].redis_timeout)
    try:
        async with asyncio.timeout(timeout):
            await keyspace(request).client.ping()
    except Exception as exc:  # any failure to answer is "unavailable", never a 500
        return error_response(
            503,
            "redis_unavailable",
            "the data store is unreachable; retry shortly",
            {"redis": "unreachable", "reason": type(exc).__name__},
            {"Retry-After": "2"},
        )
    return json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    """200 once Redis has the modules and every index complete; with a replica for reads, also
    its state, which does not make the service unready: reads it cannot answer go to the
    primary (keyspace/replica.py)."""
    try:
        # One Redis timeout, not the client's retries of it: a probe must answer in time.
        async with asyncio.timeout(request.app[SETTINGS].redis_timeout):
            report = await keyspace(request).readiness()
    except Exception as exc:  # any failure to answer is "not ready", never a 500
        return error_response(
            503, "not_ready", f"redis unreachable: {type(exc).__name__}", None, {"Retry-After": "2"}
        )
    if not report["ready"]:
        why = report.get("encryption") or "indexes or modules not ready"
        return error_response(503, "not_ready", why, report, {"Retry-After": "1"})
    return json_response(report)


async def openapi(request: web.Request) -> web.Response:
    return json_response(request.app[OPENAPI])
