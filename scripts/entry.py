"""The `multiframe-admin` entry point: the commands are imported inside it, so a Ctrl-C while
they import (seconds on a loaded machine) exits 130 with a message, never a traceback."""

from __future__ import annotations

import sys

INTERRUPTED = 130


def main() -> int:
    try:
        from .cli import main as run
    except KeyboardInterrupt:  # nothing written yet
        print("\ninterrupted before any write", file=sys.stderr)
        return INTERRUPTED
    return run()
