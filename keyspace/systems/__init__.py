"""The systems this engine serves, one declaration package each (``keyspace/systems/<name>/``,
exporting ``SYSTEM``). A new package is found by its directory name; nothing else changes."""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Mapping
from fnmatch import fnmatchcase
from pathlib import Path

from ..inventory import patterns
from ..system import System

DEFAULT = "multiframe"
log = logging.getLogger("multiframe.systems")


def names() -> list[str]:
    """Every system name, from the packages present (``--system NAME``)."""
    here = [str(Path(__file__).parent)]
    return sorted(m.name for m in pkgutil.iter_modules(here) if m.ispkg)


def load(
    name: str = DEFAULT,
    namespace: str | None = None,
    ttls: Mapping[str, int] | None = None,
    cache_ttl: int | None = None,
) -> System:
    """The system ``name`` ready to serve: its keys under ``namespace`` (None: its default,
    ``<name>:``, or none for MultiFrame), its expiring entities' TTLs changed by ``ttls`` and
    its cached answers' by ``cache_ttl`` (:meth:`System.served`). ValueError names the known
    systems (or expiring entities)."""
    if name not in names():
        raise ValueError(f"unknown system {name!r}; the systems are {', '.join(names())}")
    declared: System = importlib.import_module(f"{__name__}.{name}").SYSTEM
    served = declared.served(namespace, ttls, cache_ttl)
    for other in names():
        if other == name:
            continue
        try:
            _apart(served, importlib.import_module(f"{__name__}.{other}").SYSTEM.served())
        except ValueError:
            if served.namespace:
                raise
            # No namespace asks for the seed's exact keys: allowed, on a server of its own.
            log.warning(
                "%s without a namespace shares key patterns with %s: do not serve both "
                "from one Redis server",
                served.title,
                other,
            )
    return served


def _apart(served: System, other: System) -> None:
    """ValueError when ``served``'s keys could be taken for ``other``'s (at its default
    namespace) or the reverse: their scans, backups, resets and ACL rules would overlap."""
    mine, theirs = patterns(served.schema), patterns(other.schema)
    probe = [p.replace("*", "x") for p in mine]
    if any(fnmatchcase(key, pattern) for key in probe for pattern in theirs) or any(
        fnmatchcase(key, pattern)
        for key in (p.replace("*", "x") for p in theirs)
        for pattern in mine
    ):
        raise ValueError(
            f"the namespace {served.namespace!r} overlaps {other.name}'s keys; choose another"
        )
