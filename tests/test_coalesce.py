"""Coalescing: in-process Flights, and the cross-replica ClusterLock against a real redis-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis
from redis.crc import key_slot

from proxy.cache.redis import connect, entry_key
from proxy.core.errors import StoreError
from proxy.fill.flights import Flights
from proxy.fill.lock import MAX_MARKER_SECONDS, ClusterLock, Marker, decode_marker, encode_marker
from proxy.redis.connection import RedisConnection
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
async def aclient(redis_server: RedisServer, redis_client: redis.Redis) -> AsyncIterator[RedisConnection]:
    client = connect(redis_server.url, 1.0, 8)
    yield client
    await client.close()


BASE = entry_key(PREFIX, KEY)


def marker(status: int = 502, body: bytes = b'{"message":"Bad gateway"}') -> Marker:
    return Marker("error", status, body)


def test_markers_round_trip_and_foreign_bytes_are_none() -> None:
    for m in (marker(), Marker("passed_on", 401, b'{"message":"Invalid API key"}', "application/json; x=1", None),
              Marker("error", 429, b"{}", retry_after=12.5)):  # fmt: skip
        assert decode_marker(encode_marker(m)) == m
    for foreign in (b"", b"E1|200|1|2|3|x\n{}", b"M1|other|200||a\n", b"M1|error|x||a\n", b"M1|error|200||a"):
        assert decode_marker(foreign) is None


async def test_one_replica_holds_the_lock_and_only_its_token_releases_it(aclient: RedisConnection) -> None:
    replica_a = ClusterLock(aclient, 1.0, lock_seconds=10)
    replica_b = ClusterLock(aclient, 1.0, lock_seconds=10)
    token = await replica_a.acquire(BASE)
    assert token is not None
    assert await replica_b.acquire(BASE) is None
    assert (await replica_b.peek(BASE))[0] is True
    await replica_b.release(BASE, "not-the-token")
    assert await replica_b.acquire(BASE) is None, "a stranger's release is a no-op"
    await replica_a.release(BASE, token)
    assert (await replica_b.peek(BASE))[0] is False
    assert await replica_b.acquire(BASE) is not None


async def test_a_lock_whose_holder_died_expires(aclient: RedisConnection) -> None:
    lock = ClusterLock(aclient, 1.0, lock_seconds=0.2)
    assert await lock.acquire(BASE) is not None
    assert await lock.acquire(BASE) is None
    await asyncio.sleep(0.3)
    assert await lock.acquire(BASE) is not None


async def test_peek_sees_lock_and_marker_in_one_round_trip(aclient: RedisConnection) -> None:
    lock = ClusterLock(aclient, 1.0, lock_seconds=10)
    assert await lock.peek(BASE) == (False, None)
    token = await lock.acquire(BASE)
    assert token is not None
    await lock.post(BASE, marker(), 0.2)
    locked, got = await lock.peek(BASE)
    assert locked
    assert got == marker()
    await asyncio.sleep(0.3)
    assert (await lock.peek(BASE))[1] is None, "the marker is short-lived"


async def test_a_marker_never_outlives_its_cap(aclient: RedisConnection) -> None:
    lock = ClusterLock(aclient, 1.0, lock_seconds=10)
    await lock.post(BASE, marker(429), 1.8e12)  # a Retry-After read in the wrong unit
    assert 0 < await aclient.client.pttl(BASE + ":fail") <= MAX_MARKER_SECONDS * 1000


async def test_a_new_fill_clears_the_previous_fills_marker(aclient: RedisConnection) -> None:
    """A waiter on the new fill must not be handed how a fill that already ended ended."""
    lock = ClusterLock(aclient, 1.0, lock_seconds=10)
    token = await lock.acquire(BASE)
    assert token is not None
    await lock.post(BASE, marker(), 3.0)
    await lock.release(BASE, token)
    assert (await lock.peek(BASE))[1] is not None
    assert await lock.acquire(BASE) is not None
    assert (await lock.peek(BASE))[1] is None


async def test_entry_lock_and_marker_share_one_cluster_slot(aclient: RedisConnection) -> None:
    lock = ClusterLock(aclient, 1.0, lock_seconds=10)
    token = await lock.acquire(BASE)
    assert token is not None
    await lock.post(BASE, marker(), 1.0)
    keys = sorted(await aclient.client.keys(f"{PREFIX}*"))
    assert keys == sorted(k.encode() for k in (BASE + ":lock", BASE + ":fail"))
    assert len({key_slot(k) for k in [*keys, BASE.encode()]}) == 1


async def test_an_unreachable_redis_raises_store_error_quickly() -> None:
    client = connect(f"redis://127.0.0.1:{free_port()}/0", 0.3, 2)
    lock = ClusterLock(client, 0.3, lock_seconds=1)
    started = time.monotonic()
    try:
        for attempt in (lock.acquire(BASE), lock.peek(BASE), lock.release(BASE, "t"), lock.post(BASE, marker(), 1)):
            with pytest.raises(StoreError):
                await attempt
    finally:
        await client.close()
    assert time.monotonic() - started < 3
