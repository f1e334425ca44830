"""How the layers may touch each other (issue 14, "Shape of the code"), read from the source:
``scripts/`` and ``app/`` use the engine through its public names only."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# app/server.py subclasses aiohttp's Server and AppRunner to answer malformed HTTP in the
# service's error format; aiohttp offers no public hook for the handler class, so that module
# uses its base classes' protected members. Nothing else may.
SUBCLASSES_A_LIBRARY = {"app/server.py"}


def modules(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (ROOT / package).rglob("*.py"))


def private_accesses(path: Path) -> list[str]:
    """``x._name`` where ``x`` is not ``self``/``cls``: a reach into another object's insides."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
            continue
        if node.attr.startswith("__") and node.attr.endswith("__"):
            continue  # dunders are public protocol
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            continue
        found.append(f"{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}")
    return found


def test_scripts_and_app_reach_into_no_object_s_private_attributes() -> None:
    found = [
        hit
        for path in modules("scripts", "app")
        if str(path.relative_to(ROOT)) not in SUBCLASSES_A_LIBRARY
        for hit in private_accesses(path)
    ]
    assert found == []
