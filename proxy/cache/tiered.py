"""The tiered entry cache: an in-process L1 in front of the store, and the one place that knows how a store
failure degrades (to what the L1 holds) and counts it.

With the memory store there is no L1: the store's own LRU is what the hot path peeks at.
"""

from __future__ import annotations

import time

from proxy.cache.memory import MemoryLRU, MemoryStore
from proxy.cache.store import Store
from proxy.core.entry import Entry
from proxy.core.errors import StoreError
from proxy.obs import tracing
from proxy.obs.metrics import Metrics
from proxy.redis.health import Health


class TieredCache:
    def __init__(self, *, store: Store, l1: MemoryLRU | None, health: Health, metrics: Metrics) -> None:
        self._store = store
        self._l1 = l1
        self._health = health
        ops = metrics.cache_ops
        # What `peek` reads without awaiting: the L1, or the memory store's own LRU when it is the store.
        self._local = l1 if l1 is not None else (store.lru if isinstance(store, MemoryStore) else None)
        local_name = "l1" if l1 is not None else store.name
        self._local_hit = metrics.batched_counter(ops.labels(local_name, "get", "hit"))  # hot path: batched
        # A window's first answer in this replica reads the store on every request: its counts are batched too.
        self._l1_miss = metrics.batched_counter(ops.labels("l1", "get", "miss"))
        name = store.name
        self._get = {r: metrics.batched_counter(ops.labels(name, "get", r)) for r in ("hit", "miss", "error")}
        self._set = {result: ops.labels(name, "set", result) for result in ("ok", "error", "skipped")}
        self._get_time = metrics.batched_histogram(metrics.cache_op_duration.labels(name, "get"))
        self._set_time = metrics.cache_op_duration.labels(name, "set")

    @property
    def local(self) -> MemoryLRU | None:
        """The in-process entries (for the gauges)."""
        return self._local

    def peek(self, key: str, now: float) -> Entry | None:
        """The fresh entry this process holds for `key`, or None. No I/O, no await: the hot path."""
        local = self._local
        if local is None:
            return None
        entry = local.get(key, now)
        if entry is None or now >= entry.fresh_until:
            return None
        self._local_hit.inc()
        return entry

    async def get(self, key: str, now: float) -> Entry | None:
        """The L1's fresh entry, else the store's (fresh or not); when the store fails, what the L1 still holds."""
        kept: Entry | None = None
        if self._l1 is not None:
            kept = self._l1.get(key, now)
            if kept is not None and kept.is_fresh(now):
                self._local_hit.inc()
                return kept
            self._l1_miss.inc()
        if not self._health.readable:
            return kept
        started = time.perf_counter()
        try:
            with tracing.span("redis GET"):
                entry = await self._store.get(key)
        except StoreError as error:
            self._get["error"].inc()
            self._health.failed(error)
            return kept
        self._get_time.observe(time.perf_counter() - started)
        self._get["hit" if entry is not None else "miss"].inc()
        if entry is None:
            return kept
        if self._l1 is not None:
            self._l1.put(key, entry, entry.stale_until, now)
        return entry

    def keep_local(self, key: str, entry: Entry, now: float) -> None:
        """Keep an answer made in this process (a window assembled from buckets) where the hot path finds it,
        and nowhere else: its buckets are what the store shares."""
        if self._local is not None:
            self._local.put(key, entry, entry.fresh_until, now)

    async def put(self, key: str, entry: Entry, now: float) -> bool:
        """Store `entry` in every tier that takes it; True if any kept it (so a later request can find it)."""
        kept = self._l1.put(key, entry, entry.stale_until, now) if self._l1 is not None else False
        if not self._health.writable:
            self._set["skipped"].inc()
            return kept
        started = time.perf_counter()
        try:
            with tracing.span("redis SET"):
                stored = await self._store.set(key, entry, now)
        except StoreError as error:
            self._set["error"].inc()
            self._health.failed(error)
            return kept
        self._set_time.observe(time.perf_counter() - started)
        self._set["ok" if stored else "skipped"].inc()
        return stored or kept
