"""Without Redis, every fill runs unlocked: no lock, no marker, no I/O.
Against a real redis-server: tests/inprocess/test_filler.py."""

from __future__ import annotations

from proxy.core.outcomes import Made
from proxy.fill.cross_replica import Filler, Polling
from proxy.fill.lock import ClusterLock
from proxy.redis.connection import RedisConnection
from proxy.redis.health import AlwaysUp

BASE = "test:{v1:s:sessions:3:day:0}"


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


async def test_without_redis_every_fill_runs_unlocked() -> None:
    unlocked = Filler(
        lock=None, health=AlwaysUp(), wakeups=Polling(), wait_seconds=1, on_peer=lambda: None, key_prefix=""
    )

    async def produce() -> str:
        return "value"

    async def recheck() -> str | None:
        raise AssertionError("nothing to read again without a lock")

    assert await unlocked.fill(BASE, produce, recheck) == Made("value")
