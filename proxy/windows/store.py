"""Where a series' buckets are kept: in process (bounded by bytes, least recently used series dropped first)
or in Redis (a hash per series: one HMGET reads a window, one script writes a fetch, trims and sets the expiry).

Redis hashes have no per-field expiry before 7.4, so each point carries its own freshness (series.Point) and
the hash lives as long as its longest-lived point.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Protocol

from proxy.core.errors import StoreError
from proxy.core.series import MAX_BUCKETS, Point, decode_point, encode_point
from proxy.obs import tracing
from proxy.redis.connection import RedisConnection
from proxy.redis.health import Health

_WRITE = resources.files("proxy").joinpath("lua/series_write.lua").read_text()
# What Python holds beyond the bytes themselves (measured with tracemalloc, CPython 3.11): per point its bytes
# and str objects and its dict slot; per series its dict, key and LRU links. So the cap bounds real memory.
POINT_OVERHEAD = 104
SERIES_OVERHEAD = 1200


class SeriesStore(Protocol):
    name: str

    async def read(self, key: str, fields: Sequence[str]) -> list[Point | None]:
        """The points of `fields` in order (None where absent). Raises StoreError."""

    async def write(self, key: str, points: Mapping[str, Point], now: float) -> None:
        """Add or replace points; the series lives as long as its longest-lived point; past MAX_BUCKETS the
        points fetched longest ago go first. Raises StoreError."""

    async def drop(self, key: str, fields: Sequence[str]) -> None:
        """Forget these points (their dates did not check out). Raises StoreError."""


class MemorySeriesStore:
    name = "memory"

    def __init__(self, max_bytes: int) -> None:
        self._series: OrderedDict[str, dict[str, bytes]] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._max_bytes = max_bytes
        self._bytes = 0
        self.evictions = 0

    @property
    def bytes(self) -> int:
        return self._bytes

    async def read(self, key: str, fields: Sequence[str]) -> list[Point | None]:
        held = self._series.get(key)
        if held is None:
            return [None] * len(fields)
        self._series.move_to_end(key)
        return [decode_point(held.get(f)) for f in fields]

    def held(self) -> list[tuple[str, list[Point]]]:
        """Every series held and its points (the admin API's listing)."""
        return [
            (key, [p for p in map(decode_point, held.values()) if p is not None]) for key, held in self._series.items()
        ]

    def discard(self, key: str) -> bool:
        """Drop the series `key` if held (a purge); True if it was."""
        if self._series.pop(key, None) is None:
            return False
        self._bytes -= self._sizes.pop(key, 0)
        return True

    async def write(self, key: str, points: Mapping[str, Point], now: float) -> None:
        held = self._series.pop(key, None) or {}
        self._bytes -= self._sizes.pop(key, 0)
        held.update((f, encode_point(p)) for f, p in points.items())
        if len(held) > MAX_BUCKETS:  # the buckets fetched longest ago go first (not the oldest dates)
            for f in sorted(held, key=lambda f: (_fetched_at(held[f]), int(f)))[: len(held) - MAX_BUCKETS]:
                del held[f]
        size = sum(len(v) + len(f) for f, v in held.items()) + POINT_OVERHEAD * len(held) + len(key) + SERIES_OVERHEAD
        if size > self._max_bytes:
            return
        while self._bytes + size > self._max_bytes and self._series:
            old, _ = self._series.popitem(last=False)
            self._bytes -= self._sizes.pop(old)
            self.evictions += 1
        self._series[key] = held
        self._sizes[key] = size
        self._bytes += size

    async def drop(self, key: str, fields: Sequence[str]) -> None:
        held = self._series.get(key)
        if held is None:
            return
        for f in fields:
            value = held.pop(f, None)
            if value is not None:
                self._sizes[key] -= len(value) + len(f) + POINT_OVERHEAD
                self._bytes -= len(value) + len(f) + POINT_OVERHEAD


def _fetched_at(value: bytes) -> float:
    point = decode_point(value)
    return point.fetched_at if point is not None else 0.0


class RedisSeriesStore:
    name = "redis"

    def __init__(self, conn: RedisConnection, prefix: str, timeout: float) -> None:
        self._conn = conn
        self._prefix = prefix
        self._timeout = timeout
        self._write = conn.script(_WRITE)

    async def read(self, key: str, fields: Sequence[str]) -> list[Point | None]:
        async with self._conn.translated(self._timeout):
            values = await self._conn.client.hmget(self._prefix + key, list(fields))
        return [decode_point(v) for v in values]

    async def write(self, key: str, points: Mapping[str, Point], now: float) -> None:
        lives = max((p.stale_until - now for p in points.values()), default=0.0)
        if lives <= 0:
            return
        args: list[str | bytes | int | float] = [int(lives * 1000) + 1, MAX_BUCKETS]
        for f, p in points.items():
            args += [f, encode_point(p)]
        async with self._conn.translated(self._timeout):
            await self._write([self._prefix + key], args)

    async def drop(self, key: str, fields: Sequence[str]) -> None:
        if not fields:
            return
        async with self._conn.translated(self._timeout):
            await self._conn.client.hdel(self._prefix + key, *fields)


class GuardedSeries:
    """A series store as the windows use it: a store failure is Redis health's to know, and reads as missing
    points (the window is then fetched) or an unkept write, never an error of the request."""

    def __init__(self, store: SeriesStore, health: Health) -> None:
        self._store = store
        self._health = health

    async def read(self, skey: str, fields: Sequence[str]) -> list[Point | None]:
        """The window's points; none at all while the store cannot be read (then the window is fetched)."""
        if not self._health.readable:
            return [None] * len(fields)
        try:
            with tracing.span("series read", buckets=len(fields)):
                return await self._store.read(skey, fields)
        except StoreError as error:
            self._health.failed(error)
            return [None] * len(fields)

    async def write(self, skey: str, points: Mapping[str, Point], now: float) -> bool:
        if not self._health.writable or not points:
            return False
        try:
            with tracing.span("series write", buckets=len(points)):
                await self._store.write(skey, points, now)
        except StoreError as error:
            self._health.failed(error)
            return False
        return True

    async def drop(self, skey: str, fields: Sequence[str]) -> None:
        """Forget the buckets whose dates did not check out (best effort: they are not read while they don't)."""
        try:
            await self._store.drop(skey, fields) if fields and self._health.writable else None
        except StoreError as error:
            self._health.failed(error)
