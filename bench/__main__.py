"""`python -m bench`: the whole benchmark, started and torn down by itself on 127.0.0.1.

Servers (redis-server, the proxy in several configurations, nginx, the ceiling) run pinned to one core and
wrk to the other; configurations are measured interleaved, `--reps` times `--seconds` each, and the table
shows medians. The headline row is the proxy as deployed: default settings (the access log on, Redis with the
in-process L1); the access log off and the L1 off are extra rows. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from contextlib import ExitStack
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report
from bench.client import get_all
from bench.nginx import Nginx
from bench.report import Series
from bench.servers import REPO_ROOT, Daemon, pin
from bench.spellings import PATH, run_spellings
from bench.wrk import run_wrk
from tests.support.procs import RedisServer, StandinProcess, free_port

HOST = "127.0.0.1"
API_KEY = "bench-key"
QUERY = "length=14&unit=day&ending_at=2024-03-01T00:00:00Z&app_id=bench-app"
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT = "proxy: default settings"
QUIET = "proxy: access log off"
L1_OFF = "proxy: L1 off (Redis hits)"
TOOLS = {"wrk": "wrk", "nginx": "nginx", "redis-server": "redis-server", "taskset": "util-linux"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    # Many short reps rather than a few long ones: a target is the median of per-rep ratios, and a neighbour's
    # noise here comes in bursts of seconds that can swing one rep's ratio by a quarter.
    parser.add_argument("--reps", type=int, default=15, help="interleaved repetitions per configuration")
    parser.add_argument("--seconds", type=float, default=3, help="length of one wrk run")
    parser.add_argument("--connections", type=int, default=32, help="wrk keep-alive connections")
    parser.add_argument("--entries", type=int, default=10_000, help="entries cached before the RSS reading")
    parser.add_argument("--questions", type=int, default=20, help="distinct questions of the spellings workload")
    parser.add_argument("--spellings", type=int, default=25, help="spellings per question")
    parser.add_argument("--quick", action="store_true", help="1 rep x 1 s, no warm-up, few entries: proves it runs")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the .md and .json go")
    parser.add_argument(
        "--proxy-from",
        type=Path,
        default=REPO_ROOT,
        help="a checkout whose proxy package the proxies run (a before/after on one bench)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.reps, args.seconds, args.entries, args.questions, args.spellings = 1, 1.0, 100, 5, 10
    if not (1 <= args.reps <= 100 and 1 <= args.seconds <= 600 and 1 <= args.connections <= 10_000):
        parser.error("--reps 1..100, --seconds 1..600, --connections 1..10000")
    return args


def ensure_tools() -> None:
    """Install what is missing with apt-get when root, else stop with one line saying what to install."""
    missing = sorted({package for tool, package in TOOLS.items() if shutil.which(tool) is None})
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=False, env=env, timeout=900)
        missing = sorted({package for tool, package in TOOLS.items() if shutil.which(tool) is None})
    if missing:
        sys.exit(f"bench: missing tools; install them with: apt-get install -y {' '.join(missing)}")


def cores() -> tuple[str | None, str | None, str]:
    """(server cpus, client cpus, description): one core each when there are two or more."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return None, None, f"{len(available)} core: server and wrk share it (no pinning)"
    server, client = str(available[0]), str(available[1])
    return server, client, f"servers pinned to CPU {server}, wrk to CPU {client} (taskset)"


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, dict(response.headers), response.read()


def proxy(
    name: str, standin: StandinProcess, cpus: str | None, root: Path, workers: int = 1, **settings: str
) -> Daemon:
    """The proxy from checkout `root` with default settings but managed-key mode and an ample budget;
    `settings` by name without the BRAZE_PROXY_ prefix. Its log (the access log included) goes to a file."""
    port = free_port()
    env = {
        "BRAZE_PROXY_UPSTREAM_URL": standin.url,
        "BRAZE_PROXY_API_KEY": API_KEY,
        "BRAZE_PROXY_ALLOW_ANONYMOUS": "true",
        "BRAZE_PROXY_HOST": HOST,
        "BRAZE_PROXY_PORT": str(port),
        # The bench measures the cache, not the budget: filling 10,000 entries must not wait for tokens.
        "BRAZE_PROXY_RATE_LIMIT_PER_HOUR": "1000000000",
        "BRAZE_PROXY_RATE_LIMIT_BURST": "1000000",
    }
    env.update({f"BRAZE_PROXY_{key.upper()}": value for key, value in settings.items()})
    argv = [sys.executable, "-m", "proxy", "--workers", str(workers)]
    return Daemon(name, argv, f"http://{HOST}:{port}/healthz", env=env, cpus=cpus, cwd=root)


def base_url(daemon: Daemon) -> str:
    return daemon.ready_url.rsplit("/", 1)[0]


def warm(name: str, url: str, marker: str) -> None:
    """Fill the cache for the bench URL and check that the next answer is a hit (`marker` in Cache-Status)."""
    for _ in range(3):
        status, headers, _body = get(url)
        if status != 200:
            raise RuntimeError(f"{name}: {url} answered {status}")
    if marker and marker not in headers.get("Cache-Status", ""):
        raise RuntimeError(f"{name}: expected a cache hit, got Cache-Status {headers.get('Cache-Status')!r}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ensure_tools()
    server_cpus, client_cpus, pinning = cores()
    started = datetime.now(UTC)
    load_before = report.load_average()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        redis = stack.enter_context(RedisServer())
        if server_cpus is not None:
            pin(redis.pid, server_cpus)
        standin = stack.enter_context(StandinProcess())
        _, _, body = get(f"{standin.url}{PATH}?{QUERY}", {"Authorization": f"Bearer {API_KEY}"})
        (tmp / "body.json").write_bytes(body)
        print(f"bench: {pinning}; {args.reps} reps x {args.seconds:g} s, {args.connections} connections", flush=True)

        ceiling_port = free_port()
        ceiling_argv = [
            sys.executable,
            "-m",
            "bench.ceiling",
            "--port",
            str(ceiling_port),
            "--body",
            str(tmp / "body.json"),
        ]
        ceiling = stack.enter_context(
            Daemon("ceiling", ceiling_argv, f"http://{HOST}:{ceiling_port}/", cpus=server_cpus)
        )
        nginx = stack.enter_context(Nginx(free_port(), standin.port, API_KEY, server_cpus))
        root = args.proxy_from.resolve()
        default = stack.enter_context(proxy("proxy-default", standin, server_cpus, root, redis_url=redis.url))
        quiet = stack.enter_context(
            proxy("proxy-no-access-log", standin, server_cpus, root, redis_url=redis.url, access_log="false")
        )
        no_l1 = stack.enter_context(
            proxy("proxy-redis", standin, server_cpus, root, redis_url=redis.url, l1_enabled="false")
        )
        memory = stack.enter_context(proxy("proxy-memory", standin, server_cpus, root))
        one = stack.enter_context(proxy("proxy-1w", standin, None, root, redis_url=redis.url))
        two = stack.enter_context(proxy("proxy-2w", standin, None, root, workers=2, redis_url=redis.url))

        print("bench: spellings workload", flush=True)
        spelled = run_spellings(base_url(default), standin, args.questions, args.spellings)
        # Every proxy compared side by side holds the same entries: a row that differs in one setting must not
        # also differ in how full its cache is (a full one serves its hit a few µs slower).
        print(f"bench: caching {args.entries} entries in each pinned proxy", flush=True)
        loads = [f"length=7&ending_at=2024-02-01&app_id=load-{i}" for i in range(args.entries)]
        for daemon in (default, quiet, no_l1, memory):
            outcomes = get_all(base_url(daemon) + PATH, loads)
            if sum(n for outcome, n in outcomes.items() if outcome.startswith("200")) != len(loads):
                raise RuntimeError(f"{daemon.name}: loading entries failed: {dict(outcomes)}")

        # (series, daemon whose CPU time counts, url, wrk cpus)
        nginx_url = f"http://{HOST}:{nginx.port}{PATH}?{QUERY}"
        plan: list[tuple[Series, Daemon, str, str | None]] = [
            (Series("ceiling: static bytes", "aiohttp + uvloop, one prebuilt body"), ceiling,
             f"{base_url(ceiling)}{PATH}?{QUERY}", client_cpus),
            (Series("nginx proxy_cache", "1 worker process"), nginx.daemon, nginx_url, client_cpus),
            (Series(DEFAULT, "access log on, Redis + in-process L1"), default, f"{base_url(default)}{PATH}?{QUERY}",
             client_cpus),
            (Series(QUIET, "BRAZE_PROXY_ACCESS_LOG=false, Redis + L1"), quiet, f"{base_url(quiet)}{PATH}?{QUERY}",
             client_cpus),
            (Series(L1_OFF, "BRAZE_PROXY_L1_ENABLED=false: every hit read from Redis"), no_l1,
             f"{base_url(no_l1)}{PATH}?{QUERY}", client_cpus),
            (Series("proxy: memory store", "no Redis, access log on"), memory, f"{base_url(memory)}{PATH}?{QUERY}",
             client_cpus),
            (Series("proxy: L1, --workers 1, unpinned", "wrk shares both cores"), one,
             f"{base_url(one)}{PATH}?{QUERY}", None),
            (Series("proxy: L1, --workers 2, unpinned", "wrk shares both cores"), two,
             f"{base_url(two)}{PATH}?{QUERY}", None),
        ]  # fmt: skip
        for series, daemon, url, _cpus in plan:
            warm(series.name, url, "HIT" if daemon is nginx.daemon else ("hit" if "proxy" in series.name else ""))
        if not args.quick:  # the quick mode proves the bench runs; its figures mean nothing, warmed or not
            for _series, _daemon, url, cpus in plan:
                run_wrk(url, min(2.0, args.seconds), args.connections, cpus)

        # The rows the targets compare run back to back in every rep, so each rep gives one ratio per target
        # measured within seconds (a neighbour's noise moves on a scale of seconds and hits both sides alike);
        # each block is rotated rep by rep, so no configuration always goes first.
        compared = [plan[0], plan[2], plan[3], plan[4]]  # ceiling, default, access log off, L1 off
        others = [plan[1], *plan[5:]]
        for rep in range(args.reps):
            order = rotated(compared, rep) + rotated(others, rep)
            for series, daemon, url, cpus in order:
                cpu_before = daemon.cpu_seconds()
                result = run_wrk(url, args.seconds, args.connections, cpus)
                cpu_after = daemon.cpu_seconds()
                series.runs.append(result)
                series.cpu_us_per_request.append(1e6 * (cpu_after - cpu_before) / max(1, result.requests))
                print(f"  rep {rep + 1}/{args.reps} {series.name:<36} {result.rps:>9,.0f}/s"
                      f"  p50 {result.p50_ms:.2f} ms  p99 {result.p99_ms:.2f} ms", flush=True)  # fmt: skip
        rss = {DEFAULT: default.peak_rss_kib(), "proxy: memory store": memory.peak_rss_kib()}
        load_after = report.load_average()

    series = [entry[0] for entry in plan]
    by_name = {s.name: s for s in series}
    text = render(args, series, by_name, rss, spelled, pinning, started, load_before, load_after)
    print("\n" + text)
    data: dict[str, Any] = {
        "started": started.isoformat(),
        "machine": report.machine(),
        "conditions": {"pinning": pinning, "reps": args.reps, "seconds": args.seconds, "proxy_from": str(root),
                       "connections": args.connections, "load_before": load_before, "load_after": load_after},
        "series": [asdict(s) for s in series],
        "peak_rss_kib": rss,
        "entries": args.entries,
        "spellings": asdict(spelled),
    }  # fmt: skip
    path = report.write(args.out, started.strftime("%Y-%m-%d"), text, data)
    print(f"bench: wrote {path} and {path.with_suffix('.json').name}")
    return 0 if spelled.ok else 1


def rotated(items: list[Any], by: int) -> list[Any]:
    return items[by % len(items) :] + items[: by % len(items)]


def render(
    args: argparse.Namespace,
    series: list[Series],
    by_name: dict[str, Series],
    rss: dict[str, int],
    spelled: Any,
    pinning: str,
    started: datetime,
    load_before: str,
    load_after: str,
) -> str:
    ceiling, nginx = by_name["ceiling: static bytes"], by_name["nginx proxy_cache"]
    default, quiet, no_l1 = by_name[DEFAULT], by_name[QUIET], by_name[L1_OFF]
    one, two = by_name["proxy: L1, --workers 1, unpinned"], by_name["proxy: L1, --workers 2, unpinned"]
    rps_ratio = report.paired(default, ceiling, "rps")
    p99_ratio = report.paired(default, ceiling, "p99_ms")
    log_ratio = report.paired(default, quiet, "rps")
    l1_off_ratio = report.paired(no_l1, ceiling, "rps")
    m = report.machine()
    lines = [
        f"# Bench results, {started:%Y-%m-%d %H:%M} UTC, {m['host']}",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}; Python {m['python']}, aiohttp {m['aiohttp']},"
        f" uvloop {m['uvloop']}, redis-py {m['redis-py']}, prometheus-client {m['prometheus-client']};"
        f" {m['redis-server']}; {m['nginx']}; {m['wrk']}.",
        "",
        f"Conditions: {pinning}; wrk 1 thread, {args.connections} connections, one cached URL;"
        f" {args.reps} interleaved reps x {args.seconds:g} s, medians; load average before {load_before},"
        f" after {load_after}.",
        "",
        report.table(series, ceiling, nginx),
        "",
        f"- Targets, each the median of its per-rep ratios (the two rows ran back to back in every rep): default"
        f" settings vs ceiling, req/s {rps_ratio:.2f} (target >= 0.9), p99 {p99_ratio:.2f} (target <= 1.3); default"
        f" vs access log off, req/s {log_ratio:.2f} (target >= 0.95); L1 off vs ceiling, req/s {l1_off_ratio:.2f}"
        f" (target >= 0.4).",
        f"- The same as ratios of the rows' medians: {default.median('rps') / ceiling.median('rps'):.2f},"
        f" {default.median('p99_ms') / ceiling.median('p99_ms'):.2f},"
        f" {default.median('rps') / quiet.median('rps'):.2f}, {no_l1.median('rps') / ceiling.median('rps'):.2f}."
        " Per rep, default / access log off: "
        + ", ".join(f"{a.rps / b.rps:.2f}" for a, b in zip(default.runs, quiet.runs, strict=True))
        + ".",
        f"- Scaling, both unpinned (wrk shares the two cores): --workers 2 / --workers 1 ="
        f" {two.median('rps') / one.median('rps'):.2f}.",
        f"- Peak RSS (VmHWM) with {args.entries:,} entries cached: "
        + ", ".join(f"{name} {kib / 1024:.1f} MB" for name, kib in rss.items())
        + " (target < 150 MB).",
        f"- Spellings: {spelled.requests} spellings of {spelled.questions} distinct questions cost"
        f" {spelled.upstream_calls} upstream calls (target: {spelled.questions}); outcomes {spelled.outcomes}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
