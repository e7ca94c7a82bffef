"""Shared fixtures: one real redis-server and one Braze stand-in process per session, proxies per test.

Tests never touch the machine's shared Redis on 6379: the session's redis-server runs on a free port.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from tests.external_tools import binary
from tests.procs import ProxyProcess, RedisServer, StandinProcess
from tests.redis_topologies import ClusterSetup, SentinelSetup


def require_tool(name: str) -> str:
    """The path of `name`; a missing tool fails the test in CI and skips it elsewhere."""
    return binary(name, "`make test` installs it")


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
    with StandinProcess() as standin:
        yield standin


@pytest.fixture
def standin(standin_process: StandinProcess) -> StandinProcess:
    """The session's stand-in, reset (counters zeroed, faults cleared) for this test."""
    if not standin_process.running:
        standin_process.start()
    standin_process.reset()
    return standin_process


ProxyFactory = Callable[..., ProxyProcess]


@pytest.fixture
def start_proxy(standin: StandinProcess) -> Iterator[ProxyFactory]:
    """Start proxy processes against the stand-in: `start_proxy(REDIS_URL=..., API_KEY=...)`.

    Keyword names are settings without the BRAZE_PROXY_ prefix; every process is stopped after the test.
    Windows from buckets are off unless asked (WINDOWS=true): these tests count the exact path's calls
    (the path Canvas and every fallback take); tests/test_windows*.py cover the default.
    """
    started: list[ProxyProcess] = []

    def start(*, args: tuple[str, ...] = (), health_port: int | None = None, **settings: Any) -> ProxyProcess:
        env = {"BRAZE_PROXY_UPSTREAM_URL": standin.url, "BRAZE_PROXY_LOG_LEVEL": "INFO", "BRAZE_PROXY_WINDOWS": "false"}
        env.update({f"BRAZE_PROXY_{name.upper()}": str(value) for name, value in settings.items()})
        proxy = ProxyProcess(env, args=args, health_port=health_port)
        started.append(proxy)
        return proxy.start()

    yield start
    for proxy in started:
        proxy.close()


# The files whose tests take longest (seconds of real load, fuzzing, whole benches), longest first. They are run
# first, so that `make test`'s workers end on short tests together instead of one of them on a long one.
LONGEST_FIRST = (
    "test_bench_smoke.py",
    "test_fair_budget.py",
    "test_redis_ha.py",
    "test_fuzz.py",
    "test_soak_short.py",
    "test_fuzz_endpoints.py",
    "test_prometheus_scrape.py",
    "test_upstream_protection.py",
    "test_redis_outage.py",
    "test_bounded.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONGEST_FIRST)))  # stable: the rest keep their order
