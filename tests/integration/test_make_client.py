"""`make client`, the README's regeneration one-liner, run as a person runs it (a review found
it failing: the generator looked for ruff through a relative PATH from its output directory)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_client_generates_an_importable_client_without_warnings() -> None:
    out = ROOT / "var" / "client"
    shutil.rmtree(out / "construct_client", ignore_errors=True)
    # -o: the environment running this test is the one `make` would install; never reinstall it.
    done = subprocess.run(
        ["make", "-o", ".venv/.installed", "client", "SYSTEM=construct"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not found" not in done.stderr and "Warning" not in done.stdout, done.stderr
    package = out / "construct_client"
    assert (package / "client.py").is_file() and any((package / "models").glob("*.py"))
