"""Run `wrk` and read its summary: requests/s, latency percentiles, errors."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

from bench.servers import pinned

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
_PERCENTILE = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx answers and socket errors


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise RuntimeError("wrk not found: apt-get install -y wrk")
    return path


def run_wrk(url: str, seconds: float, connections: int, cpus: str | None) -> WrkResult:
    """One wrk run of `seconds` (1 thread, `connections` keep-alive connections) against `url`."""
    argv = [wrk_binary(), "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", url]
    done = subprocess.run(pinned(argv, cpus), capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    return parse(done.stdout)


def parse(text: str) -> WrkResult:
    """The figures of one wrk --latency report; raises ValueError if it is not one."""
    rate = _RATE.search(text)
    total = _TOTAL.search(text)
    percentiles = {p: float(value) * _UNITS[unit] for p, value, unit in _PERCENTILE.findall(text)}
    if rate is None or total is None or set(percentiles) != {"50", "99"}:
        raise ValueError(f"not a wrk --latency report:\n{text}")
    errors = sum(int(n) for n in _NON_2XX.findall(text))
    socket = _SOCKET.search(text)
    if socket is not None:
        errors += sum(int(n) for n in socket.groups())
    return WrkResult(float(rate[1]), percentiles["50"], percentiles["99"], int(total[1]), errors)
