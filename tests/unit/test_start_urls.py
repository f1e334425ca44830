"""``python -m app``'s Redis URLs: a malformed REDIS_URL or MULTIFRAME_REPLICA_URL stops the
start with one line naming the setting (exit 2) before any process starts, and ``shown()``
(every message quoting a URL) never raises and never shows a password."""

from __future__ import annotations

import pytest

from app.__main__ import USAGE, check_urls, shown
from app.config import Settings


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://u:secretpw@h:6379/0", "redis://h:6379/0"),
        ("redis://u:secretpw@[::1:6379/0", "redis://[::1:6379/0"),  # urlsplit refuses it
        ("redis+sentinel://u:secretpw@[::1/mf/0", "redis+sentinel://[::1/mf/0"),
        ("redis://u:se@cret@h/0", "redis://h/0"),  # an unquoted "@" in the password
        (
            "redis+sentinel://h:26379/mf?sentinel_password=secretpw&sentinel_username=s",
            "redis+sentinel://h:26379/mf?sentinel_username=s",
        ),
        ("u:secretpw@h:6379", "h:6379"),  # no scheme
        ("garbage", "garbage"),
        ("", ""),
    ],
)
def test_shown_never_raises_and_hides_passwords(url: str, expected: str) -> None:
    assert shown(url) == expected


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        (Settings(read_from="replica", replica_url="garbage"), "MULTIFRAME_REPLICA_URL"),
        (
            Settings(read_from="replica", replica_url="redis://u:secretpw@[::1:6379/0"),
            "MULTIFRAME_REPLICA_URL",
        ),
        (Settings(redis_url="redis://u:secretpw@[::1:6379/0"), "REDIS_URL"),
        (Settings(redis_url="redis+sentinel://u:secretpw@[::1/mf/0"), "REDIS_URL"),
        (Settings(redis_url="redis://u:secretpw@h:port/0"), "REDIS_URL"),
    ],
)
def test_a_malformed_url_is_one_line_and_exit_2(
    settings: Settings, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        check_urls(settings)
    assert exited.value.code == USAGE == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and named in err, err
    assert "secretpw" not in err


def test_an_unused_replica_url_and_good_urls_pass() -> None:
    check_urls(Settings(replica_url="garbage"))  # reads go to the primary: never used
    check_urls(
        Settings(
            redis_url="redis://u:p@[::1]:6379/0",
            read_from="replica",
            replica_url="rediss://u:p@replica.example:6380/0",
        )
    )
