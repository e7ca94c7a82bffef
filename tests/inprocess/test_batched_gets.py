"""redis/batched_gets.py on the session's redis-server: the GETs of one event-loop turn go as one pipeline, each
key once; every waiter gets its own key's value; a waiter cancelled leaves the others their answer; a failure
reaches every waiter as a StoreError, bounded by the timeout."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from proxy.cache.redis import connect
from proxy.core.errors import StoreError
from proxy.redis.batched_gets import BatchedGets
from tests.support.procs import RedisServer, free_port


def gets_run(client: redis.Redis) -> int:
    """How many GET commands the server has run (INFO commandstats)."""
    return int(client.info("commandstats").get("cmdstat_get", {}).get("calls", 0))


async def test_one_turn_of_gets_is_one_get_per_key(redis_client: redis.Redis, redis_server: RedisServer) -> None:
    redis_client.mset({f"k{i}": f"v{i}" for i in range(10)})
    conn = connect(redis_server.url, 2.0, 4)
    gets = BatchedGets(conn, 2.0)
    try:
        before = gets_run(redis_client)
        names = [f"k{i % 12}" for i in range(60)]  # 12 keys (2 absent), each asked 5 times, in one turn
        values = await asyncio.gather(*(gets.get(name) for name in names))
        assert values == [None if i % 12 >= 10 else f"v{i % 12}".encode() for i in range(60)]
        assert gets_run(redis_client) - before == 12
    finally:
        await conn.close()


async def test_bursts_larger_than_a_batch_are_sent_as_several(
    redis_client: redis.Redis, redis_server: RedisServer
) -> None:
    redis_client.mset({f"k{i}": str(i) for i in range(50)})
    conn = connect(redis_server.url, 2.0, 4)
    gets = BatchedGets(conn, 2.0, max_batch=8)
    try:
        values = await asyncio.gather(*(gets.get(f"k{i}") for i in range(50)))
        assert values == [str(i).encode() for i in range(50)]
    finally:
        await conn.close()


async def test_a_cancelled_waiter_leaves_the_others_their_answer(
    redis_client: redis.Redis, redis_server: RedisServer
) -> None:
    redis_client.set("k", "v")
    conn = connect(redis_server.url, 2.0, 4)
    gets = BatchedGets(conn, 2.0)
    try:
        waiters = [asyncio.ensure_future(gets.get("k")) for _ in range(3)]
        await asyncio.sleep(0)  # each has asked; the batch is not sent yet
        waiters[0].cancel()
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert isinstance(results[0], asyncio.CancelledError) and results[1:] == [b"v", b"v"]
    finally:
        await conn.close()


async def test_an_unreachable_redis_fails_every_waiter_within_the_timeout() -> None:
    conn = connect(f"redis://127.0.0.1:{free_port()}/0", 0.2, 2)  # nothing listens there
    gets = BatchedGets(conn, 0.2)
    started = time.perf_counter()
    try:
        results = await asyncio.gather(*(gets.get(f"k{i % 3}") for i in range(9)), return_exceptions=True)
        assert all(isinstance(r, StoreError) for r in results), results
        assert time.perf_counter() - started < 2
    finally:
        await conn.close()


@pytest.mark.parametrize("batch", [1, 2])
async def test_later_turns_are_later_batches(redis_client: redis.Redis, redis_server: RedisServer, batch: int) -> None:
    """A GET asked after a batch was sent is not answered by it: it sees a write made in between."""
    redis_client.set("k", "old")
    conn = connect(redis_server.url, 2.0, 4)
    gets = BatchedGets(conn, 2.0)
    try:
        first = [asyncio.ensure_future(gets.get("k")) for _ in range(batch)]
        assert await asyncio.gather(*first) == [b"old"] * batch
        redis_client.set("k", "new")
        assert await gets.get("k") == b"new"
    finally:
        await conn.close()
