"""Redis health: the pure transitions, and the probe against a real redis-server that stops, fills up and recovers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from proxy.cache.redis import RedisStore, connect
from proxy.core.errors import StoreError
from proxy.redis.health import State
from tests.support.load import wait_for
from tests.support.procs import RedisServer


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
async def store(own_redis: RedisServer) -> AsyncIterator[RedisStore]:
    store = RedisStore(connect(own_redis.url, 0.3, 4), "test:", 0.3)
    yield store
    await store.close()


def fill_up(url: str) -> None:
    """Cap the server's memory below what it holds already: every write is refused (OOM), reads still work."""
    client = redis.Redis.from_url(url)
    client.set("kept", b"x")
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", max(1, used // 2))
    client.close()


async def test_the_probe_walks_through_the_states_with_hysteresis(own_redis: RedisServer, store: RedisStore) -> None:
    from proxy.redis.health import RedisHealth

    seen: list[State] = []
    health = RedisHealth(store.ping, store.probe_write, seen.append, reconnect=store.reconnect, interval=0.05)
    await health.start()
    assert health.state == "up" and health.seen

    fill_up(own_redis.url)
    with pytest.raises(StoreError) as refused:
        await store.probe_write()
    assert refused.value.refused_write
    health.failed(refused.value)
    assert health.state == "degraded_writes" and health.readable and not health.writable
    await asyncio.sleep(0.3)
    assert health.state == "degraded_writes", "reads answer, writes still refused: no flapping"

    redis.Redis.from_url(own_redis.url).config_set("maxmemory", 0)
    assert await wait_for(lambda: _is(health, "up"), 3)

    own_redis.stop()
    with pytest.raises(StoreError) as unreachable:
        await store.ping()
    assert not unreachable.value.refused_write
    health.failed(unreachable.value)
    assert health.state == "down" and not health.readable
    own_redis.start()
    assert await wait_for(lambda: _is(health, "up"), 3)
    await health.close()
    assert seen == ["up", "degraded_writes", "up", "down", "up"]


async def _is(health: object, state: State) -> bool:
    return getattr(health, "state", None) == state
