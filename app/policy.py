"""Who may do what: the seed's roles and document ownership, as pure functions.

``admin`` may do everything. ``designer`` and ``engineer`` read everything,
create drivers, processes, quests, collabs and NFTs for themselves, and change
or delete only what they own; a collab's collaborators may change its status
and membership but not delete it. Only admins create or delete users, change
roles, or write ``config:system`` and analytics. A user may edit their own
username and email. An explicit seed-style id moves its counter: admins up to
2^53 - 1, the others at most :data:`IMPORT_WINDOW` past it. Every refusal names
its rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from keyspace import COLLAB, USER, EntitySpec, Guard, OutsideImportWindow

from .errors import ApiError

ADMIN = "admin"
COLLABORATOR_FIELDS = frozenset({"status", "collaborators"})
IMPORT_WINDOW = 1000
"""How far past its counter a non-admin's explicit seed-style id (``driver_<n>``) may lie;
the commit checks it against the live counter. Admins may import any such id up to 2^53 - 1,
which exhausts the counter (no further id can be generated). At this window, moving a
counter there takes 9 * 10^12 creates: 28 years at 10 000 creates/s."""


@dataclass(frozen=True)
class Caller:
    """The authenticated user behind a request."""

    user_id: str
    role: str
    token_hash: str

    @property
    def admin(self) -> bool:
        return self.role == ADMIN


def forbid(rule: str, message: str) -> ApiError:
    return ApiError(403, "forbidden", message, details={"rule": rule})


def require_admin(caller: Caller, what: str) -> None:
    if not caller.admin:
        raise forbid("admin-only", f"only admins may {what}")


def creator(spec: EntitySpec, body: Mapping[str, Any]) -> str:
    """The one non-admin user who may create ``body``: its owner ('' when only admins may).
    The one-trip create (keyspace ``authorized_create``) enforces the rule with this."""
    owner = body.get("user_id")
    return owner if spec is not USER and isinstance(owner, str) else ""


def outside_import_window(spec: EntitySpec, exc: OutsideImportWindow) -> ApiError:
    """The 403 for a non-admin's explicit id further past its counter than IMPORT_WINDOW."""
    highest = exc.details["highest"]
    return ApiError(
        403,
        "forbidden",
        f"only admins may choose a {spec.id_field} more than {IMPORT_WINDOW} past the last "
        f"generated one (now at most {highest}); leave it out to have one assigned",
        details={"rule": "import-window", **exc.details},
    )


def check_create(caller: Caller, spec: EntitySpec, body: Mapping[str, Any]) -> None:
    if caller.admin:
        return
    if spec is USER:
        raise forbid("admin-only", "only admins create users")
    if creator(spec, body) != caller.user_id:
        raise forbid("own-documents-only", f"you may only create {spec.collection} for yourself")


def _collaborator_change(caller: Caller, old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    members = old.get("collaborators") or []
    changed = {k for k in set(old) | set(new) if old.get(k) != new.get(k)}
    return caller.user_id in members and changed <= COLLABORATOR_FIELDS


def update_guard(caller: Caller, spec: EntitySpec) -> Guard | None:
    """The check run against the stored and proposed documents of an update."""
    if caller.admin:
        return None

    def guard(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        if spec is USER:
            if old.get("user_id") != caller.user_id:
                raise forbid("admin-only", "only admins change other users")
            if old.get("role") != new.get("role"):
                raise forbid("admin-only", "only admins change roles")
            if old.get("created_at") != new.get("created_at"):
                raise forbid("admin-only", "only admins change created_at")
            return
        if old.get("user_id") == caller.user_id and new.get("user_id") == caller.user_id:
            return
        if spec is COLLAB and _collaborator_change(caller, old, new):
            return
        rule = "owner-only" if spec is not COLLAB else "owner-or-collaborator-status-and-membership"
        raise forbid(rule, f"you may only change {spec.collection} you own")

    return guard


def delete_guard(caller: Caller, spec: EntitySpec) -> Callable[[dict[str, Any]], None] | None:
    if caller.admin:
        return None

    def guard(old: dict[str, Any]) -> None:
        if spec is USER:
            raise forbid("admin-only", "only admins delete users")
        if old.get("user_id") != caller.user_id:
            rule = "owner-only"
            if spec is COLLAB and caller.user_id in (old.get("collaborators") or []):
                rule = "collaborators-cannot-delete"
            raise forbid(rule, f"you may only delete {spec.collection} you own")

    return guard


def membership_guard(caller: Caller) -> Guard | None:
    if caller.admin:
        return None

    def guard(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        if old.get("user_id") != caller.user_id and caller.user_id not in (
            old.get("collaborators") or []
        ):
            raise forbid(
                "owner-or-collaborator",
                "only the collab's owner and collaborators change its members",
            )

    return guard


def check_mint(caller: Caller, user_id: str) -> None:
    if not caller.admin and caller.user_id != user_id:
        raise forbid("self-or-admin", "you may only mint tokens for yourself")
