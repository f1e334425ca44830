"""The first admin: the operator's ``MULTIFRAME_ADMIN_TOKEN``, or one made on an empty keyspace."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

from keyspace import AlreadyExists, Keyspace, NotFound, System, TokenKind, UniqueConflict

log = logging.getLogger("multiframe.bootstrap")


async def _admin_user(ks: Keyspace, system: System, admin: Mapping[str, Any]) -> tuple[str, bytes]:
    users = system.users
    user_id = str(admin[users.id_field])
    try:
        stored = await ks.get(users, user_id)
    except NotFound:
        try:
            stored = await ks.create(users, admin)
        except (UniqueConflict, AlreadyExists):
            raise SystemExit("another user holds the bootstrap admin's name or email") from None
    if system.role_of(stored.doc) != "admin":
        raise SystemExit(f"user {user_id!r} exists but is not an admin; restore its role first")
    return user_id, stored.raw


async def bootstrap(ks: Keyspace, system: System, admin_token: str | None) -> None:
    """Retire what older versions stored for an operator token, then, without one
    configured, print a new admin API key if the keyspace has no users.

    The operator's token is never stored: ``ks.tokens`` recognises it in process (see
    ``create_app``), as an admin acting as ``admin`` without a user document, so user
    lists hold only the users clients created.
    """
    retired = await ks.tokens.retire_operator_tokens(admin_token)
    if retired:
        log.warning("removed %d operator token(s) an older version had stored", retired)
    if admin_token:
        log.info("MULTIFRAME_ADMIN_TOKEN is an admin API key while it is configured")
        return
    # From the user keys, not the users index: after a restart on a large keyspace the index
    # is still being rebuilt, and start-up must not wait for it (or fail).
    if await ks.has_documents(system.users):
        return
    if system.admin_user is None:
        log.warning(
            "%s has no admin users: set MULTIFRAME_ADMIN_TOKEN to administer it", system.title
        )
        return
    user_id, raw = await _admin_user(ks, system, system.admin_user)
    minted = await ks.tokens.mint(user_id, raw, TokenKind.API_KEY)
    print(
        f"\nFirst start: created the admin user {user_id!r}. Its API key, shown once:\n\n"
        f"    {minted.token}\n",
        file=sys.stderr,
        flush=True,
    )
