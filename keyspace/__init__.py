"""The MultiFrame keyspace: seed-shaped RedisJSON documents, counters, atomic Lua writes
and RediSearch queries, declared as data.

Typical use::

    client = redis.asyncio.Redis.from_url(url)       # decode_responses=False
    ks = Keyspace(client)
    await ks.setup()
    user = await ks.create(USER, {"username": "Holo", "email": "holo@misha.com", "role": "admin"})
    page = await ks.list(DRIVER, parse(DRIVER, {"user_id": ["user_1"], "sort": ["-cores"]}))
"""

from .api import Capabilities, Keyspace
from .connection import connect
from .entities import (
    ANALYTICS,
    COLLAB,
    DRIVER,
    MULTIFRAME,
    NFT,
    PROCESS,
    QUEST,
    SYSTEM_CONFIG,
    USER,
)
from .errors import (
    AlreadyExists,
    Conflict,
    Contention,
    CounterExhausted,
    HasDependents,
    IdCollision,
    InvalidTransition,
    KeyspaceError,
    MissingReference,
    NotFound,
    NotReady,
    OutsideImportWindow,
    StaleRevision,
    UniqueConflict,
    ValidationFailed,
    WrongType,
)
from .listing import Page
from .query import Query, parse
from .schema import EntitySpec, Schema, SingletonSpec
from .scripts import CommitResult
from .store import Stored

__all__ = [
    "ANALYTICS",
    "COLLAB",
    "DRIVER",
    "MULTIFRAME",
    "NFT",
    "PROCESS",
    "QUEST",
    "SYSTEM_CONFIG",
    "USER",
    "AlreadyExists",
    "Capabilities",
    "CommitResult",
    "Conflict",
    "Contention",
    "CounterExhausted",
    "EntitySpec",
    "HasDependents",
    "IdCollision",
    "InvalidTransition",
    "Keyspace",
    "KeyspaceError",
    "MissingReference",
    "NotFound",
    "NotReady",
    "OutsideImportWindow",
    "Page",
    "Query",
    "Schema",
    "SingletonSpec",
    "StaleRevision",
    "Stored",
    "UniqueConflict",
    "ValidationFailed",
    "WrongType",
    "connect",
    "parse",
]
