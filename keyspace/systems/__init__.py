"""The systems this engine serves, one declaration package each (``keyspace/systems/<name>/``,
exporting ``SYSTEM``). A new package is found by its directory name; nothing else changes."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from ..system import System

DEFAULT = "multiframe"


def names() -> list[str]:
    """Every system name, from the packages present (``--system NAME``)."""
    here = [str(Path(__file__).parent)]
    return sorted(m.name for m in pkgutil.iter_modules(here) if m.ispkg)


def load(name: str = DEFAULT, namespace: str | None = None) -> System:
    """The system ``name`` ready to serve: its keys under ``namespace`` (None: its default,
    ``<name>:``, or none for MultiFrame). ValueError names the known systems."""
    if name not in names():
        raise ValueError(f"unknown system {name!r}; the systems are {', '.join(names())}")
    declared: System = importlib.import_module(f"{__name__}.{name}").SYSTEM
    return declared.served(namespace)
