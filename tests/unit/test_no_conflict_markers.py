"""No merge-conflict markers in any tracked text file (a merge once committed three in
README.md, and no other test reads the README's tables)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(rb"^(<<<<<<< |>>>>>>> |=======$)", re.M)


def test_no_tracked_file_holds_a_conflict_marker() -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    found = []
    for name in filter(None, listed):
        path = ROOT / name.decode()
        if path.suffix in {".png", ".gz", ".rdb"} or not path.is_file():
            continue
        if MARKER.search(path.read_bytes()):
            found.append(name.decode())
    assert not found, found
