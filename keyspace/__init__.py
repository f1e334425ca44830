"""The MultiFrame keyspace: seed-shaped RedisJSON documents, counters, atomic Lua writes
and RediSearch queries, declared as data.

Typical use::

    client = redis.asyncio.Redis.from_url(url)       # decode_responses=False
    ks = Keyspace(client)
    await ks.setup()
    user = await ks.create(USER, {"username": "Holo", "email": "holo@misha.com", "role": "admin"})
    page = await ks.list(DRIVER, parse(DRIVER, {"user_id": ["user_1"], "sort": ["-cores"]}))
"""

from . import (
    changes,
    crypto,
    demo,
    embedding,
    feed,
    keyring,
    migrating,
    migrations,
    rekeying,
    sparse,
    systems,
    vectors,
    viewing,
)
from .acl import SERVICE_USER
from .aggregate import (
    MAX_COMMANDS,
    MAX_GROUP_FIELDS,
    MAX_GROUPS,
    MAX_METRICS,
    Aggregate,
    Aggregation,
    group_fields,
    metric_fields,
    parse_aggregation,
)
from .aggregate import Result as AggregateResult
from .aggregating import run_declared
from .batch import MAX_ITEMS as MAX_BATCH
from .batch import BatchRefused
from .cache import AnswerCache, CacheRules, params_hash
from .capabilities import Capabilities
from .changes import MAX_FEED, MAX_FEED_AGE, ChangeCap
from .connection import check_url, connect, connect_replica, observe_round_trips
from .durability import Durability
from .engine import Keyspace
from .errors import (
    AlreadyExists,
    Conflict,
    Contention,
    CounterExhausted,
    HasDependents,
    Held,
    IdCollision,
    InvalidTransition,
    KeyspaceError,
    MissingReference,
    NotDurable,
    NotFound,
    NotReady,
    OutsideImportWindow,
    StaleRevision,
    UniqueConflict,
    Unreadable,
    ValidationFailed,
    WrongType,
)
from .features import Expiry, Lockable, OpLog, Profile
from .keyring import KeyRetired
from .keys import is_lookup_id
from .listing import Page
from .locks import Lock, Locked, NotLocked, NotLockHolder, StaleFencingToken
from .oplog import Appended, Gone, OpPage, parse_op_query
from .query import COUNTS, DEFAULT_LIMIT, MAX_LIMIT, Query, parse
from .schema import (
    EntitySpec,
    FieldKind,
    Indexed,
    Reference,
    Schema,
    SingletonSpec,
)
from .scripts import CommitResult
from .sentinel import is_sentinel, sync_primary_client
from .server import EmbeddedRedis, EmbeddedRedisError
from .stats import INDEX_STATES, IndexStats, ServerStats, server_stats
from .store import Guard, PreparedCreate, Stored
from .system import ADMIN, System, parse_ttls
from .systems.multiframe.entities import (
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
from .tokens import (
    Decision,
    EndpointLimit,
    EndpointLimits,
    Limits,
    TokenKind,
    endpoint_name,
    parse_endpoint_limits,
)
from .views import Groups, One, Rows, View

__all__ = [
    "ADMIN",
    "ANALYTICS",
    "COLLAB",
    "COUNTS",
    "DEFAULT_LIMIT",
    "DRIVER",
    "INDEX_STATES",
    "MAX_BATCH",
    "MAX_COMMANDS",
    "MAX_FEED",
    "MAX_FEED_AGE",
    "MAX_GROUPS",
    "MAX_GROUP_FIELDS",
    "MAX_LIMIT",
    "MAX_METRICS",
    "MULTIFRAME",
    "NFT",
    "PROCESS",
    "QUEST",
    "SERVICE_USER",
    "SYSTEM_CONFIG",
    "USER",
    "Aggregate",
    "AggregateResult",
    "Aggregation",
    "AlreadyExists",
    "AnswerCache",
    "Appended",
    "BatchRefused",
    "CacheRules",
    "Capabilities",
    "ChangeCap",
    "CommitResult",
    "Conflict",
    "Contention",
    "CounterExhausted",
    "Decision",
    "Durability",
    "EmbeddedRedis",
    "EmbeddedRedisError",
    "EndpointLimit",
    "EndpointLimits",
    "EntitySpec",
    "Expiry",
    "FieldKind",
    "Gone",
    "Groups",
    "Guard",
    "HasDependents",
    "Held",
    "IdCollision",
    "IndexStats",
    "Indexed",
    "InvalidTransition",
    "KeyRetired",
    "Keyspace",
    "KeyspaceError",
    "Limits",
    "Lock",
    "Lockable",
    "Locked",
    "MissingReference",
    "NotDurable",
    "NotFound",
    "NotLockHolder",
    "NotLocked",
    "NotReady",
    "One",
    "OpLog",
    "OpPage",
    "OutsideImportWindow",
    "Page",
    "PreparedCreate",
    "Profile",
    "Query",
    "Reference",
    "Rows",
    "Schema",
    "ServerStats",
    "SingletonSpec",
    "StaleFencingToken",
    "StaleRevision",
    "Stored",
    "System",
    "TokenKind",
    "UniqueConflict",
    "Unreadable",
    "ValidationFailed",
    "View",
    "WrongType",
    "changes",
    "check_url",
    "connect",
    "connect_replica",
    "crypto",
    "demo",
    "embedding",
    "endpoint_name",
    "feed",
    "group_fields",
    "is_lookup_id",
    "is_sentinel",
    "keyring",
    "metric_fields",
    "migrating",
    "migrations",
    "observe_round_trips",
    "params_hash",
    "parse",
    "parse_aggregation",
    "parse_endpoint_limits",
    "parse_op_query",
    "parse_ttls",
    "rekeying",
    "run_declared",
    "server_stats",
    "sparse",
    "sync_primary_client",
    "systems",
    "vectors",
    "viewing",
]
