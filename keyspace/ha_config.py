"""The configuration files of the local HA cluster (keyspace.ha), and their privacy.

Each data node gets a ``node.conf`` that includes the project's ``redis.conf`` and adds what a
node of a replicated pair needs; each sentinel a ``sentinel.conf`` that monitors the primary
with the cluster's quorum and timeouts and holds the ACL users of a sentinel. Both name the
admin password, and Redis rewrites both on a failover, so every file and directory of the
cluster is kept to its owner. Apart from keyspace.ha, which starts, watches and stops the
processes that read them.
"""

from __future__ import annotations

import contextlib
import stat
from collections.abc import Sequence
from pathlib import Path

from .acl import ADMIN_USER, SERVICE_USER, AclUsers, password_hash
from .server import _DEFAULT_CONF

SERVICE = "multiframe"  # the Sentinel master name
QUORUM = 2
# Small for development: a dead primary is replaced about 2 s after it stops answering.
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000
SENTINEL_RIGHTS = (
    "-@all +ping +hello +auth +client|setinfo +client|setname +sentinel|masters "
    "+sentinel|master +sentinel|slaves +sentinel|replicas +sentinel|sentinels "
    "+sentinel|get-master-addr-by-name"
)


def private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, made 0600 before the write: it may hold a password."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


def private_dir(path: Path) -> None:
    """``path`` made (or kept) 0700: the node and sentinel configs Redis rewrites inside it
    hold the admin password, and a rewrite gets a new file (of the server's umask)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def lock_down(directory: Path) -> None:
    """Strip group and other bits from every file under ``directory``: the servers run with
    umask 077 (keyspace.server.UMASK), this also covers files left by an older version."""
    for found in directory.rglob("*"):
        with contextlib.suppress(OSError):  # a file a server replaced meanwhile
            mode = stat.S_IMODE(found.lstat().st_mode)
            if not found.is_symlink() and mode & 0o077:
                found.chmod(mode & ~0o077)


def node_conf(directory: Path, acl: AclUsers, extra: Sequence[str] = ()) -> Path:
    """``node.conf``: the project's redis.conf, then what a node of a replicated pair needs,
    then ``extra`` settings (one a line, e.g. ``min-replicas-to-write 1``). Sentinel rewrites
    this file (CONFIG REWRITE) on a failover, never redis.conf."""
    lines = [
        f"include {_DEFAULT_CONF}",
        # Both nodes: after a failover either one replicates from the other.
        f"masteruser {ADMIN_USER}",
        f"masterauth {acl.admin_password}",
        # A replica cut off from its primary (or still syncing) refuses reads (MASTERDOWN,
        # answered 503) instead of serving data of unknown age: replica reads stay within
        # the replication lag (docs/scaling.md).
        "replica-serve-stale-data no",
        *extra,
    ]
    path = directory / "node.conf"
    private(path, "\n".join(lines) + "\n")
    return path


def sentinel_conf(directory: Path, acl: AclUsers, port: int, primary: int) -> Path:
    lines = [
        f"port {port}",
        "bind 127.0.0.1",
        f'dir "{directory}"',
        f'pidfile "{directory / "sentinel.pid"}"',
        f"sentinel monitor {SERVICE} 127.0.0.1 {primary} {QUORUM}",
        f"sentinel auth-user {SERVICE} {ADMIN_USER}",
        f"sentinel auth-pass {SERVICE} {acl.admin_password}",
        f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
        f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}",
        f"sentinel parallel-syncs {SERVICE} 1",
        f"sentinel sentinel-user {ADMIN_USER}",
        f"sentinel sentinel-pass {acl.admin_password}",
        "user default off",
        f"user {ADMIN_USER} on #{password_hash(acl.admin_password)} ~* &* +@all",
        f"user {SERVICE_USER} on #{password_hash(acl.service_password)} {SENTINEL_RIGHTS}",
    ]
    path = directory / "sentinel.conf"
    private(path, "\n".join(lines) + "\n")
    return path
