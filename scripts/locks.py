"""The admin operations' exclusive lock (keyspace.exclusive), as the commands use it."""

from __future__ import annotations

from keyspace.exclusive import AdminLock as Lock
from keyspace.exclusive import settled

__all__ = ["Lock", "settled"]
