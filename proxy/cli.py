"""Start-up: arguments, Settings (the only place the environment is read), the server and its shutdown.

`braze-proxy` serves on BRAZE_PROXY_HOST:BRAZE_PROXY_PORT (server.py); `--workers N` starts N processes
sharing the port (SO_REUSEPORT), supervised here.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Sequence

from prometheus_client.multiprocess import mark_process_dead
from pydantic import ValidationError

from proxy import __version__
from proxy.obs.metrics import MULTIPROC_ENV
from proxy.settings.model import (
    ENV_PREFIX,
    Settings,
    describe_error,
    describe_source_error,
    env_file_variables,
    unknown_variables,
)
from proxy.settings.shown import shown_default

log = logging.getLogger("braze_proxy")

EXIT_BAD_SETTINGS = 2
WORKER_ENV = "BRAZE_PROXY__WORKER"  # on processes started by --workers: how many there are (not a setting)


def settings_help() -> str:
    lines = ["settings (environment variables, or a .env file in the working directory):"]
    for name, spec in Settings.model_fields.items():
        shown = shown_default(spec) or "unset"
        description = spec.description or ""
        lines.append(f"  {ENV_PREFIX}{name.upper()}  (default: {shown})")
        lines.extend(textwrap.wrap(description, 96, initial_indent="      ", subsequent_indent="      "))
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="braze-proxy",
        description="A caching reverse proxy for Braze's analytics export (data series) endpoints.",
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
    except ValueError as error:  # a JSON setting that is not JSON, a .env file that cannot be parsed
        print(f"braze-proxy: {describe_source_error(error)}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    unknown = unknown_variables(env_file_variables() | dict(os.environ))
    if args.check:
        return check(settings, unknown)
    from proxy.http.server import serve
    from proxy.obs.logs import configure

    configure(settings.log_level)
    for name in unknown:
        log.warning("not a setting (a typo?); ignored", extra={"variable": name})
    if args.workers > 1 and not os.environ.get(WORKER_ENV):
        return supervise(args.workers)
    workers = int(os.environ.get(WORKER_ENV) or 0)
    return serve(settings, dict(os.environ), reuse_port=workers > 0, workers=max(1, workers))


def check(settings: Settings, unknown: list[str]) -> int:
    """`--check`: the settings, unknown variables, and Redis (asked, bounded); 0 if a start would work."""
    import asyncio

    from proxy import preflight

    problems = preflight.unknown_variable_problems(unknown)
    redis = asyncio.run(preflight.redis_problem(settings))
    problems += [redis] if redis else []
    for problem in problems:
        print(f"braze-proxy: error: {problem}", file=sys.stderr)
    if problems:
        return EXIT_BAD_SETTINGS
    print(f"braze-proxy: {preflight.store_description(settings)}")
    print(f"braze-proxy: {preflight.fill_explanation(settings)}")
    print("braze-proxy: settings are valid")
    return 0


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
        children.extend(subprocess.Popen(argv, env=env) for _ in range(workers))  # SIGHUP ignored till they serve
        signal.signal(signal.SIGHUP, forward)  # the workers reload their tokens file; none stops
        codes = []
        for child in children:
            codes.append(child.wait())
            mark_process_dead(child.pid, metrics_dir)  # type: ignore[no-untyped-call]  # its live gauges go
        return max((abs(code) for code in codes), default=0)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
