"""Coalescing: in-process Flights, and the cross-replica ClusterLock against a real redis-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis
import redis.asyncio as aioredis
from redis.crc import key_slot

from proxy.coalesce import ClusterLock, Flights
from proxy.entry import Entry
from proxy.errors import StoreError
from proxy.redis_store import RedisStore, connect, entry_key
from tests.procs import RedisServer, free_port

PREFIX = "test:"
KEY = "v1:scope:sessions:3:day:1515110400"


# --- Flights: one task per key in a process ---------------------------------------------------------------------


class Upstream:
    """Counts calls; each call waits for `release` so callers pile up on it."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()

    async def call(self, value: str) -> str:
        self.calls += 1
        await self.release.wait()
        return value


async def test_concurrent_runs_of_one_key_share_one_call() -> None:
    flights: Flights[str] = Flights()
    upstream = Upstream()
    callers = [asyncio.ensure_future(flights.run("k", lambda: upstream.call("answer"))) for _ in range(100)]
    await asyncio.sleep(0)
    assert len(flights) == 1
    assert flights.running("k") and not flights.running("other")
    upstream.release.set()
    results = await asyncio.gather(*callers)
    assert upstream.calls == 1
    assert [value for value, _ in results] == ["answer"] * 100
    assert [joined for _, joined in results] == [False] + [True] * 99
    assert len(flights) == 0 and not flights.running("k"), "a finished flight is forgotten"


async def test_different_keys_fly_separately() -> None:
    flights: Flights[str] = Flights()
    upstream = Upstream()
    upstream.release.set()
    results = await asyncio.gather(
        flights.run("a", lambda: upstream.call("a")), flights.run("b", lambda: upstream.call("b"))
    )
    assert results == [("a", False), ("b", False)]
    assert upstream.calls == 2


async def test_a_failure_reaches_every_waiter_and_the_next_run_calls_again() -> None:
    flights: Flights[str] = Flights()
    calls = 0

    async def failing() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise RuntimeError("upstream down")

    outcomes = await asyncio.gather(*(flights.run("k", failing) for _ in range(10)), return_exceptions=True)
    assert calls == 1
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    with pytest.raises(RuntimeError):
        await flights.run("k", failing)
    assert calls == 2


async def test_a_caller_that_goes_away_does_not_cancel_the_call_for_the_others() -> None:
    flights: Flights[str] = Flights()
    upstream = Upstream()
    first = asyncio.ensure_future(flights.run("k", lambda: upstream.call("answer")))
    second = asyncio.ensure_future(flights.run("k", lambda: upstream.call("answer")))
    await asyncio.sleep(0)
    first.cancel()  # the client hung up
    await asyncio.sleep(0)
    assert [t.cancelled() for t in flights.tasks()] == [False]
    upstream.release.set()
    assert await second == ("answer", True)
    assert upstream.calls == 1


# --- ClusterLock: one fill per key across replicas ----------------------------------------------------------------


@pytest_asyncio.fixture
async def aclient(redis_server: RedisServer, redis_client: redis.Redis) -> AsyncIterator[aioredis.Redis]:
    client = connect(redis_server.url, 1.0, 8)
    yield client
    await client.aclose(close_connection_pool=True)


def entry(body: bytes = b'{"message":"success","data":[]}', status: int = 200, ttl: float = 60) -> Entry:
    now = time.time()
    return Entry(body, status, "application/json", now, now + ttl, now + ttl * 2)


async def test_one_replica_holds_the_lock_and_only_its_token_releases_it(aclient: aioredis.Redis) -> None:
    replica_a = ClusterLock(aclient, PREFIX, 1.0, lock_seconds=10)
    replica_b = ClusterLock(aclient, PREFIX, 1.0, lock_seconds=10)
    token = await replica_a.acquire(KEY)
    assert token is not None
    assert await replica_b.acquire(KEY) is None
    assert (await replica_b.peek(KEY))[1] is True
    await replica_b.release(KEY, "not-the-token")
    assert await replica_b.acquire(KEY) is None, "a stranger's release is a no-op"
    await replica_a.release(KEY, token)
    assert (await replica_b.peek(KEY))[1] is False
    assert await replica_b.acquire(KEY) is not None


async def test_a_lock_whose_holder_died_expires(aclient: aioredis.Redis) -> None:
    lock = ClusterLock(aclient, PREFIX, 1.0, lock_seconds=0.2)
    assert await lock.acquire(KEY) is not None
    assert await lock.acquire(KEY) is None
    await asyncio.sleep(0.3)
    assert await lock.acquire(KEY) is not None


async def test_peek_sees_entry_lock_and_failure_in_one_round_trip(aclient: aioredis.Redis) -> None:
    store = RedisStore(aclient, PREFIX, 1.0)
    lock = ClusterLock(aclient, PREFIX, 1.0, lock_seconds=10)
    assert await lock.peek(KEY) == (None, False, None)
    stored = entry()
    await store.set(KEY, stored, time.time())
    token = await lock.acquire(KEY)
    assert token is not None
    failure = entry(b'{"message":"Bad gateway"}', 502, ttl=0)
    await lock.post_failure(KEY, failure, 0.2)
    got, locked, marker = await lock.peek(KEY)
    assert locked
    assert got is not None and got.body == stored.body
    assert marker is not None and (marker.status, marker.body) == (502, failure.body)
    await asyncio.sleep(0.3)
    assert (await lock.peek(KEY))[2] is None, "the marker is short-lived"


async def test_a_new_fill_clears_the_previous_fills_failure(aclient: aioredis.Redis) -> None:
    """A waiter on the new fill must not be handed the error of a fill that already ended."""
    lock = ClusterLock(aclient, PREFIX, 1.0, lock_seconds=10)
    token = await lock.acquire(KEY)
    assert token is not None
    await lock.post_failure(KEY, entry(b'{"message":"Bad gateway"}', 502, ttl=0), 3.0)
    await lock.release(KEY, token)
    assert (await lock.peek(KEY))[2] is not None
    assert await lock.acquire(KEY) is not None
    assert (await lock.peek(KEY))[2] is None


async def test_entry_lock_and_marker_share_one_cluster_slot(aclient: aioredis.Redis) -> None:
    lock = ClusterLock(aclient, PREFIX, 1.0, lock_seconds=10)
    token = await lock.acquire(KEY)
    assert token is not None
    await lock.post_failure(KEY, entry(status=502), 1.0)
    base = entry_key(PREFIX, KEY)
    keys = sorted(await aclient.keys(f"{PREFIX}*"))
    assert keys == sorted(k.encode() for k in (base + ":lock", base + ":fail"))
    assert len({key_slot(k) for k in [*keys, base.encode()]}) == 1


async def test_an_unreachable_redis_raises_store_error_quickly() -> None:
    client = connect(f"redis://127.0.0.1:{free_port()}/0", 0.3, 2)
    lock = ClusterLock(client, PREFIX, 0.3, lock_seconds=1)
    started = time.monotonic()
    try:
        for attempt in (lock.acquire(KEY), lock.peek(KEY), lock.release(KEY, "t"), lock.post_failure(KEY, entry(), 1)):
            with pytest.raises(StoreError):
                await attempt
    finally:
        await client.aclose(close_connection_pool=True)
    assert time.monotonic() - started < 3
