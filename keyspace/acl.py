"""Least-privilege Redis ACL users for the service, derived from the declarations.

The service user may touch only the service's key patterns and may not run
dangerous or administrative commands (FLUSHALL, CONFIG, KEYS, DEBUG, SHUTDOWN,
MODULE, ...). An admin user exists for the launcher and for operators; the
default user is disabled (off, no password). Passwords never appear on a command line: the
embedded launcher writes them to an ACL file readable only by its owner.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass, field
from urllib.parse import quote

from .inventory import patterns
from .schema import Schema
from .systems.multiframe.entities import MULTIFRAME

SERVICE_USER = "multiframe"
ADMIN_USER = "multiframe-admin"
SERVICE_PASSWORD_ENV = "MULTIFRAME_REDIS_PASSWORD"
ADMIN_PASSWORD_ENV = "MULTIFRAME_REDIS_ADMIN_PASSWORD"
DENIED = (
    "keys",
    "flushall",
    "flushdb",
    "config",
    "debug",
    "shutdown",
    "monitor",
    "module",
    "acl",
    "replicaof",
    "slaveof",
    "migrate",
    "restore",
    "swapdb",
    "save",
    "bgsave",
)
# Module commands carry no ACL categories, so each one the service sends is named.
MODULE_COMMANDS = (
    "json.get", "json.set", "json.mget", "json.type", "json.del",
    "ft.search", "ft.aggregate", "ft.info", "ft._list", "ft.create",
    "ft.dropindex", "ft.aliasupdate", "ft.aliasadd", "ft.aliasdel",
)  # fmt: skip


# Off, with no password: no connection can use it. Its rules still matter: Redis 8.2 (and Valkey
# before its fix) replays MULTI/EXEC from the AOF, which is how every multi-command script's
# effects are logged, as the default user and re-checks its permissions at EXEC; without them
# every scripted write is silently dropped on restart (redis/redis#14541, valkey#3983).
DEFAULT_USER = "user default off resetpass ~* &* +@all"


def service_rules(schema: Schema = MULTIFRAME) -> list[str]:
    """ACL rules of the service user, without its password."""
    key_patterns = [f"~{p}" for p in patterns(schema)]
    return [
        "resetkeys",
        *key_patterns,
        "resetchannels",
        "-@all",
        "+@read",
        "+@write",
        "+@keyspace",
        "+@scripting",
        "+@connection",
        "+@transaction",
        "+@fast",
        "+@slow",
        "-@dangerous",
        "-@admin",
        *(f"-{c}" for c in DENIED),
        "+client|setinfo",
        "+client|setname",
        "+ping",
        "+info",
        *(f"+{c}" for c in MODULE_COMMANDS),
    ]


def password_hash(password: str) -> str:
    """The SHA-256 form (hex) an ACL rule takes as ``#<hash>``."""
    return hashlib.sha256(password.encode()).hexdigest()


@dataclass(frozen=True)
class AclUsers:
    """Passwords of the service and admin users (random unless given)."""

    service_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    @classmethod
    def from_env(cls) -> AclUsers:
        """Passwords from ``MULTIFRAME_REDIS_PASSWORD`` / ``MULTIFRAME_REDIS_ADMIN_PASSWORD``;
        random where unset."""
        return cls(
            service_password=os.environ.get(SERVICE_PASSWORD_ENV) or secrets.token_urlsafe(24),
            admin_password=os.environ.get(ADMIN_PASSWORD_ENV) or secrets.token_urlsafe(24),
        )

    def acl_file(self, schema: Schema = MULTIFRAME) -> str:
        """An ACL file: passwords stored as SHA-256 (``#<hash>``), default user off."""
        service = " ".join(
            [
                "user",
                SERVICE_USER,
                "on",
                f"#{password_hash(self.service_password)}",
                *service_rules(schema),
            ]
        )
        admin = f"user {ADMIN_USER} on #{password_hash(self.admin_password)} ~* &* +@all"
        return f"{DEFAULT_USER}\n{admin}\n{service}\n"

    def url(self, host: str, port: int, *, admin: bool = False, scheme: str = "redis") -> str:
        user, password = (
            (ADMIN_USER, self.admin_password) if admin else (SERVICE_USER, self.service_password)
        )
        return f"{scheme}://{quote(user)}:{quote(password, safe='')}@{host}:{port}/0"
