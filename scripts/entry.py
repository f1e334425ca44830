"""The `multiframe-admin` entry point: the commands are imported inside it, so a Ctrl-C while
they import (seconds on a loaded machine) exits 130 with a message, never a traceback."""

from __future__ import annotations

import os
import sys

INTERRUPTED = 130


def main() -> int:
    try:
        from .cli import main as run
    except KeyboardInterrupt:  # nothing written yet
        print("\ninterrupted before any write", file=sys.stderr)
        sys.stderr.flush()
        # An interrupt met inside a module's import-time C code can leave CPython's
        # "unhandled KeyboardInterrupt" mark set although it was handled here: a normal exit
        # then kills the process with SIGINT (-2, seen on a loaded machine). Nothing is open.
        os._exit(INTERRUPTED)
    return run()
