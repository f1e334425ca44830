"""``redis+sentinel://`` URLs parsed, refused when malformed (before any I/O), accepted by the
CLI and the settings; failover errors answered 503 ``redis_unavailable``, never 500."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio.sentinel import MasterNotFoundError
from redis.exceptions import ReadOnlyError, ResponseError

from app.__main__ import shown
from app.config import Settings
from app.errors import error_middleware
from keyspace.sentinel import SentinelUrl, is_sentinel, parse
from scripts.cli import main
from scripts.exits import USAGE


def test_a_full_url() -> None:
    url = "redis+sentinel://multiframe:p%40ss@127.0.0.1:26379,localhost:26380,[::1]/mf/3"
    assert parse(url) == SentinelUrl(
        sentinels=(("127.0.0.1", 26379), ("localhost", 26380), ("::1", 26379)),
        service="mf",
        db=3,
        username="multiframe",
        password="p@ss",
        sentinel_username="multiframe",
        sentinel_password="p@ss",
    )


def test_sentinels_with_other_or_no_credentials() -> None:
    other = parse("redis+sentinel://u:p@h:1/mf?sentinel_username=s&sentinel_password=q")
    assert (other.username, other.password) == ("u", "p")
    assert (other.sentinel_username, other.sentinel_password) == ("s", "q")
    none = parse("redis+sentinel://u:p@h:1/mf?sentinel_password=")
    assert (none.sentinel_username, none.sentinel_password) == (None, None)
    bare = parse("rediss+sentinel://h:1/mf")
    assert (bare.username, bare.password, bare.db, bare.tls) == (None, None, 0, True)


@pytest.mark.parametrize(
    ("url", "mentions"),
    [
        ("redis+sentinel://h:1", "/<service-name>"),
        ("redis+sentinel://h:1/mf/x", "database must be a number"),
        ("redis+sentinel://h:1/mf/0/extra", "/<service-name>"),
        ("redis+sentinel:///mf", "at least one sentinel"),
        ("redis+sentinel://h:port/mf", "not a sentinel address"),
        ("redis+sentinel://h:1/mf?ssl=1", "unknown"),
        ("redis://h:1/0", "not a redis.sentinel:"),
    ],
)
def test_malformed_urls_say_what_is_wrong(url: str, mentions: str) -> None:
    with pytest.raises(ValueError, match=mentions):
        parse(url)


def test_the_cli_refuses_a_malformed_sentinel_url(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--redis-url", "redis+sentinel://h:1", "check"])
    assert exit_.value.code == USAGE
    assert "/<service-name>" in capsys.readouterr().err


def test_replica_reads_need_replicas() -> None:
    sentinel = "redis+sentinel://h:1/mf"
    assert is_sentinel(sentinel) and not is_sentinel("redis://h:1/0")
    assert Settings(redis_url=sentinel).reader_url() is None
    assert Settings(redis_url=sentinel, read_from="replica").reader_url() == sentinel
    plain = Settings(redis_url="redis://p:1/0", read_from="replica", replica_url="redis://r:2/0")
    assert plain.reader_url() == "redis://r:2/0"
    with pytest.raises(ValueError, match="needs replicas"):
        Settings(redis_url="redis://p:1/0", read_from="replica").reader_url()
    with pytest.raises(ValueError, match="needs replicas"):
        Settings(read_from="replica").reader_url()  # the embedded server has none
    with pytest.raises(ValueError, match="primary or replica"):
        Settings(read_from="replicas").reader_url()
    env = {"REDIS_URL": sentinel, "MULTIFRAME_READ_FROM": "replica"}
    assert Settings.from_env(env).reader_url() == sentinel


FAILOVER_ERRORS = {
    "master-not-found": MasterNotFoundError("No master found for 'multiframe'"),
    "readonly": ReadOnlyError("You can't write against a read only replica."),
    "readonly-in-script": ResponseError(
        "READONLY You can't write against a read only replica. script: abc, on @user_script:7."
    ),
    "masterdown": ResponseError("MASTERDOWN Link with MASTER is down"),
    # Not a failover, but as transient: a long script holds the server (review 22).
    "busy": ResponseError(
        "BUSY Redis is busy running a script. You can only call SCRIPT KILL or FUNCTION KILL."
    ),
}


async def test_failover_errors_answer_503_with_retry_after() -> None:
    async def fail(request: web.Request) -> web.Response:
        raise FAILOVER_ERRORS[request.match_info["kind"]]

    async def other(request: web.Request) -> web.Response:
        raise ResponseError("ERR something else")

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/fail/{kind}", fail)

    async def busygroup(request: web.Request) -> web.Response:
        raise ResponseError("BUSYGROUP Consumer Group name already exists")

    app.router.add_get("/other", other)
    app.router.add_get("/busygroup", busygroup)
    async with TestClient(TestServer(app)) as client:
        for kind in FAILOVER_ERRORS:
            resp = await client.get(f"/fail/{kind}")
            body = await resp.json()
            assert (resp.status, body["error"]["code"]) == (503, "redis_unavailable"), kind
            assert resp.headers["Retry-After"] == "2"
        resp = await client.get("/other")  # any other Redis error stays a logged 500
        assert resp.status == 500
        resp = await client.get("/busygroup")  # a consumer group's name taken: no busy server
        assert resp.status == 500


def test_messages_show_no_password() -> None:
    url = (
        "redis+sentinel://multiframe:s3cret@h:1,h:2/mf/0?sentinel_password=t0p&sentinel_username=s"
    )
    assert shown(url) == "redis+sentinel://h:1,h:2/mf/0?sentinel_username=s"
