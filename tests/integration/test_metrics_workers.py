"""``GET /metrics`` of ``python -m app --workers 2`` as a real process tree (issue 18): one
scrape, whichever worker answers it, adds up both workers' counts; a worker replaced keeps
its counts in the totals; the run's metrics directory is removed at the stop; with
``MULTIFRAME_METRICS_LISTEN`` the parent serves the scrape on its own port, behind
``MULTIFRAME_METRICS_TOKEN``, its 401s counted with the workers'.
``MULTIFRAME_LOG_FORMAT=json``: every line a JSON object."""

from __future__ import annotations

import http.client
import json
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from keyspace.server import free_port
from tests.api.test_metrics import Samples, parse, value

from .test_workers import TOKEN, service, status

pytestmark = pytest.mark.redis

LOAD = 40  # requests, each on a connection of its own: the kernel spreads them over both
REQUESTS = "multiframe_http_requests_total"
ROUND_TRIPS = "multiframe_redis_round_trip_seconds_count"


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def documents(samples: Samples) -> float:
    """The users counted by their index (the operator's token is no user: maybe 0)."""
    key = ("multiframe_documents", frozenset({("collection", "users")}))
    assert key in samples, sorted(k for k in samples if k[0] == key[0])
    return samples[key]


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def scrape(port: int, headers: dict[str, str] | None = None) -> Samples:
    code, text = get(port, "/metrics", headers)
    assert code == 200, text
    return parse(text)


def load(port: int) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: status(port, "/api/users", TOKEN), range(LOAD)))
    assert statuses == [200] * LOAD


def until(check: Callable[[], Any], what: str, seconds: float = 10.0) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
    return found


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_one_scrape_adds_up_both_workers_and_logs_are_json_lines(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"  # where the parent makes the run's metrics directory
    temp.mkdir()
    extra = {"MULTIFRAME_ADMIN_TOKEN": TOKEN, "MULTIFRAME_LOG_FORMAT": "json", "TMPDIR": str(temp)}
    with service(tmp_path, **extra) as run:
        load(run.port)
        served = until(
            lambda: [
                line
                for line in json_lines(run.output())
                if line["message"].startswith("GET /api/users 200 ")
            ][LOAD - 1 :],
            "every request's access line",
        )
        access = [
            line
            for line in json_lines(run.output())
            if line["message"].startswith("GET /api/users 200 ")
        ]
        assert served and len(access) == LOAD
        # Both served some: neither worker's own counts alone make the total.
        assert {line["pid"] for line in access} == set(run.workers())
        assert all(line["logger"] == "multiframe.api" and line["request_id"] for line in access)
        for _ in range(4):  # each scrape on a new connection: both workers answer some
            samples = scrape(run.port)
            assert value(samples, REQUESTS, route="/api/users", method="GET", status="200") == LOAD
            assert value(samples, ROUND_TRIPS, client="primary") >= LOAD

        code, _ = get(
            run.port, "/api/users", {"Authorization": f"Bearer {TOKEN}", "X-Request-ID": "it-7"}
        )
        assert code == 200
        traced = until(
            lambda: [line for line in json_lines(run.output()) if line.get("request_id") == "it-7"],
            "the access line of it-7",
        )
        assert traced[0]["message"].startswith("GET /api/users 200 ")

        # A worker killed and replaced: its counts stay in the totals, its live gauges go.
        (directory,) = temp.iterdir()
        first, _ = run.workers()
        assert (directory / f"counter_{first}.db").exists()
        assert (directory / f"gauge_livesum_{first}.db").exists()
        os.kill(first, signal.SIGKILL)
        until(lambda: " serving again (pid " in run.output(), "the replacement serving")
        assert not (directory / f"gauge_livesum_{first}.db").exists()
        samples = scrape(run.port)
        assert value(samples, REQUESTS, route="/api/users", method="GET", status="200") == LOAD + 1
        assert value(samples, "multiframe_http_requests_in_progress") == 1  # this scrape
    output = run.output()
    assert "workers stopped" in output
    # Every line the service wrote, the parent's and the workers', is one JSON object.
    assert len(json_lines(output)) == len(output.strip().splitlines()) > LOAD
    assert list(temp.iterdir()) == []  # the run's metrics directory removed


def test_the_parent_serves_a_listener_of_its_own_behind_its_token(tmp_path: Path) -> None:
    port, token = free_port(), "metrics-token-0123456789"
    extra = {
        "MULTIFRAME_ADMIN_TOKEN": TOKEN,
        "MULTIFRAME_METRICS_LISTEN": f"127.0.0.1:{port}",
        "MULTIFRAME_METRICS_TOKEN": token,
    }
    with service(tmp_path, **extra) as run:
        load(run.port)
        assert get(run.port, "/metrics")[0] == 404  # not on the API's port
        assert get(port, "/metrics")[0] == 401
        assert get(port, "/metrics", AUTH)[0] == 401
        assert status(run.port, "/api/users", "not-a-token") == 401  # a worker's
        auth = {"Authorization": f"Bearer {token}"}
        samples = until(
            lambda: (
                (s := scrape(port, auth))
                and value(s, REQUESTS, route="/api/users", method="GET", status="200") == LOAD
                and s
            ),
            "both workers' counts in the parent's scrape",
        )
        # The listener's 401s (the parent's) are added to the workers' in one series each.
        failures = "multiframe_auth_failures_total"
        assert value(samples, failures, reason="missing_token") == 1
        assert value(samples, failures, reason="invalid_token") == 2
        assert value(samples, ROUND_TRIPS, client="primary") >= LOAD
        assert value(samples, "multiframe_redis_up") == 1
        assert value(samples, "multiframe_redis_memory_used_bytes") > 0
        code, listed = get(run.port, "/api/users", AUTH)
        assert code == 200 and documents(samples) == json.loads(listed)["total"]
