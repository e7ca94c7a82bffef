"""Redis outages, for real: stop, restart and freeze (SIGSTOP) a redis-server under a running proxy.

Fail-open (the default): requests keep being answered (L1 hits, upstream misses on the in-process budget),
no request waits long on a dead Redis, /readyz says "degraded", braze_proxy_redis_up goes 0 then 1.
Fail-closed: misses are refused with 503, /readyz is 503, hits L1 still holds are served.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import redis

from tests.support.external_tools import require_tool
from tests.support.load import (
    PATH,
    Outcome,
    bearer,
    data_query,
    get,
    metric,
    run_load,
    scrape,
    wait_for,
)
from tests.support.procs import ProxyFactory, ProxyProcess, RedisServer, StandinProcess

KEY = "outage-key"
WARM = 20  # questions fetched before the outage (in L1 and Redis)


@pytest.fixture(scope="module")
def outage_redis() -> Iterator[RedisServer]:
    """A redis-server of this module's own, since its tests stop, restart and freeze it."""
    require_tool("redis-server")
    with RedisServer() as server:
        yield server


@pytest.fixture
def flaky_redis(outage_redis: RedisServer) -> Iterator[RedisServer]:
    """The module's redis-server, running and empty at the start of the test, thawed and running after it."""
    if not outage_redis.running:
        outage_redis.start()
    client = redis.Redis.from_url(outage_redis.url)
    client.flushall()
    client.close()
    yield outage_redis
    if outage_redis.running:
        os.kill(outage_redis.pid, signal.SIGCONT)
    else:
        outage_redis.start()


def url(proxy: ProxyProcess, query: str) -> str:
    return f"{proxy.url}{PATH}?{query}"


def question(i: int) -> str:
    """The i-th distinct question (distinct lengths and ending days)."""
    return data_query(length=1 + i % 100, ending_at=f"2023-{1 + (i // 100) % 12:02d}-{1 + (i // 1200) % 28:02d}")


async def readiness(session: aiohttp.ClientSession, proxy: ProxyProcess) -> tuple[int, Any]:
    async with session.get(f"{proxy.url}/readyz", timeout=aiohttp.ClientTimeout(total=5)) as response:
        return response.status, json.loads(await response.read())


async def redis_up(session: aiohttp.ClientSession, proxy: ProxyProcess) -> float | None:
    return metric(await scrape(session, proxy.url), "braze_proxy_redis_up")


async def warm(session: aiohttp.ClientSession, proxy: ProxyProcess, count: int = WARM) -> None:
    for i in range(count):
        outcome = await get(session, url(proxy, question(i)), bearer(KEY))
        assert outcome.status == 200, outcome


def report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    with capsys.disabled():
        print(f"\n[figure] {line}")


async def test_redis_restart_mid_traffic_loses_no_request(
    start_proxy: ProxyFactory,
    flaky_redis: RedisServer,
    standin_proc: StandinProcess,
    capsys: pytest.CaptureFixture[str],
) -> None:
    proxy = start_proxy(REDIS_URL=flaky_redis.url)
    async with aiohttp.ClientSession() as session:
        await warm(session, proxy)
        assert await redis_up(session, proxy) == 1
        assert await readiness(session, proxy) == (200, {"status": "ready", "store": "redis", "redis": "up"})

        # 3 of 4 requests repeat a warm question, every 4th asks a new one (a miss, so an upstream call).
        def make(i: int) -> tuple[str, dict[str, str]]:
            return url(proxy, question(i % WARM if i % 4 else 1000 + i)), bearer(KEY)

        stop = asyncio.Event()
        load = asyncio.create_task(run_load(make, workers=6, seconds=30, max_requests=50_000, stop=stop))
        seen: dict[str, Any] = {}
        try:
            await asyncio.sleep(1.0)
            flaky_redis.stop()
            assert await wait_for(lambda: _is(redis_up(session, proxy), 0), 5), "redis_up never went 0"
            seen["down"] = await readiness(session, proxy)
            await asyncio.sleep(1.5)
            flaky_redis.start()
            assert await wait_for(lambda: _is(redis_up(session, proxy), 1), 10), "redis_up never came back to 1"
            seen["up"] = await readiness(session, proxy)
            await asyncio.sleep(1.0)
        finally:
            stop.set()
            tally = await load
        writes = redis.Redis.from_url(flaky_redis.url)
        try:
            stored_after_restart = len(list(writes.scan_iter(match="braze-proxy:*", count=1000)))
        finally:
            writes.close()

    report(capsys, f"redis restart under load: {tally.failures()} of {tally.total} requests lost {dict(tally.counts)}")
    assert tally.total > 100
    assert tally.failures() == 0, (dict(tally.counts), tally.samples)
    assert tally.max_latency() < 2.0, tally.max_latency()
    assert seen["down"] == (200, {"status": "degraded", "store": "redis", "redis": "down"})
    assert seen["up"] == (200, {"status": "ready", "store": "redis", "redis": "up"})
    # Misses after the restart were written to the new (empty) Redis again: the recovery is real.
    assert stored_after_restart > 0
    # One outage, one recovery: no flapping on connections the restart left dead in the pool.
    assert proxy.logs().count("redis unreachable") == 1
    assert proxy.logs().count("redis healthy again") == 1


async def _is(value: Any, expected: float) -> bool:
    return bool(await value == expected)


async def test_frozen_redis_bounds_every_request(
    start_proxy: ProxyFactory, flaky_redis: RedisServer, standin_proc: StandinProcess
) -> None:
    """SIGSTOP: Redis accepts connections but never answers. Every call is cut at BRAZE_PROXY_REDIS_TIMEOUT."""
    proxy = start_proxy(REDIS_URL=flaky_redis.url, REDIS_TIMEOUT="0.3")
    async with aiohttp.ClientSession() as session:
        await warm(session, proxy)

        def make(i: int) -> tuple[str, dict[str, str]]:
            return url(proxy, question(i % WARM if i % 2 else 2000 + i)), bearer(KEY)

        os.kill(flaky_redis.pid, signal.SIGSTOP)
        try:
            tally = await run_load(make, workers=8, seconds=2.0)
            down = await redis_up(session, proxy)
            ready = await readiness(session, proxy)
        finally:
            os.kill(flaky_redis.pid, signal.SIGCONT)
        recovered = await wait_for(lambda: _is(redis_up(session, proxy), 1), 10)

    assert tally.failures() == 0, (dict(tally.counts), tally.samples)
    # At most a Redis get and a lock attempt (0.3 s each) before Redis is marked down and skipped.
    assert tally.max_latency() < 1.5, tally.max_latency()
    assert down == 0
    assert ready == (200, {"status": "degraded", "store": "redis", "redis": "down"})
    assert recovered


async def test_fail_closed_refuses_misses_but_serves_hits(
    start_proxy: ProxyFactory, flaky_redis: RedisServer, standin_proc: StandinProcess
) -> None:
    proxy = start_proxy(REDIS_URL=flaky_redis.url, REDIS_OUTAGE_POLICY="closed")
    async with aiohttp.ClientSession() as session:
        await warm(session, proxy, count=1)
        flaky_redis.stop()
        calls_before = standin_proc.stats()["calls"]

        hit = await get(session, url(proxy, question(0)), bearer(KEY))
        misses = [await get(session, url(proxy, question(500 + i)), bearer(KEY)) for i in range(5)]
        ready = await readiness(session, proxy)
        calls_during = standin_proc.stats()["calls"] - calls_before

        flaky_redis.start()
        assert await wait_for(lambda: _is(redis_up(session, proxy), 1), 10)
        after = await get(session, url(proxy, question(500)), bearer(KEY))
        ready_after = await readiness(session, proxy)

    assert hit.status == 200 and "hit" in hit.cache_status
    for miss in misses:
        assert miss.status == 503, miss
        assert miss.headers["Content-Type"].startswith("application/json")
        assert json.loads(miss.body)["message"].startswith("Service unavailable")
    assert calls_during == 0
    assert ready == (503, {"status": "unavailable", "store": "redis", "redis": "down"})
    assert after.status == 200
    assert ready_after == (200, {"status": "ready", "store": "redis", "redis": "up"})


async def test_outage_budget_is_the_replica_share(
    start_proxy: ProxyFactory, flaky_redis: RedisServer, standin_proc: StandinProcess
) -> None:
    """Redis down: the in-process bucket holds burst/expected_replicas tokens, refilled at rate/expected_replicas."""
    proxy = start_proxy(
        REDIS_URL=flaky_redis.url,
        RATE_LIMIT_PER_HOUR="3600",  # 1/s shared, so 0.25/s per replica while Redis is down
        RATE_LIMIT_BURST="12",  # 3 tokens per replica
        EXPECTED_REPLICAS="4",
        RATE_LIMIT_MAX_WAIT_SECONDS="0",
    )
    flaky_redis.stop()
    async with aiohttp.ClientSession() as session:
        answers = [await get(session, url(proxy, question(700 + i)), bearer(KEY)) for i in range(10)]
        text = await scrape(session, proxy.url)
    calls = standin_proc.stats()["calls"]
    codes = [a.status for a in answers]
    assert 3 <= calls <= 4, codes  # 3 tokens, plus at most one refilled while the requests ran
    assert codes.count(200) == calls
    assert set(codes) == {200, 429}
    limited = next(a for a in answers if a.status == 429)
    assert int(limited.headers["Retry-After"]) >= 1
    assert json.loads(limited.body)["message"].startswith("Rate limit exceeded")
    assert metric(text, "braze_proxy_rate_limit_rejections_total", reason="tokens") == codes.count(429)


async def test_starts_while_redis_is_down_and_recovers(
    start_proxy: ProxyFactory, flaky_redis: RedisServer, standin_proc: StandinProcess
) -> None:
    flaky_redis.stop()
    proxy = start_proxy(REDIS_URL=flaky_redis.url)
    async with aiohttp.ClientSession() as session:
        starting = await readiness(session, proxy)
        served: Outcome = await get(session, url(proxy, question(0)), bearer(KEY))
        flaky_redis.start()
        ready = await wait_for(lambda: _ready(session, proxy), 10)
        assert await wait_for(lambda: _is(redis_up(session, proxy), 1), 10)
    # Not ready until Redis has answered once, but the requests that do arrive are answered (fail-open).
    assert starting == (503, {"status": "starting", "store": "redis", "redis": "down"})
    assert served.status == 200
    assert ready


async def _ready(session: aiohttp.ClientSession, proxy: ProxyProcess) -> bool:
    return (await readiness(session, proxy))[0] == 200
