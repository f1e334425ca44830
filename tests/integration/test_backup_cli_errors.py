"""A bad FILE for backup or restore is a one-line error with an exit code, never a traceback,
and never leaves a partial file behind."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from keyspace.server import EmbeddedRedis
from scripts import backup as backup_module
from scripts.cli import main
from scripts.exits import OK, PROBLEMS, USAGE
from tests.integration.test_backup import cli, populate

pytestmark = pytest.mark.redis


@pytest.mark.parametrize(
    ("command", "target", "mentions"),
    [
        ("backup", "nope/x/b.jsonl.gz", "does not exist; create it first (mkdir -p "),
        ("backup", "dir", "is a directory; name the file to write, e.g. "),
        ("backup", "file/b.jsonl.gz", "is not a directory"),
        ("restore", "missing.jsonl.gz", "does not exist; give the path of a file written by"),
        ("restore", "dir", "is a directory; give a file written by `backup`"),
    ],
)
def test_a_bad_file_argument_is_a_usage_error(
    redis_server: EmbeddedRedis,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    target: str,
    mentions: str,
) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("not a directory")
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(SystemExit) as exit_:
        main(["--redis-url", redis_server.url, command, str(tmp_path / target)])
    assert exit_.value.code == USAGE
    err = capsys.readouterr().err
    assert mentions in err
    assert "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == before
    assert os.listdir(tmp_path / "dir") == []


async def test_a_file_that_cannot_be_written_is_a_one_line_error_and_leaves_nothing(
    redis_server: EmbeddedRedis,
    real_client: Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """FILE turns into a directory while the backup runs: the final rename fails."""
    await populate(real_client)
    file = tmp_path / "b"
    read = backup_module._read

    async def racing(client: Redis, batch: list[str]) -> Any:
        file.mkdir(exist_ok=True)
        return await read(client, batch)

    monkeypatch.setattr(backup_module, "_read", racing)
    capsys.readouterr()
    assert await cli(redis_server, "backup", str(file)) == PROBLEMS
    err = capsys.readouterr().err
    assert f"backup: cannot write {file} (" in err
    assert "is a directory" in err.lower()
    assert "nothing was written" in err
    assert "Traceback" not in err and err.count("cannot write") == 1
    assert os.listdir(tmp_path) == ["b"]  # no b.tmp left behind
    assert os.listdir(file) == []

    monkeypatch.setattr(backup_module, "_read", read)
    file.rmdir()

    def full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "mkstemp", full)  # no temporary file at all
    assert await cli(redis_server, "backup", str(file)) == PROBLEMS
    assert "No space left on device" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []
    monkeypatch.undo()
    (tmp_path / "b.tmp").mkdir()  # the old fixed temporary name is nothing to this version
    assert await cli(redis_server, "backup", str(file)) == OK
    assert sorted(os.listdir(tmp_path)) == ["b", "b.tmp"]
