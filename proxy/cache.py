"""The store interface, and the bounded in-memory store (LRU by entries and bytes).

The Redis store (redis_store.py) implements the same protocol; both pass one shared test suite.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol

from proxy.entry import Entry


class Store(Protocol):
    """Where answers live. Implementations raise proxy.errors.StoreError when they cannot answer."""

    name: str

    async def get(self, key: str) -> Entry | None: ...

    async def set(self, key: str, entry: Entry, now: float) -> None:
        """Store `entry`, to be dropped at its stale_until (a past stale_until stores nothing)."""

    async def delete(self, key: str) -> None: ...

    async def ping(self) -> None:
        """Raise StoreError if the store cannot serve."""

    async def close(self) -> None: ...


class MemoryLRU:
    """A plain bounded LRU of entries, dropped at their deadline. Synchronous: used as store and as L1."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self._items: OrderedDict[str, tuple[Entry, float]] = OrderedDict()
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def bytes(self) -> int:
        return self._bytes

    def get(self, key: str, now: float) -> Entry | None:
        item = self._items.get(key)
        if item is None:
            return None
        entry, deadline = item
        if now >= deadline:
            self._drop(key)
            return None
        self._items.move_to_end(key)
        return entry

    def put(self, key: str, entry: Entry, deadline: float, now: float) -> None:
        if key in self._items:
            self._drop(key)
        if deadline <= now or entry.size > self._max_bytes:
            return
        self._items[key] = (entry, deadline)
        self._bytes += entry.size
        while len(self._items) > self._max_entries or self._bytes > self._max_bytes:
            self._drop(next(iter(self._items)))

    def pop(self, key: str) -> None:
        if key in self._items:
            self._drop(key)

    def _drop(self, key: str) -> None:
        entry, _ = self._items.pop(key)
        self._bytes -= entry.size


class MemoryStore:
    """The embedded default store: one process, bounded, LRU."""

    name = "memory"

    def __init__(self, max_entries: int, max_bytes: int, clock: Clock) -> None:
        self._lru = MemoryLRU(max_entries, max_bytes)
        self._clock = clock

    def __len__(self) -> int:
        return len(self._lru)

    @property
    def lru(self) -> MemoryLRU:
        """The entries themselves, for readers that must not await (the hit path)."""
        return self._lru

    async def get(self, key: str) -> Entry | None:
        return self._lru.get(key, self._clock())

    async def set(self, key: str, entry: Entry, now: float) -> None:
        self._lru.put(key, entry, entry.stale_until, now)

    async def delete(self, key: str) -> None:
        self._lru.pop(key)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


class Clock(Protocol):
    def __call__(self) -> float: ...
