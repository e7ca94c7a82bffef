"""Fixtures every level may use, and the order the suite runs in.

The suite is split by level, one folder each: `unit/` (pure: no socket, no subprocess, no sleep),
`inprocess/` (the real app and the real stand-in served in the test's own event loop, a moved clock, the
session's redis-server), `processes/` (real proxy, redis-server, Sentinel, Cluster, Prometheus processes)
and `artifacts/` (the chart, alerts, dashboard, docs, Dockerfile, Makefile, code shape). Shared support
(the stand-in, the harness, process handles) lives in `tests/support/`.

Tests never touch the machine's shared Redis on 6379: the session's redis-server runs on a free port.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.cli import Check, check_in_process
from tests.support.external_tools import require_tool
from tests.support.procs import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    require_tool("redis-server")
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client of the session's redis-server, emptied before each test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture(params=["memory", "redis"])
def store_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The settings of an in-process proxy on each store: memory, and the session's redis-server (flushed)."""
    if request.param == "memory":
        return {}
    request.getfixturevalue("redis_client")
    server: RedisServer = request.getfixturevalue("redis_server")
    return {"redis_url": server.url}


# The order files run in. `make test` hands whole files to its workers in this order, so the long files go
# first and the workers end on short ones together. The seconds each file took in the last whole run are kept in
# build/test-seconds.json (written by that run, read by the next: nothing to keep by hand): longest first. Files
# without a figure (a fresh clone, a new file) go by level, the slowest level first, in collection order within.
LEVELS = ("processes", "inprocess", "artifacts", "unit")
TESTS = Path(__file__).parent
SECONDS_FILE = TESTS.parent / "build" / "test-seconds.json"


def level_rank(path: Path) -> int:
    """The position of a test file's level in LEVELS (files outside them last)."""
    parts = path.relative_to(TESTS).parts if path.is_relative_to(TESTS) else ()
    return LEVELS.index(parts[0]) if parts and parts[0] in LEVELS else len(LEVELS)


def file_seconds() -> dict[str, float]:
    """The last whole run's seconds per test file (`unit/test_query.py`), or none."""
    try:
        known = json.loads(SECONDS_FILE.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in known.items()} if isinstance(known, dict) else {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    seconds = file_seconds()

    def order(item: pytest.Item) -> tuple[float, int]:
        name = item.path.relative_to(TESTS).as_posix() if item.path.is_relative_to(TESTS) else str(item.path)
        return -seconds.get(name, 0.0), level_rank(item.path)

    items.sort(key=order)  # stable: collection order within equal keys


class FileSeconds:
    """Sums each file's test durations (setup, call and teardown; xdist workers' reports included)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        name = report.nodeid.split("::", 1)[0].removeprefix("tests/")
        self.seconds[name] = self.seconds.get(name, 0.0) + report.duration

    def pytest_sessionfinish(self, exitstatus: int) -> None:
        if not self.seconds:
            return
        SECONDS_FILE.parent.mkdir(exist_ok=True)
        ordered = dict(sorted(((name, round(s, 2)) for name, s in self.seconds.items()), key=lambda kv: -kv[1]))
        SECONDS_FILE.write_text(json.dumps(ordered, indent=1) + "\n")


def whole_suite(config: pytest.Config) -> bool:
    """Whether this run is the whole suite (`make test`): only its figures are kept, so a run of one file or
    one test cannot make its file look short."""
    selected = config.option.keyword or config.option.markexpr or config.getoption("lf", False)
    return config.args_source == pytest.Config.ArgsSource.TESTPATHS and not selected


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and whole_suite(config):  # the controller, or a run without xdist
        config.pluginmanager.register(FileSeconds(), "braze-proxy-file-seconds")


@pytest.fixture
def check(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Check:
    """`braze-proxy --check` in this process with only the given BRAZE_PROXY_* variables (and no .env file):
    (exit code, stderr)."""
    return check_in_process(monkeypatch, capsys, tmp_path)
