"""Per-endpoint rate limits, the pure parts: endpoint names, a declaration's limit of a route,
the configuration's overrides, the authorize call's keys and arguments, and backups leaving
the keys out."""

from __future__ import annotations

import re

import pytest

from app.config import Settings
from keyspace import EndpointLimit, EndpointLimits, Limits, endpoint_name, parse_endpoint_limits
from keyspace.keys import Names
from keyspace.systems.neuraforge import SYSTEM as NF
from keyspace.tokens import Authorization
from scripts.verify import momentary

NS = Names("lab:")


def test_an_endpoint_is_its_method_and_route_template() -> None:
    assert endpoint_name("GET", "/api/projects/{id}") == "GET:/api/projects/{id}"
    assert endpoint_name("HEAD", "/api/projects/{id}") == "GET:/api/projects/{id}"
    assert endpoint_name("POST", "/api/projects") == "POST:/api/projects"


def test_reads_and_writes_have_defaults_an_endpoint_may_override() -> None:
    rules = EndpointLimits(read=50, write=5, endpoints={"GET:/api/projects": 7, "PUT:/x": 0})
    assert rules.of("GET", "/api/projects") == EndpointLimit("GET:/api/projects", 7, 3_600_000)
    head = rules.of("HEAD", "/api/users/{id}")
    assert head == EndpointLimit("GET:/api/users/{id}", 50, 3_600_000)
    assert rules.of("DELETE", "/api/users/{id}") == EndpointLimit(
        "DELETE:/api/users/{id}", 5, 3_600_000
    )
    assert rules.of("PUT", "/x") is None  # 0: unlimited
    assert EndpointLimits(read=0).of("GET", "/api/x") is None


def test_configuration_overrides_the_declaration() -> None:
    declared = EndpointLimits(read=100, write=100, endpoints={"GET:/a": 3}, window_seconds=60)
    raw = " read=1000 , GET:/api/projects/{id}=20,write=10,"
    configured = declared.configured(parse_endpoint_limits(raw))
    assert configured == EndpointLimits(
        read=1000,
        write=10,
        endpoints={"GET:/a": 3, "GET:/api/projects/{id}": 20},
        window_seconds=60,
    )
    assert declared.configured({}) == declared


@pytest.mark.parametrize(
    "raw", ["read", "read=x", "read=-1", "reads=1", "get:/a=1", "GET:a=1", "read=1,read=2"]
)
def test_malformed_overrides_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match=r"given twice|is not read=N"):
        parse_endpoint_limits(raw)


def test_the_environment_names_the_overrides() -> None:
    env = {"MULTIFRAME_ENDPOINT_LIMITS": "GET:/api/projects=1000,write=100"}
    assert Settings.from_env(env).endpoint_limits == {"GET:/api/projects": 1000, "write": 100}
    assert Settings.from_env({}).endpoint_limits == {}
    with pytest.raises(SystemExit, match="MULTIFRAME_ENDPOINT_LIMITS"):
        Settings.from_env({"MULTIFRAME_ENDPOINT_LIMITS": "projects=3"})


def test_the_seeds_key_names_inside_the_namespace() -> None:
    assert NS.endpoint_rate_key("u1", "GET:/api/p/{id}") == "lab:rate_limit:u1:GET:/api/p/{id}"
    assert NS.endpoint_window_key("u1", "GET:/x") == "lab:rate_limit:window:u1:GET:/x"
    assert Names().endpoint_rate_key("u1", "GET:/x") == "rate_limit:u1:GET:/x"


def test_the_authorize_call_carries_the_endpoint_keys_and_limit() -> None:
    plain = Authorization.of(NS, "m", "d", "u1", "", "read", Limits())
    assert len(plain.keys) == 4 and len(plain.args) == 13
    limits = Limits(endpoint=EndpointLimit("GET:/x", 7, 60_000))
    asked = Authorization.of(NS, "m", "d", "u1", "", "read", limits)
    assert asked.keys[:4] == plain.keys
    assert asked.keys[4:] == ["lab:rate_limit:u1:GET:/x", "lab:rate_limit:window:u1:GET:/x"]
    # authorize.lua (and authorized_commit.lua) take the endpoint keys exactly when #ARGV >= 15.
    assert asked.args == [*plain.args, 7, 60_000]


def test_backups_leave_the_per_endpoint_state_out() -> None:
    assert momentary(NS, "lab:rate_limit:u1:GET:/x")
    assert momentary(NS, "lab:rate_limit:window:u1:GET:/x")
    assert not momentary(NS, "lab:users:u1")


def test_neuraforge_declares_the_seeds_hundred_an_hour() -> None:
    assert NF.rate_limits == EndpointLimits(read=100, write=100, window_seconds=3600)
    assert NF.served().rate_limits == NF.rate_limits


def test_the_readmes_endpoint_spelling_is_accepted_and_a_wrong_one_is_one_line() -> None:
    """README's MULTIFRAME_ENDPOINT_LIMITS example names routes as the route table does
    (review finding: its `{document_id}` stopped the start with a traceback)."""
    import fakeredis

    from app import create_app
    from app.config import Settings

    client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), protocol=2)
    ok = Settings.from_env(
        {
            "MULTIFRAME_SYSTEM": "neuraforge",
            "MULTIFRAME_ENDPOINT_LIMITS": "POST:/api/documents/{id}/lock=5",
            "REDIS_URL": "redis://x",
        }
    )
    create_app(ok, client=client)
    wrong = Settings.from_env(
        {
            "MULTIFRAME_SYSTEM": "neuraforge",
            "MULTIFRAME_ENDPOINT_LIMITS": "POST:/api/documents/{document_id}/lock=5",
            "REDIS_URL": "redis://x",
        }
    )
    with pytest.raises(
        ValueError, match=re.escape("serves no POST:/api/documents/{document_id}/lock")
    ):
        create_app(wrong, client=client)
