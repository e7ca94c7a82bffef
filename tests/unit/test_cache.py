"""The in-process L1 store's bounds and the memory store's refusals, with no I/O. The one store suite on
memory and a real redis-server: tests/inprocess/test_cache.py."""

from __future__ import annotations

import time

from proxy.cache.memory import MemoryLRU, MemoryStore
from proxy.core.entry import Entry


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def entry(body: bytes = b'{"message":"success","data":[]}', keep: float = 60) -> Entry:
    now = time.time()
    return Entry(body, 200, "application/json", now, now + keep / 2, now + keep)


def test_lru_is_bounded_by_entries_and_bytes() -> None:
    lru = MemoryLRU(max_entries=3, max_bytes=10_000)
    now = time.time()
    for i in range(5):
        lru.put(f"k{i}", entry(), now + 60, now)
    assert len(lru) == 3 and lru.get("k0", now) is None and lru.get("k4", now) is not None
    lru.get("k2", now)  # k2 becomes most recent, so k3 goes first
    lru.put("k5", entry(), now + 60, now)
    assert lru.get("k3", now) is None and lru.get("k2", now) is not None

    small = MemoryLRU(max_entries=100, max_bytes=2_000)
    for i in range(10):
        small.put(f"k{i}", entry(b"x" * 500), now + 60, now)
    assert small.bytes <= 2_000 and len(small) == 3
    assert small.evictions == 7
    assert small.put("huge", entry(b"x" * 5_000), now + 60, now) is False  # larger than the whole cache: not kept
    assert small.get("huge", now) is None


async def test_the_memory_store_says_so_when_an_entry_is_too_large_to_keep() -> None:
    store = MemoryStore(MemoryLRU(100, 2_000), time.time)
    assert await store.set("v1:big", entry(b"x" * 5_000), time.time()) is False
    assert await store.get("v1:big") is None


def test_lru_drops_entries_at_their_deadline() -> None:
    clock = Clock()
    lru = MemoryLRU(10, 10_000)
    lru.put("k", entry(), clock.now + 5, clock.now)
    assert lru.get("k", clock.now + 4.9) is not None
    assert lru.get("k", clock.now + 5) is None
    assert len(lru) == 0 and lru.bytes == 0
