"""Fill locks are leases: a replica SIGKILLed while it holds one (mid-call to Braze) stalls the others for at
most a few seconds, not the whole upstream timeout; one of the waiters fills. Real proxy processes sharing a
real redis-server, and the stand-in."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
import redis

from proxy.fill.lock import LEASE_SECONDS
from tests.processes.test_upstream_protection import SETTLED, get, start_replicas
from tests.support.procs import ProxyFactory, RedisServer, StandinProcess

pytestmark = pytest.mark.timeout(90)
STALL_LIMIT = 5.0  # seconds the other replicas may be held up by a dead holder (the bound)


async def wait_for(check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_sigkilled_lock_holder_is_replaced_within_seconds(
    start_proxy: ProxyFactory,
    standin_proc: StandinProcess,
    redis_server: RedisServer,
    redis_client: redis.Redis,
) -> None:
    assert LEASE_SECONDS < STALL_LIMIT - 1
    holder, *others = start_replicas(start_proxy, redis_server, UPSTREAM_TIMEOUT=60)
    standin_proc.config(latency=60)  # the holder's call hangs: it is mid-call when it dies
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as client:
        first = asyncio.ensure_future(get(client, holder, SETTLED))
        await wait_for(lambda: standin_proc.stats()["calls"] == 1, 10)
        waiting = [asyncio.ensure_future(get(client, proxy, SETTLED)) for proxy in others]
        await asyncio.sleep(0.5)  # they are waiting on the holder's lock, not calling
        assert standin_proc.stats()["calls"] == 1
        assert redis_client.keys("*:lock"), "the holder's fill lock is in Redis"
        standin_proc.config(latency=0)  # the next call answers at once
        holder.kill()
        killed = time.monotonic()
        replies = await asyncio.gather(*waiting)
        stalled = time.monotonic() - killed
        first.cancel()
    assert [r.status for r in replies] == [200, 200]
    assert stalled <= STALL_LIMIT, f"the others waited {stalled:.1f} s after the holder died"
    assert standin_proc.stats()["calls"] == 2, "one waiter filled for both: the dead holder's call and one more"
    print(f"SIGKILLed lock holder: the other replicas answered {stalled:.2f} s after its death")
