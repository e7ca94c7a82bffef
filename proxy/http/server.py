"""Serving: bind, say ready, run until SIGTERM/SIGINT, drain within the grace period, close the pools.

Draining: readiness says 503 at once; the listener closes and in-flight requests finish (up to the grace
period) before the pools close. The ops port stays up until then.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from collections.abc import Callable, Mapping

from aiohttp import web

from proxy.http.app import COMPONENTS, LIFECYCLE, METRICS, SAMPLER, create_app, create_ops_app
from proxy.http.hooks import ProxyRunner
from proxy.settings.model import Settings, without_credentials

log = logging.getLogger("braze_proxy")

EXIT_CANNOT_LISTEN = 3
SAMPLE_SECONDS = 1.0
ACCEPT_SETTLE_SECONDS = 0.1


def serve(settings: Settings, environ: Mapping[str, str], reuse_port: bool = False, workers: int = 1) -> int:
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(run_server(settings, environ, reuse_port, workers))


async def run_server(settings: Settings, environ: Mapping[str, str], reuse_port: bool, workers: int = 1) -> int:
    app = create_app(settings, workers=workers, environ=environ)
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload_on_hup(app))  # from the start: never a stop
    runners: list[web.AppRunner] = []
    main_runner = make_runner(app, settings)
    await main_runner.setup()  # runs cleanup_ctx start-up: pools and components are built here
    runners.append(main_runner)
    port = settings.port  # the port being bound, for the error line
    try:
        site = web.TCPSite(main_runner, settings.host, settings.port, reuse_port=reuse_port or None, backlog=1024)
        await site.start()
        if settings.metrics_port is not None:
            port = settings.metrics_port
            ops_runner = make_runner(create_ops_app(app))
            await ops_runner.setup()
            runners.append(ops_runner)
            await web.TCPSite(ops_runner, settings.host, settings.metrics_port, reuse_port=reuse_port or None).start()
    except OSError as error:
        log.error(f"cannot listen on {settings.host}:{port}: {error.strerror}", extra={"port": port})
        for runner in reversed(runners):
            await runner.cleanup()
        return EXIT_CANNOT_LISTEN
    log.info("proxy ready", extra=ready_fields(settings, os.getpid()))
    sampler = asyncio.create_task(sample_every(app, SAMPLE_SECONDS))
    # What start-up built lives as long as the process: keep the collector from walking it again and again.
    gc.freeze()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    await stop.wait()

    lifecycle = app[LIFECYCLE]
    lifecycle.draining = True
    log.info("draining", extra={"grace_seconds": settings.shutdown_grace_seconds})
    for listener in list(main_runner.sites):
        await listener.stop()
    # Connections accepted just before the listener closed get a moment to deliver their request, which
    # then counts as in flight; without it aiohttp drops the request unanswered and idles out the grace.
    await asyncio.sleep(ACCEPT_SETTLE_SECONDS)
    if main_runner.server is not None:
        main_runner.server.pre_shutdown()  # keep-alive connections close once their current request is answered
    cancelled = await lifecycle.drain(settings.shutdown_grace_seconds)
    if cancelled:
        log.warning("grace period over, cancelled requests", extra={"cancelled": cancelled})
    await main_runner.cleanup()
    for runner in runners[1:]:
        await runner.cleanup()
    sampler.cancel()
    app[METRICS].flush()
    log.info("stopped")
    return 0


def reload_on_hup(app: web.Application) -> Callable[[], None]:
    """SIGHUP: read the client tokens file again now (never a stop; nothing else to reload)."""

    def hup() -> None:
        components = app.get(COMPONENTS)
        tokens = components.day2.tokens if components is not None else None
        log.info("SIGHUP: reloading the client tokens file" if tokens else "SIGHUP: nothing to reload")
        if tokens is not None:
            tokens.hup()

    return hup


def ready_fields(settings: Settings, pid: int) -> dict[str, object]:
    """What the "proxy ready" line says: where it listens, in which mode, against what (no secret)."""
    return {
        "host": settings.host,
        "port": settings.port,
        "pid": pid,
        "store": "redis" if settings.redis_url else "memory",
        "redis": without_credentials(settings.redis_url) if settings.redis_url else None,
        "mode": "managed" if settings.api_key else "pass-through",
        "upstream": settings.upstream_url,
        "upstream_proxy": without_credentials(settings.upstream_proxy) if settings.upstream_proxy else None,
        "windows": settings.windows,
    }


async def sample_every(app: web.Application, seconds: float) -> None:
    """Fold the hot path's batched counts into Prometheus and sample the entry gauges every `seconds`, so that
    with `--workers N` a scrape answered by one worker sees the others' figures too (at most `seconds` old).
    Runs until cancelled."""
    while True:
        await asyncio.sleep(seconds)
        app[SAMPLER]()


def make_runner(app: web.Application, settings: Settings | None = None) -> web.AppRunner:
    """A runner with bounded request line and headers, graceful shutdown, no access log and JSON parse errors.

    Without settings (the ops app): aiohttp's default bounds, no grace period of its own.
    """
    if settings is None:
        return ProxyRunner(app, handle_signals=False, access_log=None)
    return ProxyRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=settings.shutdown_grace_seconds,
        # The request line holds the path and the query. Up to this size an overlong query gets the handler's
        # 400 naming the limit; past it, the HTTP parser refuses the line itself (PARSE_ERROR).
        max_line_size=max(8190, settings.max_query_bytes + 1024),
        max_field_size=settings.max_header_bytes,
        max_headers=64,
        keepalive_timeout=75.0,
    )
