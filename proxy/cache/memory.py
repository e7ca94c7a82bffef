"""The bounded in-memory store (LRU by entries and bytes): the embedded default, and the L1 in front of Redis."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from proxy.core.entry import Entry

Clock = Callable[[], float]


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
