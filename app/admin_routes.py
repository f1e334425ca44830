"""The seed's admin routes, for every system (admins only): ``POST /api/admin/migrate`` starts
the pending migrations in the background (202; progress at ``GET
/api/admin/migration-status``), ``POST /api/admin/seed`` loads the demo data outside
production mode. They run what ``multiframe-admin migrate`` / ``seed`` run (keyspace.migrating,
keyspace.demo); docs/migrations.md."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from redis.exceptions import RedisError

from keyspace import Keyspace, KeyspaceError, NotFound, System, demo, migrating, migrations

from .auth import caller
from .errors import ApiError
from .policy import require_admin
from .routing import Route
from .state import keyspace, system
from .wire import json_response

log = logging.getLogger("multiframe.api")
STATUS_PATH = "/api/admin/migration-status"


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


@dataclass
class Run:
    """The last migration run this process started: what it did, or why it stopped."""

    state: str  # running | done | failed
    started_at: str
    finished_at: str | None = None
    applied: list[int] = field(default_factory=list)
    error: str | None = None


class Runs:
    """The one background migration run of this process (``POST /api/admin/migrate``)."""

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.last: Run | None = None

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def start(self, ks: Keyspace, served: System) -> None:
        self.last = Run("running", _now())
        self.task = asyncio.create_task(self._run(ks, served, self.last))

    async def _run(self, ks: Keyspace, served: System, run: Run) -> None:
        try:
            outcomes = await migrating.migrate(ks, served.migrations)
            run.applied = [o.migration.version for o in outcomes]
            run.state = "done"
        except (KeyspaceError, migrations.MigrationFailed, RedisError, OSError) as exc:
            run.state, run.error = "failed", str(exc) or type(exc).__name__
            log.warning("migration run stopped: %s", run.error)
        except Exception as exc:  # a bug in a migration's function: shown, not lost
            run.state, run.error = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("migration run failed")
        finally:
            run.finished_at = _now()

    async def stop(self) -> None:
        """Cancel a run at shutdown: every batch is one commit, so a later run resumes."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


RUNS = web.AppKey("migration_runs", Runs)


async def _status(request: web.Request) -> dict[str, Any]:
    ks = keyspace(request)
    found, running = await migrating.read_status(ks, system(request).migrations)
    holder = _text(await ks.client.get(ks.schema.names.lock_key("migrate")))
    last = request.app[RUNS].last
    return {
        **found.shown(),
        "running": [{"version": version, **asdict(at)} for version, at in sorted(running.items())],
        "locked_by": holder,
        "last_run": asdict(last) if last is not None else None,
    }


def _text(value: object) -> str | None:
    return value.decode(errors="replace") if isinstance(value, bytes) else None


async def migration_status(request: web.Request) -> web.Response:
    require_admin(caller(request), "read the migration status")
    return json_response(await _status(request))


async def migrate(request: web.Request) -> web.Response:
    """202 once a run started (or 200 when nothing is pending); 409 while one runs."""
    require_admin(caller(request), "run migrations")
    ks, served, runs = keyspace(request), system(request), request.app[RUNS]
    found, _ = await migrating.read_status(ks, served.migrations)
    if not found.pending:
        return json_response(await _status(request))
    holder = _text(await ks.client.get(ks.schema.names.lock_key("migrate")))
    if runs.running or holder is not None:
        raise ApiError(
            409,
            "busy",
            "a migration run is in progress; follow it at " + STATUS_PATH,
            details={"locked_by": holder},
        )
    runs.start(ks, served)
    await asyncio.sleep(0)  # let the run take its lock before the status is read
    return json_response(await _status(request), status=202, headers={"Location": STATUS_PATH})


async def seed(request: web.Request) -> web.Response:
    """Load the demo data (records present are left as they are); refused in production."""
    require_admin(caller(request), "load the demo data")
    ks, served = keyspace(request), system(request)
    mode = None
    with contextlib.suppress(NotFound):
        mode = (await ks.get_settings()).doc["system"]["mode"]
    if mode == "production":
        raise ApiError(
            409,
            "production_mode",
            f"{ks.settings_spec.key} system.mode is 'production': demo data is for development "
            "keyspaces (set the mode to 'development' first)",
        )
    data = orjson.loads(demo.demo_file(served).read_bytes())
    loaded = await demo.load(ks, data)
    return json_response(asdict(loaded))


def admin_routes() -> list[Route]:
    admins = (403,)
    return [
        Route(
            "POST",
            "/api/admin/migrate",
            migrate,
            "Start applying the pending migrations in the background (admins)",
            "admin",
            returns="MigrationStatus",
            status=202,
            errors=(403, 409),
            notes=(
                (200, "nothing pending: the status, no run started"),
                (409, "code busy: a run is in progress (here or by multiframe-admin migrate)"),
            ),
        ),
        Route(
            "GET",
            STATUS_PATH,
            migration_status,
            "Applied, pending and running migrations (admins)",
            "admin",
            returns="MigrationStatus",
            errors=admins,
        ),
        Route(
            "POST",
            "/api/admin/seed",
            seed,
            "Load the demo data; records present are left as they are (admins)",
            "admin",
            returns="SeedResult",
            errors=(403, 409),
            notes=((409, "code production_mode: the settings' mode is production"),),
        ),
    ]
