"""Child processes for the bench: start pinned to CPUs, wait (bounded) until they answer, account their CPU
time and peak memory from /proc, stop them (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Self

from tests.support.procs import Managed, ProxyProcess, RedisServer, StandinProcess

REPO_ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
POLL_S = 0.05


def answers(url: str) -> bool:
    """True if `url` gives any HTTP answer right now (an error status counts: the server is up)."""
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def pinned(argv: Sequence[str], cpus: str | None) -> list[str]:
    """`argv` run under `taskset -c cpus` (inherited by its threads and children), or as is."""
    if cpus is None:
        return list(argv)
    taskset = shutil.which("taskset")
    if taskset is None:
        raise RuntimeError("taskset not found: apt-get install -y util-linux")
    return [taskset, "-c", cpus, *argv]


def pin(pid: int, cpus: str) -> None:
    """Pin an already running process, every thread of it, to `cpus`."""
    subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], check=True, capture_output=True, timeout=10)


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (one scan of /proc per level, bounded by the process count)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo and len(found) < 10_000:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of `pids` so far."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / CLOCK_TICKS


def peak_rss_kib(pid: int) -> int:
    """VmHWM of `pid`: the most resident memory it has had, in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Daemon(Managed):
    """One server under test: its output goes to a temp file; `start()` waits until `ready_url` answers."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        ready_url: str,
        env: Mapping[str, str] | None = None,
        cpus: str | None = None,
        cwd: Path = REPO_ROOT,
    ) -> None:
        self.name = name
        self.cwd = cwd
        self.argv = pinned(argv, cpus)
        self.ready_url = ready_url
        self.env = {**os.environ, **(env or {})}
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_path: Path | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._proc.pid

    def start(self, timeout: float = 20) -> Self:
        fd, path = tempfile.mkstemp(prefix=f"bench-{self.name}-", suffix=".log")
        self._log, self._log_path = os.fdopen(fd, "ab"), Path(path)
        self._proc = subprocess.Popen(
            self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while not answers(self.ready_url):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(self.logs().splitlines()[-30:])
                self.close()
                raise RuntimeError(f"{self.name} did not come up on {self.ready_url}; log tail:\n{tail}")
            time.sleep(POLL_S)
        return self

    def logs(self) -> str:
        return self._log_path.read_text(errors="replace") if self._log_path is not None else ""

    def pids(self) -> list[int]:
        return descendants(self.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pids())

    def peak_rss_kib(self) -> int:
        return peak_rss_kib(self.pid)

    def close(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._log is not None and self._log_path is not None:
            self._log.close()
            self._log_path.unlink(missing_ok=True)
            self._log, self._log_path = None, None


def replicas(stack: ExitStack, standin: StandinProcess, redis: RedisServer, api_key: str, **settings: str) -> list[str]:
    """The base URLs of two proxies sharing `redis` in front of `standin`: managed mode with `api_key`, open to
    anonymous callers, warnings only; `settings` by name without the BRAZE_PROXY_ prefix. Closed with `stack`."""
    env = {
        "BRAZE_PROXY_UPSTREAM_URL": standin.url,
        "BRAZE_PROXY_API_KEY": api_key,
        "BRAZE_PROXY_ALLOW_ANONYMOUS": "true",
        "BRAZE_PROXY_REDIS_URL": redis.url,
        "BRAZE_PROXY_LOG_LEVEL": "WARNING",
        **{f"BRAZE_PROXY_{name.upper()}": value for name, value in settings.items()},
    }
    return [stack.enter_context(ProxyProcess(env)).url for _ in range(2)]
