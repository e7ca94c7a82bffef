"""The machine description, the results table, and the results files (Markdown + JSON)."""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.wrk import WrkResult


@dataclass
class Series:
    """Every repetition of one configuration, and the CPU time its server spent per request."""

    name: str
    note: str
    runs: list[WrkResult] = field(default_factory=list)
    cpu_us_per_request: list[float] = field(default_factory=list)

    def median(self, attribute: str) -> float:
        values = [float(getattr(run, attribute)) for run in self.runs]
        return statistics.median(values) if values else float("nan")

    @property
    def cpu_us(self) -> float:
        return statistics.median(self.cpu_us_per_request) if self.cpu_us_per_request else float("nan")

    @property
    def errors(self) -> int:
        return sum(run.errors for run in self.runs)


def paired(a: Series, b: Series, attribute: str) -> float:
    """The median over reps of a's figure over b's in the same rep (the two ran back to back)."""
    ratios = [float(getattr(x, attribute)) / float(getattr(y, attribute)) for x, y in zip(a.runs, b.runs, strict=True)]
    return statistics.median(ratios) if ratios else float("nan")


def _version(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "missing"
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def _package(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "missing"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = "unknown"
    try:
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        cpu = found[1].strip() if found else cpu
    except OSError:
        pass
    return {
        "host": socket.gethostname(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aiohttp": _package("aiohttp"),
        "uvloop": _package("uvloop"),
        "redis-py": _package("redis"),
        "prometheus-client": _package("prometheus-client"),
        "redis-server": _version(["redis-server", "--version"]),
        "nginx": _version(["nginx", "-v"]),
        "wrk": _version(["wrk", "--version"]),
    }


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b and b == b and a == a else "-"


def table(series: Sequence[Series], ceiling: Series | None, nginx: Series | None) -> str:
    """One Markdown table: medians per configuration and the ratios to the ceiling and to nginx."""
    columns = ("configuration", "hits/s", "p50 ms", "p99 ms", "server CPU µs/req", "/ceiling req/s", "/ceiling p99",
               "/nginx req/s", "errors")  # fmt: skip
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for s in series:
        rps, p50, p99 = s.median("rps"), s.median("p50_ms"), s.median("p99_ms")
        c_rps = _ratio(rps, ceiling.median("rps")) if ceiling else "-"
        c_p99 = _ratio(p99, ceiling.median("p99_ms")) if ceiling else "-"
        n_rps = _ratio(rps, nginx.median("rps")) if nginx else "-"
        cells = (
            s.name,
            f"{rps:,.0f}",
            f"{p50:.2f}",
            f"{p99:.2f}",
            f"{s.cpu_us:.1f}",
            c_rps,
            c_p99,
            n_rps,
            str(s.errors),
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write(directory: Path, stamp: str, markdown: str, data: dict[str, Any]) -> Path:
    """Write `<stamp>-<host>.md` and `.json` under `directory`; returns the Markdown path."""
    directory.mkdir(parents=True, exist_ok=True)
    base = directory / f"{stamp}-{re.sub(r'[^A-Za-z0-9_.-]', '_', socket.gethostname())}"
    base.with_suffix(".md").write_text(markdown)
    base.with_suffix(".json").write_text(json.dumps(data, indent=2, default=_plain) + "\n")
    return base.with_suffix(".md")


def _plain(obj: object) -> object:
    if isinstance(obj, WrkResult | Series):
        return asdict(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")
