"""The cross-replica filler against a real redis-server: typed outcomes, the re-read after the lock, markers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from proxy.cache.redis import connect
from proxy.core.entry import Entry
from proxy.core.errors import RelayedError, UpstreamError, UpstreamTimeout
from proxy.core.outcomes import Found, Made, PassedOn
from proxy.fill.cross_replica import Filler, Polling
from proxy.fill.lock import ClusterLock
from proxy.redis.connection import RedisConnection
from proxy.redis.health import AlwaysUp
from tests.support.procs import RedisServer

BASE = "test:{v1:s:sessions:3:day:0}"


@pytest.fixture
async def aclient(redis_server: RedisServer, redis_client: object) -> AsyncIterator[RedisConnection]:
    client = connect(redis_server.url, 1.0, 8)
    yield client
    await client.close()


def filler(client: RedisConnection, wait: float = 5.0, peers: list[int] | None = None) -> Filler:
    counted = peers if peers is not None else []
    return Filler(
        lock=ClusterLock(client, 1.0, lock_seconds=10),
        health=AlwaysUp(),
        wakeups=Polling(),
        wait_seconds=wait,
        on_peer=lambda: counted.append(1),
        key_prefix="",  # the tests name their lock keys in full
    )


async def test_the_lock_holder_reads_again_before_it_calls(aclient: RedisConnection) -> None:
    """A peer stored and released between this replica's miss and its lock: no second call."""
    calls: list[int] = []

    async def produce() -> str:
        calls.append(1)
        return "mine"

    async def recheck() -> str | None:
        return "the peer's"

    outcome = await filler(aclient).fill(BASE, produce, recheck)
    assert outcome == Found("the peer's")
    assert calls == []
    assert await aclient.client.exists(BASE + ":lock") == 0, "released on every path"


async def test_one_replica_produces_while_the_other_waits_for_its_value(aclient: RedisConnection) -> None:
    stored: list[str] = []
    peers: list[int] = []

    async def produce() -> str:
        await asyncio.sleep(0.1)
        stored.append("value")
        return "value"

    async def recheck() -> str | None:
        return stored[0] if stored else None

    a, b = filler(aclient), filler(aclient, peers=peers)
    first = asyncio.ensure_future(a.fill(BASE, produce, recheck))
    await asyncio.sleep(0.02)
    second = await b.fill(BASE, produce, recheck)
    assert await first == Made("value")
    assert second == Found("value")
    assert len(stored) == 1 and peers == [1]


@pytest.mark.parametrize("failure", ["passed_on", "error"])
async def test_a_fill_that_stored_nothing_tells_the_waiters_how_it_ended(
    aclient: RedisConnection, failure: str
) -> None:
    answer = Entry(b'{"message":"Invalid API key"}', 401, "application/json", 0, 0, 0)

    async def produce() -> str | PassedOn:
        await asyncio.sleep(0.1)
        if failure == "error":
            raise UpstreamError(upstream_status=500)
        return PassedOn(answer)

    async def recheck() -> str | None:
        return None

    first = asyncio.ensure_future(filler(aclient).fill(BASE, produce, recheck))
    await asyncio.sleep(0.02)
    if failure == "error":
        with pytest.raises(RelayedError) as relayed:
            await filler(aclient).fill(BASE, produce, recheck)
        assert relayed.value.status == 502 and relayed.value.body().startswith(b'{"message":"Bad gateway')
        with pytest.raises(UpstreamError):
            await first
    else:
        waited = await filler(aclient).fill(BASE, produce, recheck)
        assert isinstance(waited, PassedOn) and waited.by_peer
        assert (waited.entry.status, waited.entry.body) == (401, answer.body)
        assert await first == PassedOn(answer)


async def test_a_waiter_gives_up_after_the_fill_time(aclient: RedisConnection) -> None:
    assert await ClusterLock(aclient, 1.0, 10).acquire(BASE) is not None  # a holder that never finishes

    async def never() -> str:
        raise AssertionError("the lock is held: this replica must not call")

    async def recheck() -> str | None:
        return None

    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        await filler(aclient, wait=0.3).fill(BASE, never, recheck)
    assert time.monotonic() - started < 1.0
