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
from proxy.fill.lock import MAX_MARKER_SECONDS, ClusterLock, Marker
from proxy.redis.connection import RedisConnection
from tests.support.procs import RedisServer, free_port

PREFIX = "test:"
KEY = "v1:scope:sessions:3:day:1515110400"


# --- ClusterLock: one fill per key across replicas ----------------------------------------------------------------


@pytest_asyncio.fixture
async def aclient(redis_server: RedisServer, redis_client: redis.Redis) -> AsyncIterator[RedisConnection]:
    client = connect(redis_server.url, 1.0, 8)
    yield client
    await client.close()


BASE = entry_key(PREFIX, KEY)


def marker(status: int = 502, body: bytes = b'{"message":"Bad gateway"}') -> Marker:
    return Marker("error", status, body)


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
