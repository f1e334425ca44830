"""The first admin: from ``MULTIFRAME_ADMIN_TOKEN``, or created once on an empty keyspace."""

from __future__ import annotations

import logging
import sys

from keyspace import USER, AlreadyExists, Keyspace, NotFound, UniqueConflict, parse
from keyspace.tokens import Kind

log = logging.getLogger("multiframe.bootstrap")

# An id outside the counter's sequence, so the first user a client creates is still user_1.
ADMIN = {
    "user_id": "admin",
    "username": "admin",
    "email": "admin@multiframe.local",
    "role": "admin",
}


async def _admin_user(ks: Keyspace) -> tuple[str, bytes]:
    try:
        stored = await ks.get(USER, ADMIN["user_id"])
    except NotFound:
        try:
            stored = await ks.create(USER, ADMIN)
        except (UniqueConflict, AlreadyExists):
            raise SystemExit("another user holds the bootstrap admin's name or email") from None
    if stored.doc["role"] != "admin":
        raise SystemExit("user 'admin' exists but is not an admin; restore its role first")
    return ADMIN["user_id"], stored.raw


async def bootstrap(ks: Keyspace, admin_token: str | None) -> None:
    """Make ``admin_token`` an admin API key, or print a new one if the keyspace has no users.

    The operator's token needs no user document (it acts as ``admin``), so user
    lists hold only the users clients created.
    """
    if admin_token:
        await ks.tokens.grant(admin_token, ADMIN["user_id"], "admin")
        log.info("MULTIFRAME_ADMIN_TOKEN is an admin API key")
        return
    if (await ks.list(USER, parse(USER, {"limit": ["1"]}))).total:
        return
    user_id, raw = await _admin_user(ks)
    minted = await ks.tokens.mint(user_id, raw, Kind.API_KEY)
    print(
        f"\nFirst start: created the admin user {user_id!r}. Its API key, shown once:\n\n"
        f"    {minted.token}\n",
        file=sys.stderr,
        flush=True,
    )
