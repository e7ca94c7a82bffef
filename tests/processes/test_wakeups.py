"""Wake-ups across replicas (proxy/wakeups.py) on a real redis-server: two processes' worth of subscribers, each
with its own connection. A waiter on a fill is woken within milliseconds of the holder's notice, not at its poll
interval; a notice for another fill wakes nobody; while the subscriber is down a wait falls back to sleeping its
poll interval (a lost wake-up costs one poll, never a wrong answer); the subscriber comes back by itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from proxy.fill.wakeups import PubSubWakeups, channel_of
from proxy.redis.connection import open_connection
from proxy.redis.url import parse_redis_url
from tests.support.procs import RedisServer

POLL = 0.5  # a waiter's poll interval: what a wake-up saves


async def until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


@asynccontextmanager
async def replica(server: RedisServer) -> AsyncIterator[PubSubWakeups]:
    conn = await open_connection(parse_redis_url(server.url), timeout=0.5, max_connections=4)
    wakeups = PubSubWakeups(conn, channel_of("wake-test:"))
    try:
        await until(lambda: wakeups.subscribed, 5.0, "the subscription")
        yield wakeups
    finally:
        await conn.close()


async def timed_wait(wakeups: PubSubWakeups, base: str, notify: Callable[[], object]) -> float:
    """Seconds a waiter on `base` waits when `notify` runs 50 ms into its wait."""
    with wakeups.watch(base) as watch:
        started = time.perf_counter()

        async def later() -> None:
            await asyncio.sleep(0.05)
            await notify()  # type: ignore[misc]

        await asyncio.gather(watch.wait(POLL), later())
        return time.perf_counter() - started


async def test_a_waiter_is_woken_by_another_replicas_notice_and_only_by_its_own_fill() -> None:
    with RedisServer() as server:
        async with replica(server) as waiting, replica(server) as holding:
            woken = await timed_wait(waiting, "{v1:a}", lambda: holding.notify("{v1:a}"))
            assert woken < 0.05 + 0.1, f"woken {woken * 1000:.0f} ms into the wait, not at the poll ({POLL} s)"
            other = await timed_wait(waiting, "{v1:a}", lambda: holding.notify("{v1:b}"))
            assert other >= POLL - 0.02, "a notice for another fill wakes nobody"


async def test_without_a_subscription_a_wait_is_a_poll_and_the_subscriber_comes_back() -> None:
    with RedisServer() as server:
        async with replica(server) as waiting, replica(server) as holding:
            server.stop()
            await until(lambda: not waiting.subscribed, 5.0, "the subscriber to notice")
            with waiting.watch("{v1:a}") as watch:
                started = time.perf_counter()
                await watch.wait(0.2)
                assert time.perf_counter() - started >= 0.19  # polls: nothing could wake it
            server.start()
            await until(lambda: waiting.subscribed and holding.subscribed, 10.0, "both subscribers back")
            woken = await timed_wait(waiting, "{v1:a}", lambda: holding.notify("{v1:a}"))
            assert woken < 0.05 + 0.1, woken
