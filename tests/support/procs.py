"""Real processes for tests: redis-server, the proxy and the Braze stand-in, all on 127.0.0.1.

Plain classes and functions (no pytest fixtures), so any test module or conftest can build on them.
Every wait is bounded; on a failed start the error carries the tail of the process's captured output.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
POLL_S = 0.05


# The ports we hand out lie below Linux's ephemeral range (32768-60999), where every outgoing connection takes
# its local port: a port the kernel chose for us could be taken by a client socket before our server binds it.
# Each pytest-xdist worker has its own slice of 1,000, and a port's +10000 (a Cluster node's bus) stays below
# 30000 too. Each process starts at a random place in its slice: one a test starts (the bench) shares its worker's.
PORTS_FROM = 10_000
PORTS_PER_WORKER = 1_000
BUS_OFFSET = 10_000


def _port_cycle() -> Iterator[int]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    # Two checkouts testing side by side on one machine keep apart by giving each its own first slice.
    offset = int(os.environ.get("TEST_PORT_SLICE_OFFSET", "0"))
    low = PORTS_FROM + ((int(worker) if worker.isdigit() else 0) + offset) % 10 * PORTS_PER_WORKER
    start = random.randrange(PORTS_PER_WORKER)
    return itertools.cycle([low + (start + i) % PORTS_PER_WORKER for i in range(PORTS_PER_WORKER)])


_ports = _port_cycle()


def port_is_free(port: int) -> bool:
    """True if nothing listens on (or is bound to) `port` on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port(bus: bool = False) -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (`bus`: its +10000 too, for a Cluster node)."""
    for _ in range(PORTS_PER_WORKER):
        port = next(_ports)
        if port_is_free(port) and (not bus or port_is_free(port + BUS_OFFSET)):
            return port
    raise RuntimeError(f"no free port among this worker's {PORTS_PER_WORKER}")


def http_get_json(url: str) -> Any:
    """GET `url` and decode its JSON body; raises urllib.error.HTTPError on a non-2xx status."""
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def http_post_json(url: str, obj: Any) -> Any:
    """POST `obj` as JSON to `url` and decode the JSON answer; raises urllib.error.HTTPError on non-2xx."""
    request = urllib.request.Request(
        url, data=json.dumps(obj).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


class Managed:
    """Started on entering a `with`, closed on leaving it, and closed when the start fails too (so a failed start
    leaves no process, temp file or directory behind)."""

    def start(self) -> Self:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _Process(Managed):
    """A child process whose stdout and stderr go to one temp file, with bounded start and stop."""

    name = "process"

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_path: Path | None = None
        self._final_logs = ""

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def logs(self) -> str:
        """Everything the process wrote to stdout and stderr so far (across restarts)."""
        if self._log_path is None:
            return self._final_logs
        return self._log_path.read_text(errors="replace")

    def _spawn(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        if self._log is None:
            fd, path = tempfile.mkstemp(prefix=f"{self.name}-", suffix=".log")
            self._log, self._log_path = os.fdopen(fd, "ab"), Path(path)
        self._proc = subprocess.Popen(
            list(argv),
            cwd=REPO_ROOT,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def _wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if not self.running:
                code = self._proc.returncode if self._proc is not None else None
                self._fail(f"{self.name} exited with code {code} before {what}")
            time.sleep(POLL_S)
        self._fail(f"{self.name} did not {what} within {timeout:g} s")

    def _fail(self, message: str) -> None:
        self.kill()
        tail = "\n".join(self.logs().splitlines()[-40:])
        raise RuntimeError(f"{message}; log tail:\n{tail}")

    def terminate(self, timeout: float = 10) -> int:
        """SIGTERM, wait up to `timeout` s (then SIGKILL); return the exit code (negative: the signal)."""
        proc = self._proc
        if proc is None:
            raise RuntimeError(f"{self.name} was never started")
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL and reap, if running."""
        if self.running and self._proc is not None:
            self._proc.kill()
            self._proc.wait(5)

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM and wait (SIGKILL after `timeout` s); `start()` may follow, on the same port."""
        if self._proc is not None:
            self.terminate(timeout)

    def close(self) -> None:
        """Stop the process if needed, keep its logs in memory and remove the log file."""
        if self._proc is not None:
            self.terminate()
        if self._log is not None and self._log_path is not None:
            self._log.close()
            self._final_logs = self._log_path.read_text(errors="replace")
            self._log_path.unlink(missing_ok=True)
            self._log, self._log_path = None, None


class RedisServer(_Process):
    """A throwaway redis-server on 127.0.0.1 (no persistence); `stop()`/`start()` keep the same port."""

    name = "redis-server"

    def __init__(self, port: int | None = None) -> None:
        super().__init__()
        self.port = port if port is not None else free_port()
        self._dir: str | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> Self:
        """Start (or restart) on `self.port` and wait until it answers PING (10 s at most)."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: apt-get install -y redis-server")
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="redis-")
        argv = [binary, "--save", "", "--appendonly", "no", "--port", str(self.port), "--bind", HOST]
        self._spawn([*argv, "--dir", self._dir])
        self._wait_until(self.ping, 10, "answer PING")
        return self

    def ping(self) -> bool:
        """True if the server answers PING right now."""
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def close(self) -> None:
        super().close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


class ProxyProcess(_Process):
    """`python -m proxy [args]` listening on 127.0.0.1:`port`, started and awaited on `/healthz`."""

    name = "proxy"

    def __init__(
        self,
        env: Mapping[str, str],
        port: int | None = None,
        args: Sequence[str] = (),
        health_port: int | None = None,
    ) -> None:
        super().__init__()
        self.env = dict(env)
        self.port = port if port is not None else free_port()
        self.args = list(args)
        self.health_port = health_port  # where /healthz is served, if not on `port` (BRAZE_PROXY_METRICS_PORT)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 15) -> Self:
        """Start (or restart on the same port) and wait until GET /healthz answers 200."""
        env = {**os.environ, "BRAZE_PROXY_HOST": HOST, "BRAZE_PROXY_PORT": str(self.port), **self.env}
        env.setdefault("PYTHONUNBUFFERED", "1")  # so logs() sees lines as they are written
        self._spawn([sys.executable, "-m", "proxy", *self.args], env)
        self._wait_until(self.healthy, timeout, "answer 200 on /healthz")
        return self

    def healthy(self) -> bool:
        """True if GET /healthz answers 200 right now."""
        try:
            port = self.health_port or self.port
            with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=1) as response:
                return bool(response.status == 200)
        except (OSError, http.client.HTTPException):  # refused, timed out, an error status, garbage
            return False


# What the `start_proxy` fixture (tests/processes/conftest.py) hands a test: `start_proxy(REDIS_URL=...)`.
ProxyFactory = Callable[..., ProxyProcess]


class StandinProcess(_Process):
    """`python -m tests.support.braze_standin` as its own process; `stop()`/`start()` keep the same port."""

    name = "braze-standin"

    def __init__(self, port: int | None = None, latency: float = 0.0) -> None:
        super().__init__()
        self.port = port if port is not None else free_port()
        self.latency = latency

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 10) -> Self:
        """Start (or restart on the same port) and wait for its READY line."""
        ready_line = f"READY {self.url}"
        seen = self.logs().count(ready_line)  # the log file spans restarts
        argv = [sys.executable, "-m", "tests.support.braze_standin", "--port", str(self.port)]
        self._spawn([*argv, "--latency", str(self.latency)])
        self._wait_until(lambda: self.logs().count(ready_line) > seen, timeout, "print READY")
        return self

    def stats(self) -> Any:
        return http_get_json(f"{self.url}/_standin/stats")

    def reset(self) -> Any:
        return http_post_json(f"{self.url}/_standin/reset", {})

    def config(self, **settings: Any) -> Any:
        """POST the settings to /_standin/config; returns the resulting settings."""
        return http_post_json(f"{self.url}/_standin/config", settings)
