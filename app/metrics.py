"""``GET /metrics``: Prometheus metrics in the text format, by prometheus-client.

Requests and Redis round trips are counted in the process that serves them. Under
``--workers`` every worker writes its counts to files in the directory its parent made for
the run (``PROMETHEUS_MULTIPROC_DIR``, prometheus-client's multiprocess mode), and a scrape,
whichever process answers it, adds up every worker's. What Redis holds (documents and index
state per collection, the server's memory) is read at scrape time, in one pipeline of one
``FT.INFO`` per collection and ``INFO memory``, at most once a second per process: its cost
does not grow with the data.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from aiohttp import hdrs, web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
    StateSetMetricFamily,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from redis.exceptions import RedisError

from keyspace import INDEX_STATES, Keyspace, KeyspaceError, ServerStats, System, server_stats

from .errors import ApiError

# A ``_created`` series per counter and histogram doubles the output for a start time that
# process_start_time-style dashboards do not use; multiprocess mode has none anyway.
disable_created_metrics()  # type: ignore[no-untyped-call]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The service answers in about a millisecond: the default buckets start at 5 ms.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # the route label of requests no route serves (404, 405)
FRESH_SECONDS = 1.0  # a scrape within this of the last one reuses what Redis said then
MEMORY = {  # INFO memory field -> metric
    "used_memory": ("multiframe_redis_memory_used_bytes", "Memory the Redis server uses"),
    "used_memory_rss": ("multiframe_redis_memory_rss_bytes", "Its resident set size"),
    "maxmemory": ("multiframe_redis_memory_max_bytes", "Its maxmemory (0: no limit)"),
}


def multiprocess_dir() -> str | None:
    """The multiprocess directory of this process, which prometheus-client also reads (at
    import) to decide where counts go."""
    return os.environ.get(MULTIPROC_ENV) or None


class Metrics:
    """What one process counts: its HTTP requests and its Redis round trips."""

    def __init__(self) -> None:
        self.directory = multiprocess_dir()
        # The samples a scrape reports: this process's own, or in multiprocess mode every
        # process's, read from the directory (the metrics themselves then register nowhere).
        self.registry = CollectorRegistry()
        own = self.registry if self.directory is None else None
        if self.directory is not None:
            MultiProcessCollector(self.registry, path=self.directory)  # type: ignore[no-untyped-call]
        self.requests = Counter(
            "multiframe_http_requests",
            "HTTP requests answered, by route template, method and status",
            ("route", "method", "status"),
            registry=own,
        )
        self.latency = Histogram(
            "multiframe_http_request_duration_seconds",
            "From the request's arrival to its response sent, by route template and method",
            ("route", "method"),
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.in_progress = Gauge(
            "multiframe_http_requests_in_progress",
            "Requests being handled now (every live worker's)",
            registry=own,
            multiprocess_mode="livesum",
        )
        self.rate_limited = Counter(
            "multiframe_rate_limit_refusals",
            "Requests refused with 429 rate_limited, by route template and method",
            ("route", "method"),
            registry=own,
        )
        self.auth_failures = auth_failures_counter(own)
        self.redis = Histogram(
            "multiframe_redis_round_trip_seconds",
            "Redis round trips of the service's pools: from sending a command, pipeline or "
            "script to its first reply, by client (primary or replica)",
            ("client",),
            buckets=REDIS_BUCKETS,
            registry=own,
        )
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def round_trips(self, client: str) -> Callable[[float], None]:
        """The observer of ``client``'s round trips (``keyspace.observe_round_trips``)."""
        return self.redis.labels(client).observe

    def finished(
        self,
        request: web.Request,
        status: int,
        seconds: float,
        response: web.StreamResponse | None,
    ) -> None:
        """Count a request answered with ``status`` after ``seconds``."""
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else UNMATCHED
        method = request.method if request.method in METHODS else "OTHER"
        key = (route, method, status)
        series = self._series.get(key)
        if series is None:  # labels() takes a lock and checks its arguments: once per series
            series = self._series[key] = (
                self.requests.labels(route, method, str(status)),
                self.latency.labels(route, method),
            )
        count, latency = series
        count.inc()
        latency.observe(seconds)
        if status == 429:  # this API's only 429 is the rate limit's (app/auth.py)
            self.rate_limited.labels(route, method).inc()
        elif status == 401:
            count_auth_failure(self.auth_failures, response)


METRICS = web.AppKey("metrics", Metrics)


def auth_failures_counter(registry: CollectorRegistry | None) -> Counter:
    """``multiframe_auth_failures_total``: the API's and the metrics listener's 401s."""
    return Counter(
        "multiframe_auth_failures",
        "401 answers: missing_token (no bearer token) or invalid_token (unknown, expired or wrong)",
        ("reason",),
        registry=registry,
    )


def count_auth_failure(counter: Counter, response: web.StreamResponse | None) -> None:
    """Count a 401 answer, by the reason its challenge gives."""
    challenge = response.headers.get(hdrs.WWW_AUTHENTICATE, "") if response else ""
    reason = "invalid_token" if "invalid_token" in challenge else "missing_token"
    counter.labels(reason).inc()


# What Redis holds, at scrape time ---------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """What Redis said at one scrape (None: it could not be read), as metric families."""

    system: str
    stats: ServerStats | None

    def collect(self) -> Iterator[Metric]:
        yield InfoMetricFamily("multiframe_service", "The system served", {"system": self.system})
        yield GaugeMetricFamily(
            "multiframe_redis_up",
            "1 when this scrape could read Redis",
            float(self.stats is not None),
        )
        if self.stats is None:
            return
        for info_field, (name, text) in MEMORY.items():
            if info_field in self.stats.memory:
                yield GaugeMetricFamily(name, text, float(self.stats.memory[info_field]))
        states = StateSetMetricFamily(
            "multiframe_index_state",
            "Each collection's index: ready, building (lists answer 503), missing, or "
            "no_search (no RediSearch: lists scan)",
            labels=("collection",),
        )
        documents = GaugeMetricFamily(
            "multiframe_documents",
            "Documents per collection, as its index counts them (so far, while it builds)",
            labels=("collection",),
        )
        indexed = GaugeMetricFamily(
            "multiframe_index_indexed_ratio",
            "Share of the existing documents the index has scanned (1: complete)",
            labels=("collection",),
        )
        failures = GaugeMetricFamily(
            "multiframe_index_failures",
            "Documents the index could not index (hash_indexing_failures)",
            labels=("collection",),
        )
        for collection, index in self.stats.indexes.items():
            states.add_metric([collection], {s: s == index.state for s in INDEX_STATES})
            for family, value in (
                (documents, index.documents),
                (indexed, index.indexed),
                (failures, index.failures),
            ):
                if value is not None:
                    family.add_metric([collection], float(value))
        yield from (states, documents, indexed, failures)


class RedisState:
    """Reads ``keyspace.server_stats`` for scrapes, at most once per FRESH_SECONDS."""

    def __init__(self, keyspace: Callable[[], Keyspace], system: System, timeout: float) -> None:
        self.keyspace, self.system, self.timeout = keyspace, system, timeout
        self._last: Snapshot | None = None
        self._at = 0.0

    async def read(self) -> Snapshot:
        now = time.monotonic()
        if self._last is not None and now - self._at < FRESH_SECONDS:
            return self._last
        try:
            async with asyncio.timeout(self.timeout):
                stats: ServerStats | None = await server_stats(self.keyspace())
        except (RedisError, OSError, TimeoutError, KeyspaceError):
            # The scrape still answers: the process's own counts matter most when Redis is down.
            stats = None
        snapshot = Snapshot(self.system.name, stats)
        self._last, self._at = snapshot, now
        return snapshot


# The endpoint -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Both:
    parts: tuple[Collector, ...]

    def collect(self) -> Iterable[Metric]:
        for part in self.parts:
            yield from part.collect()


@dataclass(frozen=True)
class Summed:
    """``parts``' samples as one set: those of the same name and labels added (under
    ``--workers``, the parent's own counts and every worker's)."""

    parts: tuple[Collector, ...]

    def collect(self) -> Iterable[Metric]:
        merged: dict[str, Metric] = {}
        for part in self.parts:
            for family in part.collect():
                into = merged.get(family.name)
                if into is None:
                    into = merged[family.name] = Metric(
                        family.name, family.documentation, family.type, family.unit
                    )
                into.samples.extend(family.samples)
        for family in merged.values():
            sums: dict[tuple[str, tuple[tuple[str, str], ...]], Sample] = {}
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                seen = sums.get(key)
                sums[key] = sample if seen is None else _added(seen, sample.value)
            family.samples = list(sums.values())
            yield family


def _added(sample: Sample, value: float) -> Sample:
    """``sample`` counting ``value`` more (one series summed over processes)."""
    return Sample(
        sample.name,
        sample.labels,
        sample.value + value,
        sample.timestamp,
        sample.exemplar,
        sample.native_histogram,
    )


REALM = 'Bearer realm="metrics"'


def _check(request: web.Request, token: str) -> None:
    scheme, _, given = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise ApiError(
            401,
            "unauthorized",
            "send Authorization: Bearer <MULTIFRAME_METRICS_TOKEN>",
            headers={hdrs.WWW_AUTHENTICATE: REALM},
        )
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise ApiError(
            401,
            "unauthorized",
            "wrong metrics token",
            headers={hdrs.WWW_AUTHENTICATE: REALM + ', error="invalid_token"'},
        )


@dataclass
class Exposition:
    """What ``GET /metrics`` answers: ``source``'s samples (this process's, or every
    worker's) and ``state``'s; only to ``token``'s bearer when it is set."""

    source: Collector
    state: RedisState
    token: str | None = None

    async def respond(self, request: web.Request) -> web.Response:
        if self.token is not None:
            _check(request, self.token)
        snapshot = await self.state.read()
        # Prometheus's own text format, or OpenMetrics when the scraper asks for it.
        encoder, content_type = choose_encoder(request.headers.get(hdrs.ACCEPT, ""))
        body = encoder(_Both((self.source, snapshot)))
        response = web.Response(body=body, headers={hdrs.CONTENT_TYPE: content_type})
        response.enable_compression()  # gzip when the scraper accepts it (Prometheus does)
        return response


EXPOSITION = web.AppKey("exposition", Exposition)


async def serve_metrics(request: web.Request) -> web.Response:
    return await request.app[EXPOSITION].respond(request)
