"""Who may do what: roles and document ownership from the served system, as pure functions.

``admin`` may do everything. Every other user (MultiFrame's ``designer`` and ``engineer``,
the other systems' members) reads everything, creates documents only for themselves (the
entity's ``owner`` field names them; entities without one are written by admins only), and
changes or deletes only what they own; a document's members (``System.members``, MultiFrame's
collab collaborators) may change its status and membership but not delete it. Only admins
create or delete users, change the fields ``System.admin_only_fields`` names (roles), or write
``config:system`` and analytics. A user may edit the rest of their own document. An explicit
seed-style id moves its counter: admins up to 2^53 - 1, the others at most
:data:`IMPORT_WINDOW` past it. Every refusal names its rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from keyspace import ADMIN, EntitySpec, Guard, OutsideImportWindow, System

from .errors import ApiError

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


def _users(system: System, spec: EntitySpec) -> bool:
    return spec.name == system.principal


Owners = Mapping[str, "str | None"]
"""Reference field -> the owner of the document it names (keyspace ``reference_owners``)."""


def foreign(system: System, spec: EntitySpec, doc: Mapping[str, Any], owners: Owners) -> list[str]:
    """The single references of ``doc`` a member owning it may not make: another user (besides
    the owner field itself), or a document owned by someone else. Arrays of ids (MultiFrame's
    collaborators) name other users by design; ownerless targets are shared catalogues, and
    ``EntitySpec.open_refs`` may name anyone's document (a presence's project)."""
    owner = doc.get(spec.owner) if spec.owner is not None else None
    out = []
    for ref in spec.references:
        value = doc.get(ref.field)
        if ref.many or ref.field == spec.owner or not isinstance(value, str):
            continue
        if ref.field in spec.open_refs:
            continue
        if ref.target == system.principal:
            if value != owner:
                out.append(ref.field)
        elif ref.field in owners and owners[ref.field] is not None and owners[ref.field] != owner:
            out.append(ref.field)
    return out


def _is_default(spec: EntitySpec, name: str, value: Any) -> bool:
    """Whether ``value`` is what the field's declared default would store (a decimal by
    value: "0" is "0.000000")."""
    make = spec.defaults.get(name)
    if make is None:
        return value is None
    default = make({}, "")
    if isinstance(value, str) and isinstance(default, str):
        try:
            return Decimal(value) == Decimal(default)
        except InvalidOperation:
            return value == default
    return bool(value == default)


def admin_set(spec: EntitySpec, body: Mapping[str, Any]) -> str | None:
    """The first admin-only field (``EntitySpec.admin_fields``) a member's create body sets
    to something other than its default, if any."""
    return next(
        (f for f in spec.admin_fields if f in body and not _is_default(spec, f, body[f])), None
    )


def creator(
    system: System, spec: EntitySpec, body: Mapping[str, Any], owners: Owners | None = None
) -> str:
    """The one non-admin user who may create ``body``: its owner ('' when only admins may:
    also when it names another user or another user's document). The one-trip create
    (keyspace ``authorized_create``) enforces the rule with this."""
    owner = body.get(spec.owner) if spec.owner is not None else None
    if foreign(system, spec, body, owners or {}) or admin_set(spec, body) is not None:
        return ""
    return owner if not _users(system, spec) and isinstance(owner, str) else ""


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


def check_create(
    caller: Caller,
    system: System,
    spec: EntitySpec,
    body: Mapping[str, Any],
    owners: Owners | None = None,
) -> None:
    if caller.admin:
        return
    if _users(system, spec):
        raise forbid("admin-only", f"only admins create {spec.collection}")
    if spec.owner is None:
        raise forbid("admin-only", f"only admins write {spec.collection}")
    if body.get(spec.owner) != caller.user_id:
        raise forbid("own-documents-only", f"you may only create {spec.collection} for yourself")
    _own_references(system, spec, body, owners or {})
    if (field := admin_set(spec, body)) is not None:
        raise forbid("admin-only", f"only admins set {field}; leave it out (its default applies)")


def _own_references(
    system: System, spec: EntitySpec, doc: Mapping[str, Any], owners: Owners
) -> None:
    _refuse_foreign(foreign(system, spec, doc, owners))


def _refuse_foreign(fields: list[str]) -> None:
    if fields:
        raise forbid(
            "own-references-only",
            f"{fields[0]} names another user or another user's document; only admins may",
        )


def _member_change(
    system: System, spec: EntitySpec, caller: Caller, old: Mapping[str, Any], new: Mapping[str, Any]
) -> bool:
    """A change only the document's members may make (MultiFrame: a collab's status and
    membership, by its collaborators)."""
    if spec.name not in system.members:
        return False
    field, allowed = system.members[spec.name]
    changed = {k for k in set(old) | set(new) if old.get(k) != new.get(k)}
    return caller.user_id in (old.get(field) or []) and changed <= allowed


def _user_guard(system: System, spec: EntitySpec, caller: Caller) -> Guard:
    def guard(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        if old.get(spec.id_field) != caller.user_id:
            raise forbid("admin-only", f"only admins change other {spec.collection}")
        for name in system.admin_only_fields:
            if old.get(name) != new.get(name):
                raise forbid("admin-only", f"only admins change {name}")

    return guard


def update_guard(
    caller: Caller, system: System, spec: EntitySpec, owners: Owners | None = None
) -> Guard | None:
    """The check run against the stored and proposed documents of an update; ``owners``
    are the owners of the documents the request body's references name."""
    if caller.admin:
        return None
    if _users(system, spec):
        return _user_guard(system, spec, caller)

    def guard(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        owner = spec.owner
        if owner is not None and old.get(owner) == caller.user_id == new.get(owner):
            made = foreign(system, spec, new, owners or {})
            _refuse_foreign([f for f in made if old.get(f) != new.get(f)])
            for name in spec.admin_fields:
                if old.get(name) != new.get(name):
                    raise forbid("admin-only", f"only admins change {name}")
            return
        if _member_change(system, spec, caller, old, new):
            return
        if owner is None:
            raise forbid("admin-only", f"only admins write {spec.collection}")
        rule = "owner-only"
        if spec.name in system.members:
            rule = "owner-or-collaborator-status-and-membership"
        raise forbid(rule, f"you may only change {spec.collection} you own")

    return guard


def delete_guard(
    caller: Caller, system: System, spec: EntitySpec
) -> Callable[[dict[str, Any]], None] | None:
    if caller.admin:
        return None

    def guard(old: dict[str, Any]) -> None:
        if _users(system, spec) or spec.owner is None:
            raise forbid("admin-only", f"only admins delete {spec.collection}")
        if old.get(spec.owner) != caller.user_id:
            rule = "owner-only"
            field = system.members.get(spec.name, ("", frozenset()))[0]
            if field and caller.user_id in (old.get(field) or []):
                rule = "collaborators-cannot-delete"
            raise forbid(rule, f"you may only delete {spec.collection} you own")

    return guard


def membership_guard(caller: Caller, spec: EntitySpec, field: str) -> Guard | None:
    if caller.admin:
        return None

    def guard(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        owner = old.get(spec.owner) if spec.owner is not None else None
        if owner != caller.user_id and caller.user_id not in (old.get(field) or []):
            raise forbid(
                "owner-or-collaborator",
                f"only the {spec.name}'s owner and members change its {field}",
            )

    return guard


def check_mint(caller: Caller, user_id: str) -> None:
    if not caller.admin and caller.user_id != user_id:
        raise forbid("self-or-admin", "you may only mint tokens for yourself")
