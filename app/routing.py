"""What a route is: one operation of the API, as data (the route table is ``app/routes.py``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from keyspace import EntitySpec, View

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    """One operation. ``body``/``returns`` name component schemas; ``lists`` marks list queries."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: str | None = None
    returns: str | None = None
    lists: EntitySpec | None = None
    aggregates: EntitySpec | None = None  # an aggregation of it (app/aggregates.py)
    view: View | None = None  # a declared read route (app/views.py)
    conditional: bool = False
    prefetch: EntitySpec | None = None  # GET by id: read in the authorization round trip
    authorizes_itself: bool = False  # the handler authorizes inside its commit (app/auth.py)
    rate_class: str | None = None  # its own rate limit (keyspace Limits), not read/write
    status: int = 200
    errors: tuple[int, ...] = field(default=())
    notes: tuple[tuple[int, str], ...] = ()  # (status, what the route adds to its description)
    body_required: bool = True  # False: the body may be left out (its fields are optional)
    query: tuple[Param, ...] = ()  # query parameters besides a list's (``lists``)
    idempotent: bool = False  # honours Idempotency-Key (app/idempotency.py)


@dataclass(frozen=True)
class Param:
    """One integer query parameter of a route that is not a list query."""

    name: str
    description: str
    minimum: int = 0


def model_name(spec: EntitySpec) -> str:
    return spec.model.__name__


def member_body(target: EntitySpec) -> str:
    """The request body that adds one member to an array of ``target`` ids."""
    return f"{model_name(target)}Member"


def aggregate_schema(spec: EntitySpec) -> str:
    """The answer of ``GET /api/<collection>/aggregate``."""
    return f"{model_name(spec)}Aggregate"


def search_body(spec: EntitySpec) -> str:
    """The request body of a nearness search of ``spec``."""
    return f"{model_name(spec)}Search"


def profile_schema(spec: EntitySpec) -> str:
    """The answer of ``spec``'s profile route (a user_profiles entity may be ``UserProfile``)."""
    return f"{model_name(spec)}PublicProfile"
