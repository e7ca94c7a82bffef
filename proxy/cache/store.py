"""The store interface every answer store implements: cache/memory.py (in process) and cache/redis.py. Both pass
one shared test suite against a real redis-server."""

from __future__ import annotations

from typing import Protocol

from proxy.core.entry import Entry


class Store(Protocol):
    """Where answers live. Implementations raise proxy.errors.StoreError when they cannot answer."""

    name: str

    async def get(self, key: str) -> Entry | None: ...

    async def set(self, key: str, entry: Entry, now: float) -> bool:
        """Store `entry` until its stale_until; True if it was kept (a past deadline or an entry larger than
        the store's cap is not)."""

    async def ping(self) -> None:
        """Raise StoreError if the store cannot serve."""

    async def close(self) -> None: ...
