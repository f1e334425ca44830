"""Typed application state."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from keyspace import EntitySpec, Keyspace, Limits, System

from .config import Settings
from .policy import Caller


@dataclass(frozen=True)
class Prefetched:
    """The document a GET by id asked for, read in the authorization round trip."""

    raw: bytes | None


KEYSPACE = web.AppKey("keyspace", Keyspace)
# Set once a worker of --workers has read what it needs from Redis (app/startup.py attach).
ATTACHED = web.AppKey("attached", asyncio.Event)
SETTINGS = web.AppKey("settings", Settings)


def keyspace(request: web.Request) -> Keyspace:
    return request.app[KEYSPACE]


SYSTEM = web.AppKey("system", System)


def system(request: web.Request) -> System:
    return request.app[SYSTEM]


OPENAPI = web.AppKey("openapi", dict[str, Any])
LIMITS = web.AppKey("limits", Limits)
CALLER = web.RequestKey("caller", Caller)
PREFETCH = web.AppKey("prefetch", dict[str, EntitySpec])  # route path -> entity of GET-by-id routes
PREFETCHED = web.RequestKey("prefetched", Prefetched)
# (method, route path) of the routes whose handlers authorize inside their own commit.
SELF_AUTHORIZING = web.AppKey("self_authorizing", frozenset[tuple[str, str]])
# (method, route path) -> rate-limit class of routes limited apart from reads and writes.
RATE_CLASSES = web.AppKey("rate_classes", dict[tuple[str, str], str])
TOKEN = web.RequestKey("token", str)  # the bearer token, kept for a self-authorizing handler
RATE_HEADERS = web.RequestKey("rate_headers", dict[str, str])
