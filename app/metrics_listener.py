"""``MULTIFRAME_METRICS_LISTEN``: ``GET /metrics`` on a listener of its own, e.g. an address
only the monitoring network reaches, and not on the API's port.

One process serves it: the service's, or under ``--workers`` their parent, which adds up
every worker's counts from the run's multiprocess directory and reads Redis on its own pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web
from prometheus_client import Counter

from .config import Settings
from .errors import Handler, error_middleware
from .metrics import EXPOSITION, Exposition, count_auth_failure, serve_metrics
from .server import server_options
from .tracing import install, telemetry

AUTH_FAILURES = web.AppKey("auth_failures", Counter)


@web.middleware
async def _counted(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A wrong or missing metrics token is counted here too (``multiframe_auth_failures``);
    the listener's other requests are scrapes, not the API's, and are not counted."""
    response = await handler(request)  # error_middleware's answer for a refused token
    if response.status == 401:
        count_auth_failure(request.app[AUTH_FAILURES], response)
    return response


def metrics_app(exposition: Exposition, auth_failures: Counter) -> web.Application:
    """The listener's application: ``GET /metrics``, the error format for anything else;
    its 401s counted in ``auth_failures``."""
    app = web.Application(middlewares=[telemetry, _counted, error_middleware])
    app[EXPOSITION] = exposition
    app[AUTH_FAILURES] = auth_failures
    app.router.add_get("/metrics", serve_metrics)
    install(app)
    return app


async def start(
    exposition: Exposition, settings: Settings, auth_failures: Counter
) -> web.AppRunner:
    """Serve :func:`metrics_app` on ``settings.metrics_listen``; stop with ``cleanup()``."""
    assert settings.metrics_listen is not None
    host, port = settings.metrics_listen
    runner = web.AppRunner(metrics_app(exposition, auth_failures), **server_options(settings))
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise SystemExit(
            f"MULTIFRAME_METRICS_LISTEN: cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    return runner


def listening(
    exposition: Exposition, settings: Settings, auth_failures: Counter
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A ``cleanup_ctx`` serving the listener while its application runs."""

    async def context(_: web.Application) -> AsyncIterator[None]:
        runner = await start(exposition, settings, auth_failures)
        try:
            yield
        finally:
            await runner.cleanup()

    return context
