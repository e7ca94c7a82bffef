"""The bench runs end to end in its quickest mode (a proof that it works, not a measurement)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.external_tools import require_tool
from tests.support.procs import REPO_ROOT


def bench(*argv: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """`python -m <argv>` from the repository, which must exit 0."""
    done = subprocess.run(
        [sys.executable, "-m", *argv], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_quick_bench_writes_its_results(tmp_path: Path) -> None:
    for tool in ("wrk", "nginx", "redis-server", "taskset"):
        require_tool(tool)
    done = bench("bench", "--quick", "--out", str(tmp_path), timeout=240)
    assert "proxy: default settings" in done.stdout and "default vs access log off" in done.stdout
    (markdown,) = tmp_path.glob("*.md")
    data = json.loads(markdown.with_suffix(".json").read_text())
    names = [series["name"] for series in data["series"]]
    assert names[:5] == ["ceiling: static bytes", "nginx proxy_cache", "proxy: default settings",
                         "proxy: access log off", "proxy: L1 off (Redis hits)"]  # fmt: skip
    for series in data["series"]:
        (run,) = series["runs"]
        assert run["rps"] > 0 and run["errors"] == 0, series
    assert data["spellings"]["upstream_calls"] == data["spellings"]["questions"]
    assert data["peak_rss_kib"]["proxy: default settings"] > 0
    assert "| configuration |" in markdown.read_text()


def test_the_dashboard_workload_runs_and_windows_beat_exact_caching() -> None:
    for tool in ("nginx", "redis-server"):
        require_tool(tool)
    done = bench("bench.dashboard", "--series", "2", timeout=240)
    assert "lower bound" in done.stdout and "nginx proxy_cache" in done.stdout


def test_the_collapse_bench_runs_and_every_trial_is_one_call_and_collapsed() -> None:
    require_tool("redis-server")
    done = bench("bench.collapse", "--trials", "3", timeout=120)
    assert "polling only (before)" in done.stdout and "woken by pub/sub" in done.stdout
    assert done.stdout.count("3 upstream calls, 3 collapsed, 3 trials") == 2, done.stdout
