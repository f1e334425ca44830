"""Every path that plans a document write seals it on an encrypted keyspace (review 18,
finding 6: ``quarantine restore`` committed ``plan_create`` with no sealing). The plans of
keyspace.plan write the document as given; only the store (which seals and fences) and the
paths listed here with their reason may call them. A new caller fails this test: route it
through ``Keyspace.documents.plan_stored`` (imports, bulk loads) or the store's create and
update instead, or add it here with why its document is already in stored form."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLANNERS = {"plan_create", "plan_create_generated", "plan_update"}
REVIEWED = {
    "keyspace/store.py": "the store: Sealer.seal and Sealer.fence before every plan",
    "keyspace/migrations.py": "a migration's documents are stored forms (validate_stored)",
    "keyspace/keyring.py": "its own plan_create: the keyring hash, no document",
}


def _callers() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for folder in ("keyspace", "scripts", "app", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "keyspace/plan.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(), rel)):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in PLANNERS:
                    found.setdefault(rel, set()).add(name)
    return found


def test_only_reviewed_paths_plan_documents_without_the_sealing_store() -> None:
    callers = _callers()
    unreviewed = sorted(set(callers) - set(REVIEWED))
    assert not unreviewed, f"plans a document write without sealing it: {unreviewed}"
    assert "keyspace/store.py" in callers  # the scan sees the real callers
