"""One store suite, run against the memory store and a real redis-server; plus the L1's bounds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis

from proxy.cache.memory import MemoryLRU, MemoryStore
from proxy.cache.redis import RedisStore, connect, entry_key
from proxy.cache.store import Store
from proxy.core.entry import Entry
from proxy.core.errors import StoreError
from tests.support.procs import RedisServer, free_port
from tests.unit.test_cache import entry

PREFIX = "test:"


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore(MemoryLRU(100, 1 << 20), time.time)
        return
    request.getfixturevalue("redis_client")  # flushed
    server: RedisServer = request.getfixturevalue("redis_server")
    store = RedisStore(connect(server.url, 0.5, 8), PREFIX, 0.5)
    yield store
    await store.close()


async def test_get_of_a_missing_key_is_none(store: Store) -> None:
    assert await store.get("v1:absent") is None


async def test_set_then_get(store: Store) -> None:
    stored = entry()
    assert await store.set("v1:k", stored, time.time()) is True
    got = await store.get("v1:k")
    assert (
        got is not None and got.body == stored.body and got.fresh_until == pytest.approx(stored.fresh_until, abs=1e-3)
    )


async def test_binary_bodies_survive(store: Store) -> None:
    body = bytes(range(256)) * 4
    await store.set("v1:bin", entry(body), time.time())
    got = await store.get("v1:bin")
    assert got is not None and got.body == body


async def test_entries_expire_at_the_end_of_their_stale_window(store: Store) -> None:
    await store.set("v1:short", entry(keep=0.3), time.time())
    assert await store.get("v1:short") is not None
    await asyncio.sleep(0.45)
    assert await store.get("v1:short") is None


async def test_an_already_expired_entry_is_not_stored(store: Store) -> None:
    now = time.time()
    assert await store.set("v1:old", Entry(b"{}", 200, "application/json", now - 10, now - 5, now - 1), now) is False
    assert await store.get("v1:old") is None


async def test_ping(store: Store) -> None:
    await store.ping()


def test_redis_keys_are_prefixed_and_hash_tagged(redis_client: redis.Redis, redis_server: RedisServer) -> None:
    async def write() -> None:
        store = RedisStore(connect(redis_server.url, 0.5, 2), PREFIX, 0.5)
        await store.set("v1:p1:sessions:1:day:0", entry(), time.time())
        await store.close()

    asyncio.run(write())
    assert redis_client.keys("*") == [b"test:{v1:p1:sessions:1:day:0}"]
    assert entry_key(PREFIX, "k") == "test:{k}"
    ttl_ms = redis_client.pttl("test:{v1:p1:sessions:1:day:0}")
    assert 0 < ttl_ms <= 60_000


async def test_an_unreachable_redis_is_a_bounded_store_error() -> None:
    port = free_port()  # nothing listens here
    store = RedisStore(connect(f"redis://127.0.0.1:{port}/0", 0.2, 2), PREFIX, 0.2)
    started = time.perf_counter()
    for call in (store.get("k"), store.set("k", entry(), time.time()), store.ping()):
        with pytest.raises(StoreError):
            await call
    assert time.perf_counter() - started < 2
    await store.close()


async def test_foreign_values_in_redis_are_a_miss(redis_client: redis.Redis, redis_server: RedisServer) -> None:
    redis_client.set("test:{v1:garbage}", b"not an entry")
    store = RedisStore(connect(redis_server.url, 0.5, 2), PREFIX, 0.5)
    assert await store.get("v1:garbage") is None
    await store.close()
