"""The Redis series store on a redis-server of its own (one test stops it): a window in one round trip with the
longest expiry kept, and a failure as a store error. The series arithmetic: tests/unit/test_series.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis

from proxy.core import series
from proxy.core.errors import StoreError
from proxy.core.series import Point
from proxy.redis.connection import open_connection
from proxy.redis.url import parse_redis_url
from proxy.windows.store import RedisSeriesStore
from tests.support.procs import RedisServer


@pytest.fixture
async def redis_series() -> AsyncIterator[tuple[RedisSeriesStore, RedisServer]]:
    server = RedisServer().start()
    conn = await open_connection(parse_redis_url(server.url), timeout=1.0, max_connections=4)
    try:
        yield RedisSeriesStore(conn, "t:", 1.0), server
    finally:
        await conn.close()
        server.close()


async def test_the_redis_store_reads_a_window_in_one_round_trip_and_keeps_the_longest_expiry(
    redis_series: tuple[RedisSeriesStore, RedisServer],
) -> None:
    store, server = redis_series
    client = redis.Redis(host="127.0.0.1", port=server.port)
    long = Point(b'{"time":"a"}', 100.0, 200.0, 100.0 + 86_400)
    short = Point(b'{"time":"b"}', 100.0, 110.0, 160.0)
    await store.write("{k}", {"1": long}, 100.0)
    await store.write("{k}", {"2": short}, 100.0)
    assert await store.read("{k}", ["1", "2", "3"]) == [long, short, None]
    ttl = client.pttl("t:{k}")
    assert 86_000_000 < ttl <= 86_400_001  # the short write did not cut the long point's life
    many = {str(i): short for i in range(series.MAX_BUCKETS + 10)}
    await store.write("{k}", many, 100.0)
    assert client.hlen("t:{k}") == series.MAX_BUCKETS


async def test_the_redis_store_fails_as_a_store_error(redis_series: tuple[RedisSeriesStore, RedisServer]) -> None:
    store, server = redis_series
    server.stop()
    with pytest.raises(StoreError):
        await store.read("{k}", ["1"])
    with pytest.raises(StoreError):
        await store.write("{k}", {"1": Point(b"{}", 0.0, 1.0, 2.0)}, 0.0)
