"""The Redis store: entries in Redis through the process's RedisConnection (any topology), errors translated.

redis-py's exceptions stop at RedisConnection.translated: callers only ever see proxy.errors.StoreError.
"""

from __future__ import annotations

from proxy.core.entry import Entry, decode, encode
from proxy.redis.batched_gets import BatchedGets
from proxy.redis.connection import RedisConnection, build_connection
from proxy.redis.url import parse_redis_url


def connect(url: str, timeout: float, max_connections: int) -> RedisConnection:
    """A RedisConnection for `url` built without touching the network and without a Sentinel follower (tests and
    tools; the proxy opens its connection with redis_conn.open_connection). Raises ValueError for a bad URL."""
    return build_connection(parse_redis_url(url), timeout=timeout, max_connections=max_connections)


def entry_tag(key: str) -> str:
    """An entry's name in Redis without the prefix; the hash tag puts entry, lock and marker in one Cluster slot."""
    return f"{{{key}}}"


def entry_key(prefix: str, key: str) -> str:
    """The Redis key of an entry."""
    return prefix + entry_tag(key)


class RedisStore:
    name = "redis"

    def __init__(self, conn: RedisConnection, prefix: str, timeout: float) -> None:
        self.conn = conn
        self.prefix = prefix
        self.timeout = timeout
        self._gets = BatchedGets(conn, timeout)
        self._last: tuple[bytes, Entry | None] | None = None  # the last value read and its entry (immutable)

    async def get(self, key: str) -> Entry | None:
        data = await self._gets.get(entry_key(self.prefix, key))  # with the other GETs of this turn
        if data is None:
            return None
        last = self._last
        if last is not None and last[0] is data:  # the same GET's value: the waiters of one batch decode it once
            return last[1]
        entry = decode(data)
        self._last = (data, entry)
        return entry

    async def set(self, key: str, entry: Entry, now: float) -> bool:
        keep_ms = int((entry.stale_until - now) * 1000)
        if keep_ms <= 0:
            return False
        async with self.conn.translated(self.timeout):
            # One round trip: value and expiry together.
            await self.conn.client.set(entry_key(self.prefix, key), encode(entry), px=keep_ms)
        return True

    async def ping(self) -> None:
        """PING every primary (every shard of a cluster). Raises StoreError."""
        await self.conn.ping()

    async def probe_write(self) -> None:
        """A tiny write (on every primary) that expires at once: refused (StoreError.refused_write) when Redis is
        out of memory or read-only."""
        await self.conn.probe_write(self.prefix + "health-probe")

    async def reconnect(self) -> None:
        """Drop every pooled connection: after an outage they may be dead, and each would fail one call."""
        await self.conn.reconnect()

    async def close(self) -> None:
        await self.conn.close()
