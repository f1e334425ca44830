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


# Documented public API whose name begins with an underscore.
PUBLIC_UNDERSCORED = {("os", "_exit")}


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
        if isinstance(node.value, ast.Name) and (node.value.id, node.attr) in PUBLIC_UNDERSCORED:
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


def imported_modules(path: Path) -> list[tuple[str, bool]]:
    """(absolute module name, at the top of the file) for every import in a scripts/ module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = "scripts" if node.level == 1 else ""
            names = [node.module] if node.module else [alias.name for alias in node.names]
            for name in names:
                found.append((".".join(filter(None, [base, name])), id(node) in top))
        elif isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
    return found


def test_only_the_entry_points_import_the_cli_module() -> None:
    # The commands once took exit codes and argument helpers from cli.py, which imports the
    # commands: a circle that cli.py broke by importing them inside a function.
    entry_points = {"scripts/entry.py", "scripts/cli.py"}
    importers = [
        str(path.relative_to(ROOT))
        for path in modules("scripts", "app", "keyspace")
        if str(path.relative_to(ROOT)) not in entry_points
        and any(name == "scripts.cli" for name, _ in imported_modules(path))
    ]
    assert importers == []


def test_the_cli_imports_its_commands_at_the_top() -> None:
    late = [name for name, top in imported_modules(ROOT / "scripts" / "cli.py") if not top]
    assert late == []


def test_the_app_reaches_the_engine_only_through_the_keyspace_package() -> None:
    # keyspace/__init__.py is the app's one door: a module path inside it is an implementation
    # detail the engine may move (issue 14 splits it into systems).
    inside = []
    for path in modules("app"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("keyspace."):
                inside.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.module}")
            elif isinstance(node, ast.Import):
                inside += [a.name for a in node.names if a.name.startswith("keyspace.")]
    assert not inside, inside


# Key names that depend on the served system: engine and CLI code builds them through a
# keys.Names (a schema's, an entity's), never through keys.py's namespace-less functions,
# which would put another system's keys under MultiFrame's names.
NAMESPACED = {
    "doc_key", "doc_match", "projection_key", "projection_match", "id_from_key", "counter_key",
    "unique_key", "source_claim_key", "ref_key", "delete_fence", "lock_key", "token_key",
    "user_tokens_key", "rate_key", "pause_key", "index_alias", "index_name", "RESERVED",
    "lock_key_of", "fence_key", "oplog_key", "oplog_seq_key", "migrations_key",
    "migration_progress_key", "migration_progress_match",
}  # fmt: skip


def namespace_less_uses(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in NAMESPACED
            and isinstance(node.value, ast.Name)
            and node.value.id == "keys"
        ):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: keys.{node.attr}")
        if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("keys"):
            found += [
                f"{path.relative_to(ROOT)}:{node.lineno}: import {alias.name}"
                for alias in node.names
                if alias.name in NAMESPACED
            ]
    return found


def test_engine_and_cli_name_keys_only_under_a_systems_namespace() -> None:
    found = [
        hit
        for path in modules("keyspace", "scripts", "app")
        if path.name != "keys.py"
        for hit in namespace_less_uses(path)
    ]
    assert found == []
