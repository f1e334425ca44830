"""Bad command-line arguments are usage errors (exit 2, one line), before any I/O."""

from __future__ import annotations

import pytest

from scripts.cli import main
from scripts.exits import USAGE


@pytest.mark.parametrize(
    ("argv", "mentions"),
    [
        (["--redis-url", "notaurl", "check"], "not a Redis URL"),
        (["--redis-url", "http://x:6379", "check"], "not a Redis URL"),
        (["--redis-url", "redis://u:secretpw@[::1:6379/0", "check"], "Invalid IPv6 URL"),
        (["--redis-url", "redis://u:secretpw@h:port/0", "check"], "not a Redis URL"),
        (["--redis-url", "redis+sentinel://u:secretpw@[::1/mf/0", "check"], "Invalid IPv6 URL"),
        (["generate", "--users", "-5"], "at least 1"),
        (["generate", "--users", "0"], "at least 1"),
        (["generate", "--users", "ten"], "at least 1"),
        (["generate", "--users", "5", "--drivers", "-1"], "at least 0"),
        (["generate", "--users", "5", "--quests", "nan"], "at least 0"),
        (["generate", "--users", "5", "--batch", "0"], "at least 1"),
        (["reindex", "--timeout", "0"], "above 0"),
        (["reindex", "--timeout", "nan"], "above 0"),  # would never time out
        (["migrate", "--index-timeout", "inf"], "above 0"),
        (["restore", "--index-timeout", "-1", "backup.jsonl.gz"], "above 0"),
        (["import-legacy", "--batch", "0"], "at least 1"),
    ],
)
def test_bad_arguments_are_usage_errors(
    argv: list[str], mentions: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == USAGE
    err = capsys.readouterr().err
    assert mentions in err
    assert "Traceback" not in err
    assert "secretpw" not in err
