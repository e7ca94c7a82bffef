"""The store interface, and the bounded in-memory store (LRU by entries and bytes).

The Redis store (redis_store.py) implements the same protocol; both pass one shared test suite.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from proxy.core.entry import Entry

Clock = Callable[[], float]


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


class MemoryLRU:
    """A plain bounded LRU of entries, dropped at their deadline. Synchronous: used as store and as L1."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self._items: OrderedDict[str, tuple[Entry, float]] = OrderedDict()
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._bytes = 0
        self.evictions = 0  # entries dropped to make room (not those that expired)

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

    def put(self, key: str, entry: Entry, deadline: float, now: float) -> bool:
        """Keep `entry` until `deadline`; False if it cannot be kept (past deadline, larger than the cap)."""
        if key in self._items:
            self._drop(key)
        if deadline <= now or entry.size > self._max_bytes:
            return False
        self._items[key] = (entry, deadline)
        self._bytes += entry.size
        while len(self._items) > self._max_entries or self._bytes > self._max_bytes:
            self._drop(next(iter(self._items)))
            self.evictions += 1
        return True

    def items(self) -> list[tuple[str, Entry]]:
        """Every (key, entry) held, least recently used first (the admin API's listing)."""
        return [(key, entry) for key, (entry, _) in self._items.items()]

    def discard(self, key: str) -> bool:
        """Drop `key` if held (a purge); True if it was."""
        if key not in self._items:
            return False
        self._drop(key)
        return True

    def _drop(self, key: str) -> None:
        entry, _ = self._items.pop(key)
        self._bytes -= entry.size


class MemoryStore:
    """The embedded default store: one process, bounded, LRU."""

    name = "memory"

    def __init__(self, lru: MemoryLRU, clock: Clock) -> None:
        self.lru = lru  # read synchronously by the hit path
        self._clock = clock

    def __len__(self) -> int:
        return len(self.lru)

    async def get(self, key: str) -> Entry | None:
        return self.lru.get(key, self._clock())

    async def set(self, key: str, entry: Entry, now: float) -> bool:
        return self.lru.put(key, entry, entry.stale_until, now)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
