"""The create rule as data (``policy.creator``, enforced inside authorized_commit.lua) refuses
and allows exactly as ``policy.check_create`` does."""

from __future__ import annotations

from typing import Any

import pytest

from app.errors import ApiError
from app.policy import Caller, check_create, creator
from keyspace import DRIVER, MULTIFRAME, USER, EntitySpec, systems

MF = systems.load()

CALLERS = [Caller("user_1", "designer", "h"), Caller("user_2", "engineer", "h")]
ADMIN = Caller("admin", "admin", "h")
BODIES: list[dict[str, Any]] = [
    {"user_id": "user_1"},
    {"user_id": "user_2"},
    {"user_id": 1},
    {"user_id": None},
    {},
]


def allowed_by_script(caller: Caller, spec: EntitySpec, body: dict[str, Any]) -> bool:
    """authorized_commit.lua's rule, on the value the service passes it."""
    allowed = creator(MF, spec, body)
    return caller.admin or (allowed != "" and caller.user_id == allowed)


def allowed_by_policy(caller: Caller, spec: EntitySpec, body: dict[str, Any]) -> bool:
    try:
        check_create(caller, MF, spec, body)
    except ApiError as exc:
        return exc.status != 403
    return True


@pytest.mark.parametrize("spec", MULTIFRAME.entities, ids=lambda s: s.name)
def test_the_script_rule_matches_the_policy(spec: EntitySpec) -> None:
    for caller in [*CALLERS, ADMIN]:
        for body in BODIES:
            assert allowed_by_script(caller, spec, body) == allowed_by_policy(caller, spec, body)


def test_only_admins_create_users_and_others_only_their_own() -> None:
    assert creator(MF, USER, {"user_id": "user_1"}) == ""
    assert creator(MF, DRIVER, {"user_id": "user_1"}) == "user_1"
    assert creator(MF, DRIVER, {"user_id": 1}) == ""
