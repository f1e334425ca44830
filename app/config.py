"""Settings from the environment, with the defaults a local run needs."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from keyspace import (
    MAX_FEED,
    MAX_FEED_AGE,
    ChangeCap,
    Durability,
    Limits,
    is_sentinel,
    keyring,
    parse_endpoint_limits,
    parse_ttls,
)

READ_FROM = ("primary", "replica")


USAGE = 2  # a malformed setting: as a malformed REDIS_URL, and multiframe-admin's usage errors
SECONDS_MAX = 86_400  # a day: more than any of these waits needs, and within what a socket takes
PORT_MAX = 65_535
MAX_CONNECTIONS = 10_000  # Redis's default maxclients


class BadSetting(SystemExit):
    """A setting the service cannot take. ``python -m app`` prints the message, one line
    naming the setting, and exits 2 (:data:`USAGE`) before anything starts."""


def _int(
    env: Mapping[str, str],
    name: str,
    default: int,
    low: int | None = None,
    high: int | None = None,
    unit: str = "",
) -> int:
    """``name`` as a whole number (of ``unit``) from ``low`` to ``high`` (None: unbounded),
    else BadSetting."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadSetting(f"{name} must be an integer, got {raw!r}") from None
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f", at most {high}" if low is None else f", at least {low}"
        if low is not None and high is not None:
            bounds = f" from {low} to {high}"
        of = f" of {unit}" if unit else ""
        raise BadSetting(f"{name} must be a whole number{of}{bounds}, got {raw!r}")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    # 0 would mean "never" to aiohttp; NaN fails too; a socket cannot wait past time_t.
    if not 0 < value <= SECONDS_MAX:
        raise BadSetting(
            f"{name} must be a positive number of seconds, at most {SECONDS_MAX}, got {raw!r}"
        )
    return value


def check_port(value: int, name: str = "MULTIFRAME_PORT") -> int:
    """``value`` if it is a port to listen on (0: any free one, logged), else BadSetting."""
    if not 0 <= value <= PORT_MAX:
        # The kernel would take it modulo 65536: a typo would serve on another port.
        raise BadSetting(
            f"{name} must be a port from 1 to {PORT_MAX} (0: any free port), got {value}"
        )
    return value


ORIGIN = re.compile(r"https?://[a-z0-9.\-\[\]:]+")  # scheme://host[:port], as browsers send it


MAX_WORKERS = 64


def check_workers(value: int, name: str = "MULTIFRAME_WORKERS") -> int:
    """``value`` if it is a worker count the service takes, else BadSetting naming ``name``."""
    if not 1 <= value <= MAX_WORKERS:
        raise BadSetting(f"{name} must be from 1 to {MAX_WORKERS} API processes, got {value}")
    return value


def _origins(env: Mapping[str, str]) -> tuple[str, ...]:
    """``MULTIFRAME_CORS_ORIGINS``: exact origins, comma-separated, or ``*`` for any."""
    raw = env.get("MULTIFRAME_CORS_ORIGINS", "")
    origins = tuple(o.strip().lower() for o in raw.split(",") if o.strip())
    if "*" in origins:
        if len(origins) > 1:
            raise BadSetting("MULTIFRAME_CORS_ORIGINS: '*' allows every origin; list nothing else")
        return origins
    for origin in origins:
        # A trailing slash or path never equals a browser's Origin: refuse it rather than
        # allow nothing silently.
        if not ORIGIN.fullmatch(origin):
            raise BadSetting(
                f"MULTIFRAME_CORS_ORIGINS: {origin!r} is not an origin like https://app.example:8443"
            )
    return origins


def _ttls(env: Mapping[str, str]) -> dict[str, int]:
    """``MULTIFRAME_TTL_SECONDS``; whether each entity expires is checked when its system loads."""
    try:
        return parse_ttls(env.get("MULTIFRAME_TTL_SECONDS", ""))
    except ValueError as exc:
        raise BadSetting(f"MULTIFRAME_TTL_SECONDS: {exc}") from None


def _endpoint_limits(env: Mapping[str, str]) -> dict[str, int]:
    """``MULTIFRAME_ENDPOINT_LIMITS``; whether each endpoint exists is checked with the routes."""
    try:
        return parse_endpoint_limits(env.get("MULTIFRAME_ENDPOINT_LIMITS", ""))
    except ValueError as exc:
        raise BadSetting(f"MULTIFRAME_ENDPOINT_LIMITS: {exc}") from None


LOG_FORMATS = ("text", "json")


def _log_format(raw: str) -> str:
    value = raw.strip().lower() or "text"
    if value not in LOG_FORMATS:
        raise BadSetting(f"MULTIFRAME_LOG_FORMAT must be text or json, got {raw!r}")
    return value


def _listen(raw: str) -> tuple[str, int] | None:
    """``MULTIFRAME_METRICS_LISTEN``: ``host:port`` (an IPv6 host in brackets), or unset."""
    if not raw.strip():
        return None
    host, _, port = raw.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadSetting(
            f"MULTIFRAME_METRICS_LISTEN must be host:port, e.g. 127.0.0.1:9464, got {raw!r}"
        )
    return host, int(port)


def _durability(env: Mapping[str, str]) -> Durability:
    """``MULTIFRAME_MIN_REPLICAS`` and ``MULTIFRAME_MIN_REPLICAS_TIMEOUT_MS``."""
    try:
        return Durability.from_env(env)
    except ValueError as exc:
        raise BadSetting(str(exc)) from None


def _cache_ttl(env: Mapping[str, str]) -> int | None:
    if not env.get("MULTIFRAME_CACHE_TTL_SECONDS"):
        return None
    seconds = _int(env, "MULTIFRAME_CACHE_TTL_SECONDS", 0)
    if seconds < 0:
        raise BadSetting("MULTIFRAME_CACHE_TTL_SECONDS must be 0 (off) or a number of seconds")
    return seconds


def _encryption_key(env: Mapping[str, str]) -> bytes | None:
    try:
        return keyring.configured(env)
    except keyring.KeyringError as exc:
        raise BadSetting(f"cannot start: {exc}") from None


def _on_off(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in ("on", "off"):
        raise BadSetting(f"cannot start: {name} must be on or off, got {raw!r}")
    return raw == "on"


@dataclass(frozen=True)
class Settings:
    """Every knob, named after its environment variable (see README)."""

    redis_url: str | None = None  # REDIS_URL; unset means: start the embedded server
    # MULTIFRAME_READ_FROM: "primary", or "replica": pure reads (lists, counts, aggregations,
    # views, nearness) from a replica: through Sentinel, or MULTIFRAME_REPLICA_URL's server
    read_from: str = "primary"
    replica_url: str | None = None  # MULTIFRAME_REPLICA_URL: the replica of a plain REDIS_URL
    # MULTIFRAME_PIPELINING: "on" (concurrent requests' scripts and reads by id share one
    # connection's writes, keyspace.pipelining) or "off" (one command per pooled connection)
    pipelining: bool = True
    # MULTIFRAME_MIN_REPLICAS / MULTIFRAME_MIN_REPLICAS_TIMEOUT_MS: replicas that must confirm
    # a write before it is acknowledged, and how long to wait for them (keyspace.durability)
    durability: Durability = field(default_factory=Durability)
    system: str = "multiframe"  # MULTIFRAME_SYSTEM, or --system: the system served
    namespace: str | None = None  # MULTIFRAME_NAMESPACE: its key namespace (unset: its default)
    host: str = "127.0.0.1"  # MULTIFRAME_HOST
    port: int = 8080  # MULTIFRAME_PORT
    workers: int = 1  # MULTIFRAME_WORKERS, or --workers: API processes serving the port
    data_dir: Path = Path("var/redis")  # MULTIFRAME_DATA_DIR (embedded server only)
    max_body: int = 1024 * 1024  # MULTIFRAME_MAX_BODY_BYTES
    max_connections: int = 64  # MULTIFRAME_REDIS_MAX_CONNECTIONS
    redis_timeout: float = 5.0  # MULTIFRAME_REDIS_TIMEOUT_SECONDS
    shutdown_timeout: float = 10.0  # MULTIFRAME_SHUTDOWN_TIMEOUT_SECONDS
    keepalive_timeout: float = 75.0  # MULTIFRAME_KEEPALIVE_TIMEOUT_SECONDS (idle, slow headers)
    body_timeout: float = 60.0  # MULTIFRAME_BODY_TIMEOUT_SECONDS (receiving a request body)
    send_timeout: float = 60.0  # MULTIFRAME_SEND_TIMEOUT_SECONDS (delivering a response)
    admin_token: str | None = None  # MULTIFRAME_ADMIN_TOKEN: an admin API key while configured
    # MULTIFRAME_METRICS_TOKEN: when set, GET /metrics needs it as its bearer token
    metrics_token: str | None = None
    # MULTIFRAME_METRICS_LISTEN "host:port": /metrics on a listener of its own, not this port
    metrics_listen: tuple[str, int] | None = None
    log_format: str = "text"  # MULTIFRAME_LOG_FORMAT: text, or json (one object per line)
    # MULTIFRAME_ENCRYPTION_KEY or the file MULTIFRAME_ENCRYPTION_KEY_FILE names: sensitive
    # fields are stored encrypted (docs/encryption.md); None: off, plaintext as the seed's
    encryption_key: bytes | None = field(default=None, repr=False)
    read_per_minute: int = 600  # MULTIFRAME_RATE_READ_PER_MINUTE (designer, engineer)
    write_per_minute: int = 120  # MULTIFRAME_RATE_WRITE_PER_MINUTE (designer, engineer)
    tokens_per_minute: int = 10  # MULTIFRAME_RATE_TOKENS_PER_MINUTE (designer, engineer mints)
    admin_read_per_minute: int = 0  # MULTIFRAME_RATE_ADMIN_READ_PER_MINUTE (0: unlimited)
    admin_write_per_minute: int = 0  # MULTIFRAME_RATE_ADMIN_WRITE_PER_MINUTE (0: unlimited)
    cors_origins: tuple[str, ...] = ()  # MULTIFRAME_CORS_ORIGINS (empty: CORS off)
    # MULTIFRAME_TTL_SECONDS "entity=seconds,...": TTLs of expiring entities (unset: declared)
    ttls: Mapping[str, int] = field(default_factory=dict)
    # MULTIFRAME_CACHE_TTL_SECONDS: seconds cached list answers are kept (None: the system's
    # declared TTL; 0: no lookups); only systems that declare a cache have any.
    cache_ttl: int | None = None
    # MULTIFRAME_ENDPOINT_LIMITS "read=N,write=N,METHOD:/path=N": per-endpoint limits per
    # window, over the system's declared ones (System.rate_limits); only systems declaring
    # them have any.
    endpoint_limits: Mapping[str, int] = field(default_factory=dict)
    # MULTIFRAME_IDEMPOTENCY_TTL_SECONDS: how long a write's outcome is replayed to a retry
    # with its Idempotency-Key; MULTIFRAME_IDEMPOTENCY_IN_FLIGHT_SECONDS: how long a claim
    # of a request in flight holds the key (a process that died mid-request frees it then)
    idempotency_ttl_seconds: int = 86_400
    idempotency_in_flight_seconds: int = 60
    # The change feed (docs/changes.md): MULTIFRAME_CHANGES_MAXLEN events at most (about),
    # none older than MULTIFRAME_CHANGES_MAX_AGE seconds; a stream's heartbeat every
    # MULTIFRAME_CHANGES_HEARTBEAT_SECONDS while idle; MULTIFRAME_CHANGES_QUEUE events a
    # subscriber may fall behind before it is dropped (it resumes with Last-Event-ID).
    changes_maxlen: int = 100_000
    changes_max_age: int = 86_400
    changes_heartbeat: float = 15.0
    changes_queue: int = 1000

    def changes_cap(self) -> ChangeCap:
        return ChangeCap(self.changes_maxlen, self.changes_max_age)

    def reader_url(self) -> str | None:
        """The URL pure reads go to (``keyspace.connect_replica``), or None: the primary.
        ValueError when replica reads are asked for without a replica to read."""
        if self.read_from not in READ_FROM:
            raise ValueError(f"MULTIFRAME_READ_FROM must be primary or replica: {self.read_from!r}")
        if self.read_from == "primary":
            return None
        if self.replica_url:
            return self.replica_url
        if self.redis_url is not None and is_sentinel(self.redis_url):
            return self.redis_url
        raise ValueError(
            "MULTIFRAME_READ_FROM=replica needs replicas: REDIS_URL=redis+sentinel://... "
            "(see `multiframe-admin ha up`), or MULTIFRAME_REPLICA_URL naming a replica"
        )

    def check_durability(self) -> None:
        """ValueError when ``MULTIFRAME_MIN_REPLICAS`` cannot be met: the embedded server has
        no replicas, and a WAIT as long as the Redis timeout would be cut off."""
        if self.durability.replicas and self.redis_url is None:
            raise ValueError(
                "MULTIFRAME_MIN_REPLICAS needs replicas, and the embedded server has none: "
                "REDIS_URL=redis+sentinel://... (see `multiframe-admin ha up`), or unset it"
            )
        self.durability.check(self.redis_timeout)

    def limits(self) -> Limits:
        return Limits(
            designer_read=self.read_per_minute,
            designer_write=self.write_per_minute,
            designer_mint=self.tokens_per_minute,
            engineer_read=self.read_per_minute,
            engineer_write=self.write_per_minute,
            engineer_mint=self.tokens_per_minute,
            admin_read=self.admin_read_per_minute,
            admin_write=self.admin_write_per_minute,
            # Provisioning tokens for many users is an admin's job: mints count as writes.
            admin_mint=self.admin_write_per_minute,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            redis_url=env.get("REDIS_URL") or None,
            read_from=env.get("MULTIFRAME_READ_FROM") or cls.read_from,
            replica_url=env.get("MULTIFRAME_REPLICA_URL") or None,
            pipelining=_on_off(env, "MULTIFRAME_PIPELINING", cls.pipelining),
            durability=_durability(env),
            system=env.get("MULTIFRAME_SYSTEM") or cls.system,
            namespace=env.get("MULTIFRAME_NAMESPACE"),
            host=env.get("MULTIFRAME_HOST", cls.host),
            port=check_port(_int(env, "MULTIFRAME_PORT", cls.port)),
            workers=check_workers(_int(env, "MULTIFRAME_WORKERS", cls.workers)),
            data_dir=Path(env.get("MULTIFRAME_DATA_DIR", str(cls.data_dir))),
            # 0 would be no limit to aiohttp
            max_body=_int(env, "MULTIFRAME_MAX_BODY_BYTES", cls.max_body, 1, unit="bytes"),
            max_connections=_int(
                env, "MULTIFRAME_REDIS_MAX_CONNECTIONS", cls.max_connections, 1, MAX_CONNECTIONS
            ),
            # 0 would time every connect out at once: a start retrying for ever
            redis_timeout=float(
                _int(env, "MULTIFRAME_REDIS_TIMEOUT_SECONDS", 5, 1, SECONDS_MAX, "seconds")
            ),
            shutdown_timeout=float(
                _int(env, "MULTIFRAME_SHUTDOWN_TIMEOUT_SECONDS", 10, 0, SECONDS_MAX, "seconds")
            ),
            keepalive_timeout=_seconds(
                env, "MULTIFRAME_KEEPALIVE_TIMEOUT_SECONDS", cls.keepalive_timeout
            ),
            body_timeout=_seconds(env, "MULTIFRAME_BODY_TIMEOUT_SECONDS", cls.body_timeout),
            send_timeout=_seconds(env, "MULTIFRAME_SEND_TIMEOUT_SECONDS", cls.send_timeout),
            admin_token=env.get("MULTIFRAME_ADMIN_TOKEN") or None,
            metrics_token=env.get("MULTIFRAME_METRICS_TOKEN") or None,
            metrics_listen=_listen(env.get("MULTIFRAME_METRICS_LISTEN", "")),
            log_format=_log_format(env.get("MULTIFRAME_LOG_FORMAT", "")),
            encryption_key=_encryption_key(env),
            read_per_minute=_int(env, "MULTIFRAME_RATE_READ_PER_MINUTE", 600, 0),
            write_per_minute=_int(env, "MULTIFRAME_RATE_WRITE_PER_MINUTE", 120, 0),
            tokens_per_minute=_int(env, "MULTIFRAME_RATE_TOKENS_PER_MINUTE", 10, 0),
            admin_read_per_minute=_int(env, "MULTIFRAME_RATE_ADMIN_READ_PER_MINUTE", 0, 0),
            admin_write_per_minute=_int(env, "MULTIFRAME_RATE_ADMIN_WRITE_PER_MINUTE", 0, 0),
            cors_origins=_origins(env),
            ttls=_ttls(env),
            cache_ttl=_cache_ttl(env),
            endpoint_limits=_endpoint_limits(env),
            idempotency_ttl_seconds=_int(
                env, "MULTIFRAME_IDEMPOTENCY_TTL_SECONDS", 86_400, 1, 7 * SECONDS_MAX, "seconds"
            ),
            idempotency_in_flight_seconds=_int(
                env, "MULTIFRAME_IDEMPOTENCY_IN_FLIGHT_SECONDS", 60, 1, SECONDS_MAX, "seconds"
            ),
            changes_maxlen=_int(env, "MULTIFRAME_CHANGES_MAXLEN", 100_000, 1, MAX_FEED, "events"),
            changes_max_age=_int(
                env, "MULTIFRAME_CHANGES_MAX_AGE", 86_400, 1, MAX_FEED_AGE, "seconds"
            ),
            changes_heartbeat=_seconds(
                env, "MULTIFRAME_CHANGES_HEARTBEAT_SECONDS", cls.changes_heartbeat
            ),
            changes_queue=_int(env, "MULTIFRAME_CHANGES_QUEUE", 1000, 1, MAX_FEED, "events"),
        )
