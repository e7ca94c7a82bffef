"""The Redis store: one connection pool, every call bounded by a short timeout, errors translated.

redis-py's exceptions stop here: callers only ever see proxy.errors.StoreError.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from proxy.entry import Entry, decode, encode
from proxy.errors import StoreError


def connect(url: str, timeout: float, max_connections: int) -> aioredis.Redis:
    """A client whose pool blocks at most `timeout` for a connection and never grows past the cap."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry_on_timeout=False,
    )
    return aioredis.Redis(connection_pool=pool)


@asynccontextmanager
async def translated(timeout: float) -> AsyncIterator[None]:
    """Bound a Redis call in time and turn whatever it raises into StoreError."""
    try:
        async with asyncio.timeout(timeout):
            yield
    except (RedisError, OSError, TimeoutError) as exc:
        raise StoreError(f"redis: {type(exc).__name__}") from exc


def entry_key(prefix: str, key: str) -> str:
    """The Redis key of an entry; the hash tag puts entry, lock and marker in one Cluster slot."""
    return f"{prefix}{{{key}}}"


class RedisStore:
    name = "redis"

    def __init__(self, client: aioredis.Redis, prefix: str, timeout: float) -> None:
        self.client = client
        self.prefix = prefix
        self.timeout = timeout

    async def get(self, key: str) -> Entry | None:
        async with translated(self.timeout):
            data = await self.client.get(entry_key(self.prefix, key))
        return decode(data) if data is not None else None

    async def set(self, key: str, entry: Entry, now: float) -> None:
        keep_ms = int((entry.stale_until - now) * 1000)
        if keep_ms <= 0:
            return
        async with translated(self.timeout):
            # One round trip: value and expiry together.
            await self.client.set(entry_key(self.prefix, key), encode(entry), px=keep_ms)

    async def delete(self, key: str) -> None:
        async with translated(self.timeout):
            await self.client.delete(entry_key(self.prefix, key))

    async def ping(self) -> None:
        async with translated(self.timeout):
            await self.client.ping()

    async def reconnect(self) -> None:
        """Drop every pooled connection: after an outage they may be dead, and each would fail one call."""
        async with translated(self.timeout):
            await self.client.connection_pool.disconnect()

    async def close(self) -> None:
        await self.client.aclose(close_connection_pool=True)  # we built the pool, so we close it
