"""Wake-ups for replicas waiting on another replica's fill: one pub/sub channel, one subscriber per process.

The replica that held a fill's lock publishes the fill's base key once the lock is released; every replica's
subscriber sets the events of its waiters on that key, so a collapsed answer follows the entry within a round
trip instead of a poll interval. Polling stays underneath: a wake-up lost (the subscriber reconnecting, a
message published while nobody listened) costs at most one poll interval, never a wrong answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from proxy.fill.cross_replica import Watch
from proxy.redis.connection import RedisConnection
from proxy.redis.listener import Listener

NOTICE = "notice|"  # a message for every replica (a purge), not a fill's end: fill names start with the prefix


def channel_of(prefix: str) -> str:
    """The wake-up channel: on a cluster (sharded pub/sub) it lives on the shard owning the tag."""
    return f"{prefix}{{fills}}"


class _Watch:
    def __init__(self, listener: Listener) -> None:
        self.ended = asyncio.Event()
        self._listener = listener

    async def wait(self, timeout: float) -> None:
        if not self._listener.subscribed:  # a message now would be lost: poll
            await asyncio.sleep(timeout)
            return
        try:
            async with asyncio.timeout(timeout):
                await self.ended.wait()
        except TimeoutError:
            pass
        self.ended.clear()


class PubSubWakeups:
    """Filler's wake-ups over Redis pub/sub (SPUBLISH/SSUBSCRIBE on a cluster). `close()` is the connection's."""

    def __init__(self, conn: RedisConnection, channel: str) -> None:
        self._conn = conn
        self._channel = channel
        self._waiting: dict[str, set[_Watch]] = {}  # bounded by the waits under way
        self.on_notice: Callable[[str], None] | None = None  # told each NOTICE message, its prefix removed
        self._listener = conn.start_listener([channel], self._on_message)

    @property
    def subscribed(self) -> bool:
        return self._listener.subscribed

    @contextmanager
    def watch(self, base: str) -> Iterator[Watch]:
        watch = _Watch(self._listener)
        watchers = self._waiting.setdefault(base, set())
        watchers.add(watch)
        try:
            yield watch
        finally:
            watchers.discard(watch)
            if not watchers:
                self._waiting.pop(base, None)

    async def notify(self, base: str) -> None:
        """Publish the end of the fill of `base`. Raises StoreError."""
        await self._conn.publish(self._channel, base)

    async def tell(self, notice: str) -> None:
        """Publish `notice` to every replica's `on_notice` (this one's too). Raises StoreError."""
        await self._conn.publish(self._channel, NOTICE + notice)

    def _on_message(self, channel: bytes, data: bytes) -> None:
        text = data.decode(errors="replace")
        if text.startswith(NOTICE):
            if self.on_notice is not None:
                self.on_notice(text.removeprefix(NOTICE))
            return
        for watch in self._waiting.get(text, ()):
            watch.ended.set()
