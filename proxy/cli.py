"""Start-up: arguments, Settings (the only place the environment is read), the server and its shutdown.

`braze-proxy` serves on BRAZE_PROXY_HOST:BRAZE_PROXY_PORT; `--workers N` starts N processes sharing the
port (SO_REUSEPORT). SIGTERM: report not-ready, stop accepting, finish in-flight requests within the
grace period, close the pools.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client.multiprocess import mark_process_dead
from pydantic import ValidationError

from proxy import __version__
from proxy.metrics import MULTIPROC_ENV
from proxy.settings import ENV_PREFIX, Settings, describe_error

if TYPE_CHECKING:
    from proxy.web import Runtime

log = logging.getLogger("braze_proxy")

EXIT_BAD_SETTINGS = 2
EXIT_CANNOT_LISTEN = 3
WORKER_ENV = "BRAZE_PROXY__WORKER"  # on processes started by --workers: how many there are (not a setting)
METRICS_FLUSH_SECONDS = 1.0
ACCEPT_SETTLE_SECONDS = 0.1


def settings_help() -> str:
    lines = ["settings (environment variables, or a .env file in the working directory):"]
    for name, spec in Settings.model_fields.items():
        default = spec.default
        shown = "unset" if default is None else str(default)
        description = spec.description or ""
        lines.append(f"  {ENV_PREFIX}{name.upper()}  (default: {shown})")
        lines.extend(textwrap.wrap(description, 96, initial_indent="      ", subsequent_indent="      "))
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="braze-proxy",
        description="A caching reverse proxy for Braze's GET /sessions/data_series.",
        epilog=settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)")
    parser.add_argument("--check", action="store_true", help="validate the settings and exit")
    parser.add_argument("--version", action="version", version=f"braze-proxy {__version__}")
    args = parser.parse_args(argv)
    if not 1 <= args.workers <= 64:
        parser.error("--workers must be between 1 and 64")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as error:
        print(f"braze-proxy: {describe_error(error)}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    except ValueError as error:  # e.g. a .env file that cannot be parsed
        print(f"braze-proxy: invalid settings: {error}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    if args.check:
        print("braze-proxy: settings are valid")
        return 0
    from proxy.logs import configure

    configure(settings.log_level)
    if args.workers > 1 and not os.environ.get(WORKER_ENV):
        return supervise(args.workers)
    workers = int(os.environ.get(WORKER_ENV) or 0)
    return serve(settings, reuse_port=workers > 0, workers=max(1, workers))


def serve(settings: Settings, reuse_port: bool = False, workers: int = 1) -> int:
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(run_server(settings, reuse_port, workers))


async def run_server(settings: Settings, reuse_port: bool, workers: int = 1) -> int:
    from proxy.web import RUNTIME, create_app, create_ops_app, make_runner

    app = create_app(settings, workers=workers)
    runners: list[web.AppRunner] = []
    main_runner = make_runner(app, settings)
    await main_runner.setup()  # runs cleanup_ctx start-up: pools and service are built here
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
        print(f"braze-proxy: cannot listen on {settings.host}:{port}: {error.strerror}", file=sys.stderr)
        for runner in reversed(runners):
            await runner.cleanup()
        return EXIT_CANNOT_LISTEN
    log.info("listening", extra={"host": settings.host, "port": settings.port, "pid": os.getpid()})
    flusher = asyncio.create_task(sample_every(app[RUNTIME], METRICS_FLUSH_SECONDS))
    # What start-up built lives as long as the process: keep the collector from walking it again and again.
    gc.freeze()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    # Draining: readiness says 503 at once; the main runner stops accepting and waits for in-flight
    # requests (up to the grace period) before the pools close. The ops port stays up until then.
    app[RUNTIME].draining = True
    log.info("draining", extra={"grace_seconds": settings.shutdown_grace_seconds})
    for listener in list(main_runner.sites):
        await listener.stop()
    # Connections accepted just before the listener closed get a moment to deliver their request, which
    # then counts as in flight; without it aiohttp drops the request unanswered and idles out the grace.
    await asyncio.sleep(ACCEPT_SETTLE_SECONDS)
    if main_runner.server is not None:
        main_runner.server.pre_shutdown()  # keep-alive connections close once their current request is answered
    cancelled = await app[RUNTIME].drain(settings.shutdown_grace_seconds)
    if cancelled:
        log.warning("grace period over, cancelled requests", extra={"cancelled": cancelled})
    await main_runner.cleanup()
    for runner in runners[1:]:
        await runner.cleanup()
    flusher.cancel()
    app[RUNTIME].metrics.flush()
    log.info("stopped")
    return 0


async def sample_every(runtime: Runtime, seconds: float) -> None:
    """Fold the hot path's batched counts into Prometheus and sample the entry gauges every `seconds`, so that
    with `--workers N` a scrape answered by one worker sees the others' figures too (at most `seconds` old).
    Runs until cancelled."""
    from proxy.web import sample_metrics

    while True:
        await asyncio.sleep(seconds)
        sample_metrics(runtime)


def supervise(workers: int) -> int:
    """Start `workers` copies of this command sharing the port; pass signals on; exit when all have.

    The workers keep their metrics in files of a fresh directory (Prometheus multiprocess mode), so /metrics,
    whichever worker answers it, adds up all of them; the directory is removed when the last worker exits.
    """
    metrics_dir = tempfile.mkdtemp(prefix="braze-proxy-metrics-")
    try:
        env = {**os.environ, WORKER_ENV: str(workers), MULTIPROC_ENV: metrics_dir}
        argv = [sys.executable, "-m", "proxy"]
        children: list[subprocess.Popen[bytes]] = []

        def forward(signum: int, _frame: object) -> None:
            for child in children:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        children.extend(subprocess.Popen(argv, env=env) for _ in range(workers))
        codes = []
        for child in children:
            codes.append(child.wait())
            mark_process_dead(child.pid, metrics_dir)  # type: ignore[no-untyped-call]  # its live gauges go
        return max((abs(code) for code in codes), default=0)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
