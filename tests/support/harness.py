"""In-process harness: the real proxy app (every real component) served on loopback by aiohttp's test server,
the real Braze stand-in served in the same event loop, a real redis-server where asked, and a clock the test
moves: a TTL, a backoff or a token wait takes no wall time.

Several `InProcessProxy` on one redis-server are replicas sharing it, in one process.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from proxy.http.app import COMPONENTS, create_app
from proxy.http.hooks import ProxyRunner
from proxy.obs.metrics import Metrics
from proxy.settings.model import Settings
from tests.support.braze_standin import StandinServer, StandinState
from tests.support.load import metric

PATH = "/sessions/data_series"


class ManualClock:
    """Epoch seconds that move only when the test (or a sleep of the code under test) moves them."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start
        self.slept: list[float] = []  # every sleep the code under test asked for, in order

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        """A sleep that takes no wall time: it moves the clock, then lets other tasks run."""
        self.slept.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


class RealClock(ManualClock):
    """Wall-clock time and real sleeps: for tests where other parties (another replica, a slow upstream) take
    real time, against which a moved clock would run out every wait at once."""

    def __call__(self) -> float:
        return time.time()

    def advance(self, seconds: float) -> None:
        raise AssertionError("a real clock cannot be moved")

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await asyncio.sleep(seconds)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def cache_status(self) -> str:
        return self.headers.get("Cache-Status", "")


@dataclass
class InProcessProxy:
    client: TestClient[Any, Any]
    metrics: Metrics
    clock: ManualClock

    async def get(self, query: str = "", key: str | None = "key-a", path: str = PATH, **headers: str) -> Reply:
        sent = dict(headers)
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        url = f"{path}?{query}" if query else path
        async with self.client.get(url, headers=sent, allow_redirects=False) as response:
            return Reply(response.status, dict(response.headers), await response.read())

    async def scrape(self) -> str:
        async with self.client.get("/metrics") as response:
            return await response.text()

    async def metric(self, name: str, **labels: str) -> float:
        return metric(await self.scrape(), name, **labels) or 0.0

    async def settle(self) -> None:
        """Let background work (refreshes) that needs no wall time finish."""
        for _ in range(20):
            await asyncio.sleep(0)

    @property
    def components(self) -> Any:
        return self.client.server.app[COMPONENTS]  # type: ignore[union-attr]


def settings(upstream: str, **values: Any) -> Settings:
    """Settings from keyword values only (no environment, no .env file). Windows from buckets are off unless
    asked (windows=True): most tests count the exact path's calls; tests/inprocess/test_windows.py covers the
    default."""
    values.setdefault("windows", False)
    return Settings(_env_file=None, upstream_url=upstream, **values)  # type: ignore[call-arg]


class ProxyTestServer(TestServer):
    """aiohttp's test server on the runner the proxy serves with (hooks.ProxyRunner: the series dispatch first)."""

    async def _make_runner(self, **kwargs: Any) -> ProxyRunner:
        return ProxyRunner(self.app, **kwargs)


@asynccontextmanager
async def proxy_in_process(
    upstream: str, clock: ManualClock | None = None, workers: int = 1, **values: Any
) -> AsyncIterator[InProcessProxy]:
    """The proxy app with `values` as settings, served on a free loopback port, on `clock`."""
    clock = clock or ManualClock()
    metrics = Metrics()
    app = create_app(settings(upstream, **values), metrics, workers=workers, clock=clock, sleep=clock.sleep)
    client = TestClient(ProxyTestServer(app))
    await client.start_server()
    try:
        yield InProcessProxy(client, metrics, clock)
    finally:
        await client.close()


@asynccontextmanager
async def standin_in_process() -> AsyncIterator[StandinServer]:
    server = StandinServer(StandinState())
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
