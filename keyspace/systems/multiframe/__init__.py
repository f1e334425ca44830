"""GlobalScope MultiFrame 11.0 (seed 000): the default system, its keys exactly the seed's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...system import System
from .entities import MULTIFRAME


def _role(doc: Mapping[str, Any]) -> str:
    return str(doc.get("role", ""))


SYSTEM = System(
    name="multiframe",
    title="GlobalScope MultiFrame 11.0",
    schema=MULTIFRAME,
    namespace="",
    principal="user",
    role_of=_role,
    role_fields=("role",),
    admin_only_fields=("role", "created_at"),
    demo="multiframe",
    admin_user={
        "user_id": "admin",
        "username": "admin",
        "email": "admin@multiframe.local",
        "role": "admin",
    },
    members={"collab": ("collaborators", frozenset({"status", "collaborators"}))},
)
