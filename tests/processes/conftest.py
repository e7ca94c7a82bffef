"""Fixtures of the process level: one Braze stand-in process per session (reset per test), proxy processes
per test, and module-scoped Sentinel and Cluster topologies. Each test owns what it counts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.external_tools import require_tool
from tests.support.procs import ProxyFactory, ProxyProcess, StandinProcess
from tests.support.redis_topologies import ClusterSetup, SentinelSetup


@pytest.fixture(scope="module")
def sentinels() -> Iterator[SentinelSetup]:
    """A master, a replica and one Sentinel of the module's own (its tests fail the master over)."""
    require_tool("redis-server")
    with SentinelSetup(sentinels=1) as setup:
        yield setup


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterSetup]:
    """A 3-master Redis Cluster of the module's own (its tests stop and start nodes)."""
    require_tool("redis-server")
    require_tool("redis-cli")
    with ClusterSetup(masters=3) as setup:
        yield setup


@pytest.fixture(scope="session")
def standin_process() -> Iterator[StandinProcess]:
    """The worker's stand-in process, as it is (counters and faults as the last test left them)."""
    with StandinProcess() as standin:
        yield standin


@pytest.fixture
def standin_proc(standin_process: StandinProcess) -> StandinProcess:
    """The session's stand-in process, reset (counters zeroed, faults cleared) for this test."""
    if not standin_process.running:
        standin_process.start()
    standin_process.reset()
    return standin_process


@pytest.fixture
def start_proxy(standin_proc: StandinProcess) -> Iterator[ProxyFactory]:
    """Start proxy processes against the stand-in: `start_proxy(REDIS_URL=..., API_KEY=...)`.

    Keyword names are settings without the BRAZE_PROXY_ prefix; every process is stopped after the test.
    Windows from buckets are off unless asked (WINDOWS=true): these tests count the exact path's calls
    (the path Canvas and every fallback take); tests/inprocess/test_windows*.py cover the default.
    """
    started: list[ProxyProcess] = []

    def start(*, args: tuple[str, ...] = (), health_port: int | None = None, **settings: Any) -> ProxyProcess:
        env = {
            "BRAZE_PROXY_UPSTREAM_URL": standin_proc.url,
            "BRAZE_PROXY_LOG_LEVEL": "INFO",
            "BRAZE_PROXY_WINDOWS": "false",
        }
        env.update({f"BRAZE_PROXY_{name.upper()}": str(value) for name, value in settings.items()})
        proxy = ProxyProcess(env, args=args, health_port=health_port)
        started.append(proxy)
        return proxy.start()

    yield start
    for proxy in started:
        proxy.close()
