"""Typed application state."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from keyspace import Keyspace
from keyspace.tokens import Limits

from .config import Settings
from .policy import Caller

KEYSPACE = web.AppKey("keyspace", Keyspace)
SETTINGS = web.AppKey("settings", Settings)


def keyspace(request: web.Request) -> Keyspace:
    return request.app[KEYSPACE]


OPENAPI = web.AppKey("openapi", dict[str, Any])
LIMITS = web.AppKey("limits", Limits)
CALLER = web.RequestKey("caller", Caller)
