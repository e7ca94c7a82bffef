"""The `process_*` metrics of every process of a `--workers N` proxy, read from /proc at scrape time.

prometheus_client's process collector describes the process it runs in. Under `--workers N` a scrape is
answered by whichever worker the kernel hands the connection to, so that collector would report one worker
at random each time. Instead the answering worker reads /proc for every process of the proxy: the
supervisor (its parent) and each worker (its siblings, found by the metric files they keep in the
multiprocess directory) and labels each one's series with `pid`. Sum by pod or instance for a pod's total.

Parsing is pure (text in, numbers out); `read_process` and `ProxyProcesses.collect` do the reading.
`GcCounters` keeps each worker's garbage-collector counts as multiprocess counters, added up at scrape time.
"""

from __future__ import annotations

import gc
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# `--workers` allows 64, plus the supervisor: more candidates than that are not ours (or a bug); stop there.
MAX_PROCESSES = 65
# prometheus_client's multiprocess files: <kind>[_<mode>]_<pid>.db
_DB_FILE = re.compile(r"_(\d+)\.db$")


@dataclass(frozen=True, slots=True)
class StatFields:
    """What /proc/<pid>/stat says about a process, in base units (seconds, bytes)."""

    ppid: int
    cpu_seconds: float
    start_time_seconds: float  # Unix time
    virtual_bytes: int
    resident_bytes: int


@dataclass(frozen=True, slots=True)
class ProcessStats:
    pid: int
    stat: StatFields
    open_fds: int | None  # None when the fd directory cannot be listed
    max_fds: float | None  # the soft limit; math.inf when unlimited


def parse_stat(text: str, ticks_per_second: int, page_bytes: int, boot_time: float) -> StatFields:
    """Fields of a /proc/<pid>/stat line (proc(5)); ValueError if it is not one.

    The command name (field 2) sits in parentheses and may itself hold spaces and parentheses: the fields
    are counted from after its last ')'.
    """
    close = text.rfind(")")
    if close < 0:
        raise ValueError("not a /proc/<pid>/stat line")
    rest = text[close + 1 :].split()  # rest[0] is field 3 (state)
    if len(rest) < 22:
        raise ValueError("not a /proc/<pid>/stat line")
    utime, stime, starttime = int(rest[11]), int(rest[12]), int(rest[19])  # fields 14, 15, 22 (clock ticks)
    return StatFields(
        ppid=int(rest[1]),
        cpu_seconds=(utime + stime) / ticks_per_second,
        start_time_seconds=boot_time + starttime / ticks_per_second,
        virtual_bytes=int(rest[20]),
        resident_bytes=int(rest[21]) * page_bytes,
    )


def parse_boot_time(text: str) -> float:
    """The `btime` line of /proc/stat: when the machine booted (Unix time); ValueError without one."""
    for line in text.splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise ValueError("no btime in /proc/stat")


def parse_max_fds(text: str) -> float | None:
    """The soft `Max open files` limit of /proc/<pid>/limits (math.inf if unlimited), None without one."""
    for line in text.splitlines():
        if line.startswith("Max open files"):
            soft = line.split()[3]
            return math.inf if soft == "unlimited" else float(soft)
    return None


def pids_of_metric_files(names: Iterable[str]) -> set[int]:
    """The pids in prometheus_client multiprocess file names (`counter_123.db`, `gauge_livesum_123.db`)."""
    return {int(match[1]) for name in names if (match := _DB_FILE.search(name))}


def read_process(pid: int, boot_time: float, proc: Path = Path("/proc")) -> ProcessStats | None:
    """The stats of `pid` from /proc, or None if it is gone (or not ours to read)."""
    base = proc / str(pid)
    try:
        stat = parse_stat((base / "stat").read_text(), os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE"), boot_time)
    except (OSError, ValueError):
        return None
    try:
        open_fds: int | None = len(os.listdir(base / "fd"))
    except OSError:
        open_fds = None
    try:
        max_fds = parse_max_fds((base / "limits").read_text())
    except OSError:
        max_fds = None
    return ProcessStats(pid, stat, open_fds, max_fds)


class ProxyProcesses(Collector):
    """`process_*` series of the supervisor and every live worker of a `--workers N` proxy, by `pid`."""

    def __init__(self, multiproc_dir: str, proc: Path = Path("/proc")) -> None:
        self._dir = multiproc_dir
        self._proc = proc

    def processes(self) -> list[ProcessStats]:
        """The supervisor (this worker's parent), then every live worker of it, this one included."""
        try:
            boot_time = parse_boot_time((self._proc / "stat").read_text())
            names = os.listdir(self._dir)
        except (OSError, ValueError):
            return []
        supervisor = os.getppid()
        candidates = sorted(pids_of_metric_files(names) | {os.getpid()})[:MAX_PROCESSES]
        found = [read_process(supervisor, boot_time, self._proc)]
        for pid in candidates:
            stats = read_process(pid, boot_time, self._proc)
            # A worker's files outlive it, and its pid may be reused: keep only children of our supervisor.
            if stats is not None and stats.stat.ppid == supervisor:
                found.append(stats)
        return [s for s in found if s is not None]

    def collect(self) -> Iterator[Metric]:
        processes = self.processes()
        cpu = CounterMetricFamily(
            "process_cpu_seconds", "Total user and system CPU time spent in seconds.", labels=["pid"]
        )
        gauges = {
            "resident": GaugeMetricFamily("process_resident_memory_bytes", "Resident memory size in bytes.",
                                          labels=["pid"]),
            "virtual": GaugeMetricFamily("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                                         labels=["pid"]),
            "start": GaugeMetricFamily("process_start_time_seconds",
                                       "Start time of the process since unix epoch in seconds.", labels=["pid"]),
            "open": GaugeMetricFamily("process_open_fds", "Number of open file descriptors.", labels=["pid"]),
            "max": GaugeMetricFamily("process_max_fds", "Maximum number of open file descriptors.", labels=["pid"]),
        }  # fmt: skip
        for p in processes:
            pid = [str(p.pid)]
            cpu.add_metric(pid, p.stat.cpu_seconds)
            gauges["resident"].add_metric(pid, p.stat.resident_bytes)
            gauges["virtual"].add_metric(pid, p.stat.virtual_bytes)
            gauges["start"].add_metric(pid, p.stat.start_time_seconds)
            if p.open_fds is not None:
                gauges["open"].add_metric(pid, p.open_fds)
            if p.max_fds is not None:
                gauges["max"].add_metric(pid, p.max_fds)
        yield cpu
        yield from gauges.values()


class GcCounters:
    """Python's garbage-collector counts of this process as counters, for `--workers N`.

    prometheus_client's GC collector reads `gc.get_stats()` of the process it runs in: one worker's. As plain
    counters in multiprocess mode, each worker's counts are added up at scrape time (a dead worker's included,
    so the sums never go back). `update()` adds what the collector did since the last call (every second).
    """

    KEYS = (("collections", "python_gc_collections"), ("collected", "python_gc_objects_collected"),
            ("uncollectable", "python_gc_objects_uncollectable"))  # fmt: skip
    HELP = {
        "collections": "Number of times this generation was collected",
        "collected": "Objects collected during gc",
        "uncollectable": "Uncollectable objects found during GC",
    }

    def __init__(self, registry: CollectorRegistry) -> None:
        self._counters = {
            key: Counter(name, self.HELP[key], ["generation"], registry=registry) for key, name in self.KEYS
        }
        self._seen: dict[tuple[str, int], int] = {}

    def update(self) -> None:
        for generation, stats in enumerate(gc.get_stats()):
            for key, counter in self._counters.items():
                now = int(stats.get(key, 0))
                delta = now - self._seen.get((key, generation), 0)
                if delta > 0:
                    counter.labels(str(generation)).inc(delta)
                    self._seen[(key, generation)] = now
