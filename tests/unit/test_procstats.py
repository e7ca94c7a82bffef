"""proxy.obs.procstats: parsing /proc text (pure), and reading this very process through it."""

from __future__ import annotations

import gc
import math
import os
import resource
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from proxy.obs.procstats import (
    GcCounters,
    ProxyProcesses,
    parse_boot_time,
    parse_max_fds,
    parse_stat,
    pids_of_metric_files,
    read_process,
)

# A /proc/<pid>/stat line whose command name holds a space and parentheses (proc(5) allows any bytes there).
STAT = (
    "4242 (a (b) c) S 4200 4242 4242 0 -1 4194560 1000 0 0 0 250 150 0 0 20 0 3 0 12345 "
    "104857600 2560 18446744073709551615 1 1 0 0 0 0 0 16781312 16386 0 0 0 17 1 0 0 0 0 0"
)
LIMITS = """Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 1048576              files
"""


def test_stat_fields_in_base_units() -> None:
    fields = parse_stat(STAT, ticks_per_second=100, page_bytes=4096, boot_time=1_700_000_000.0)
    assert fields.ppid == 4200
    assert fields.cpu_seconds == 4.0  # (250 + 150) ticks
    assert fields.start_time_seconds == 1_700_000_000.0 + 123.45
    assert fields.virtual_bytes == 104857600
    assert fields.resident_bytes == 2560 * 4096


@pytest.mark.parametrize("text", ["", "4242 (name", "4242 (name) S 1 2 3"])
def test_not_a_stat_line(text: str) -> None:
    with pytest.raises(ValueError):
        parse_stat(text, 100, 4096, 0.0)


def test_boot_time_and_limits() -> None:
    assert parse_boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 9\n") == 1_700_000_000.0
    with pytest.raises(ValueError):
        parse_boot_time("cpu  1 2 3\n")
    assert parse_max_fds(LIMITS) == 1024
    assert parse_max_fds(LIMITS.replace("1024   ", "unlimited")) == math.inf
    assert parse_max_fds("Limit Soft Hard Units\n") is None


def test_pids_of_metric_files() -> None:
    names = ["counter_12.db", "gauge_livesum_345.db", "histogram_12.db", "notes.txt", "gauge_max_7.db.tmp"]
    assert pids_of_metric_files(names) == {12, 345}


def test_this_process_read_through_proc() -> None:
    boot = parse_boot_time(Path("/proc/stat").read_text())
    stats = read_process(os.getpid(), boot)
    assert stats is not None
    assert stats.stat.ppid == os.getppid()
    used = sum(os.times()[:2])
    assert abs(stats.stat.cpu_seconds - used) < 0.1  # the same clock ticks, read a moment apart
    assert 0 < time.time() - stats.stat.start_time_seconds < 24 * 3600
    assert stats.max_fds == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert stats.open_fds is not None and stats.open_fds >= 3
    assert read_process(2**22 + 1, boot) is None  # above pid_max: never a process


def test_outside_a_workers_supervisor_only_the_real_family_shows(tmp_path: Path) -> None:
    """A worker's file whose pid is not a child of our parent (here: this process's parent itself) is skipped."""
    (tmp_path / f"counter_{os.getppid()}.db").write_bytes(b"")
    pids = [p.pid for p in ProxyProcesses(str(tmp_path)).processes()]
    assert pids == [os.getppid(), os.getpid()]  # the parent (as supervisor), and this process (its child)


def test_gc_counters_follow_the_collector() -> None:
    registry = CollectorRegistry()
    counters = GcCounters(registry)
    counters.update()
    before = registry.get_sample_value("python_gc_collections_total", {"generation": "2"})
    assert before == gc.get_stats()[2]["collections"]  # counted from the process's start, not from now
    gc.collect()
    counters.update()
    counters.update()  # nothing new: nothing added
    after = registry.get_sample_value("python_gc_collections_total", {"generation": "2"})
    assert after == gc.get_stats()[2]["collections"] and after is not None and before is not None
    assert after >= before + 1
