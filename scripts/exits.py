"""Exit codes of ``multiframe-admin`` and the exceptions commands raise for three of them.

Kept apart from the entry point (scripts/cli.py, which imports every command) so a command
module needs nothing from cli.py. What each code means is in cli.py's docstring (`--help`).
"""

from __future__ import annotations

OK, PROBLEMS, USAGE, REFUSED, INTERRUPTED = 0, 1, 2, 3, 130
BUSY = 75  # sysexits EX_TEMPFAIL: another command holds the pause (scripts/pause.py)
NOT_READY = 75  # check: an index still building (EX_TEMPFAIL: try again later)


class Refused(Exception):
    """The command will not run on this target; the message says what to do instead."""


class Busy(Exception):
    """Another command holds the pause (scripts/pause.py); the message names it. An admin
    command's lock held elsewhere is keyspace's ``Held`` (keyspace/exclusive.py), the same
    exit code."""


class Stopped(Exception):
    """The command stopped part-way (exit 1); the message says what was done and what to do."""
