"""Bounded resources under many distinct keys, measured on the real process: the memory store and the L1 stay
within their caps (the entries gauge, and RSS that stops growing once they are full), and connection pools and
file descriptors stay within their settings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import pytest

from tests.support.load import PATH, bearer, data_query, metric, open_fds, rss_bytes, run_load, scrape, tcp_connections
from tests.support.procs import ProxyFactory, ProxyProcess, RedisServer, StandinProcess

MiB = 1024 * 1024
BURST = "1000000"  # every question here is a miss: the upstream budget must not be what paces the test


def distinct(proxy: ProxyProcess, offset: int = 0) -> Callable[[int], tuple[str, dict[str, str]]]:
    """The i-th of many distinct questions (100 lengths x 28 days x 12 months x 2 units)."""

    def make(i: int) -> tuple[str, dict[str, str]]:
        i += offset
        day = f"2023-{1 + (i // 2800) % 12:02d}-{1 + (i // 100) % 28:02d}"
        query = data_query(length=1 + i % 100, ending_at=day, unit="hour" if (i // 33600) % 2 else "day")
        return f"{proxy.url}{PATH}?{query}", bearer("bounded-key")

    return make


async def entries(proxy: ProxyProcess, store: str) -> float | None:
    async with aiohttp.ClientSession() as session:
        return metric(await scrape(session, proxy.url), "braze_proxy_cache_entries", store=store)


async def test_memory_store_stays_within_its_cap(
    start_proxy: ProxyFactory, standin_proc: StandinProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    cap = 300
    proxy = start_proxy(MEMORY_MAX_ENTRIES=cap, RATE_LIMIT_BURST=BURST)
    first = await run_load(distinct(proxy), workers=8, seconds=30, max_requests=800)
    rss_full = rss_bytes(proxy.pid)  # the store has been full for a while
    second = await run_load(distinct(proxy, offset=800), workers=8, seconds=30, max_requests=1600)
    rss_after = rss_bytes(proxy.pid)
    held = await entries(proxy, "memory")
    with capsys.disabled():
        print(
            f"\n[figure] memory store, cap {cap}: {first.total + second.total} distinct questions, {held:.0f} "
            f"entries held, RSS {rss_full / MiB:.1f} -> {rss_after / MiB:.1f} MiB over the last {second.total}"
        )
    assert first.failures() == second.failures() == 0, (first.counts, second.counts)
    assert held is not None and held <= cap
    assert standin_proc.stats()["calls"] == first.total + second.total  # all distinct: each one a miss
    assert rss_after - rss_full < 10 * MiB


async def test_l1_stays_within_its_cap(
    start_proxy: ProxyFactory, standin_proc: StandinProcess, redis_server: RedisServer
) -> None:
    cap = 200
    proxy = start_proxy(
        REDIS_URL=redis_server.url, REDIS_KEY_PREFIX="bounded-l1:", MEMORY_MAX_ENTRIES=cap, RATE_LIMIT_BURST=BURST
    )
    tally = await run_load(distinct(proxy), workers=8, seconds=30, max_requests=1000)
    assert tally.failures() == 0, tally.counts
    held = await entries(proxy, "l1")
    assert held is not None and 0 < held <= cap


async def test_pools_and_file_descriptors_stay_within_their_settings(
    start_proxy: ProxyFactory, standin_proc: StandinProcess, redis_server: RedisServer
) -> None:
    upstream_pool, redis_pool = 4, 8
    proxy = start_proxy(
        REDIS_URL=redis_server.url,
        REDIS_KEY_PREFIX="bounded-pools:",
        UPSTREAM_MAX_CONNECTIONS=upstream_pool,
        REDIS_MAX_CONNECTIONS=redis_pool,
        RATE_LIMIT_BURST=BURST,
    )
    standin_proc.config(latency=0.05)  # misses overlap, so the pools fill up
    baseline = open_fds(proxy.pid)
    samples: list[tuple[int, int, int]] = []
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            pid = proxy.pid
            samples.append(
                (tcp_connections(pid, standin_proc.port), tcp_connections(pid, redis_server.port), open_fds(pid))
            )
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    try:
        tally = await run_load(distinct(proxy), workers=40, seconds=30, max_requests=400)
    finally:
        stop.set()
        await sampler
    await asyncio.sleep(0.3)  # the clients' connections are closed by now
    after = open_fds(proxy.pid)

    assert tally.failures() == 0, (tally.counts, tally.samples)
    assert samples
    assert max(s[0] for s in samples) <= upstream_pool
    # The pool, and the one subscriber connection that wakes waiting fills (proxy/redis_listener.py).
    redis_limit = redis_pool + 1
    assert max(s[1] for s in samples) <= redis_limit, (samples, [line for line in proxy.logs().splitlines()[-20:]])
    assert max(s[2] for s in samples) <= baseline + 40 + upstream_pool + redis_limit + 8
    assert after <= baseline + upstream_pool + redis_limit + 4, (baseline, after)
    assert "redis unreachable" not in proxy.logs()  # a busy pool is not an outage
