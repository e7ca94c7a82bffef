"""What the stores hold, for the admin API: listed a page at a time, and purged by endpoint and filters.

A purge deletes the matching entries and series from Redis (SCAN, then UNLINK) for every credential, and tells
every replica over the fills' pub/sub channel to drop them from its in-process tiers (this one at once too).
Without Redis the process's own stores are all there is.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from proxy.cache.memory import MemoryLRU
from proxy.core.entry import decode
from proxy.core.errors import InvalidRequest, StoreError
from proxy.core.series import decode_point
from proxy.core.stored_names import Held, describe
from proxy.fill.wakeups import PubSubWakeups
from proxy.redis.connection import RedisConnection
from proxy.windows.store import MemorySeriesStore

log = logging.getLogger("braze_proxy.admin")

SCAN_COUNT = 500
MAX_SCAN_ROUNDS = 50  # per page of the listing: a page may come back short, with a cursor to go on
MAX_PAGE = 200
DELETE_BATCH = 200
Page = tuple[list[dict[str, object]], str | None]  # rows, and the next page's cursor (None: the last page)


def _glob_escaped(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


class Inventory:
    def __init__(
        self,
        *,
        local: MemoryLRU | None,
        series: MemorySeriesStore | None,
        redis: RedisConnection | None,
        notices: PubSubWakeups | None,
        prefix: str,
        timeout: float,
    ) -> None:
        self._local = local  # the L1, or the memory store's LRU
        self._series = series  # the in-process series store (without Redis)
        self._redis = redis
        self._notices = notices
        self._prefix = prefix
        self._timeout = timeout
        if notices is not None:
            notices.on_notice = self._on_notice

    async def purge(self, endpoint: str, filters: Mapping[str, str]) -> int:
        """Drop every matching entry and series, everywhere; the number dropped. Raises StoreError."""
        dropped = self.drop_local(endpoint, filters)
        if self._redis is None:
            return dropped
        deleted = await self._purge_redis(endpoint, filters)
        if self._notices is not None:
            await self._notices.tell(json.dumps({"purge": endpoint, "filters": dict(filters)}))
        return deleted

    def drop_local(self, endpoint: str, filters: Mapping[str, str]) -> int:
        """Drop the matching entries and series this process holds; how many."""
        dropped = 0
        if self._local is not None:
            for key, _ in self._local.items():
                held = describe(key)
                if held is not None and held.matches(endpoint, filters):
                    dropped += self._local.discard(key)
        if self._series is not None:
            for key, _ in self._series.held():
                held = describe(key)
                if held is not None and held.matches(endpoint, filters):
                    dropped += self._series.discard(key)
        return dropped

    def _on_notice(self, notice: str) -> None:
        try:
            told = json.loads(notice)
            endpoint, filters = str(told["purge"]), {str(k): str(v) for k, v in dict(told["filters"]).items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("ignored a malformed notice on the fills channel")
            return
        self.drop_local(endpoint, filters)

    async def _purge_redis(self, endpoint: str, filters: Mapping[str, str]) -> int:
        assert self._redis is not None
        client: Any = self._redis.client
        doomed: list[bytes] = []
        deleted = 0
        async with self._redis.translated(self._timeout * 20):  # a scan of the whole keyspace, bounded
            async for name in client.scan_iter(match=_glob_escaped(self._prefix) + "{*", count=SCAN_COUNT):
                held = describe(name.decode(errors="replace").removeprefix(self._prefix))
                if held is not None and held.matches(endpoint, filters):
                    doomed.append(name)
                if len(doomed) >= DELETE_BATCH:
                    deleted += await self._unlink(client, doomed)
                    doomed = []
            if doomed:
                deleted += await self._unlink(client, doomed)
        return deleted

    async def _unlink(self, client: Any, names: list[bytes]) -> int:
        pipe = client.pipeline(transaction=False)  # on a cluster the names lie in many slots: one command each
        for name in names:
            pipe.execute_command("UNLINK", name)  # (a cluster pipeline's unlink() is a coroutine)
        return sum(int(n) for n in await pipe.execute())

    async def page(self, endpoint: str | None, limit: int, cursor: str) -> Page:
        """One page of what is held (for `endpoint`, or all), and the cursor of the next (None: the end).
        Raises StoreError, InvalidRequest for a cursor this did not give."""
        if self._redis is None:
            return self._page_listed(endpoint, limit, cursor)
        return await self._page_redis(endpoint, limit, cursor)

    def _page_listed(self, endpoint: str | None, limit: int, cursor: str) -> Page:
        """From the memory store, by offset."""
        start = _int_cursor(cursor)
        rows: list[dict[str, object]] = []
        if self._local is not None:
            for key, entry in self._local.items():
                rows.append({"name": key, "stored_at": entry.stored_at, "fresh_until": entry.fresh_until,
                             "bytes": entry.size})  # fmt: skip
        if self._series is not None:
            for key, points in self._series.held():
                rows.append(_series_row(key, points))
        shown = [r for r in (_shown(row) for row in rows) if r is not None and _wanted(r, endpoint)]
        end = start + limit
        return shown[start:end], str(end) if end < len(shown) else None

    async def _page_redis(self, endpoint: str | None, limit: int, cursor: str) -> Page:
        """A page from SCAN, node after node: the one Redis, or a cluster's primaries in the order of their
        names. The cursor: the node's place (on a cluster, before a '-'), SCAN's cursor on it, and how many
        names of its next batch were listed already (after a '.')."""
        assert self._redis is not None
        client: Any = self._redis.client
        cluster = self._redis.kind == "cluster"
        place_text, _, on_node = cursor.rpartition("-") if cluster else ("", "", cursor)
        scan, _, skip = on_node.partition(".")
        place, at, skipped = _int_cursor(place_text), _int_cursor(scan), _int_cursor(skip)
        match = _glob_escaped(self._prefix) + "{*"
        found: list[tuple[bytes, Held]] = []
        next_cursor: str | None = None
        async with self._redis.translated(self._timeout * 4):
            nodes: list[Any] = sorted(client.get_primaries(), key=lambda n: n.name) if cluster else [None]
            for _ in range(MAX_SCAN_ROUNDS):
                if place >= len(nodes):  # the last node is done (or a cluster lost a primary since)
                    next_cursor = None
                    break
                following, names = await _scan(client, nodes[place], at, match)
                batch = self._matching(names, endpoint)[skipped:]
                room = limit - len(found)
                found += batch[:room]
                if len(batch) > room:  # this batch goes on in the next page
                    next_cursor = _cursor(cluster, place, f"{at}.{skipped + room}")
                    break
                at, skipped = following, 0
                if at == 0:
                    place += 1
                next_cursor = _cursor(cluster, place, str(at)) if place < len(nodes) else None
            rows = await self._read(client, found)
        return rows, next_cursor

    def _matching(self, names: list[bytes], endpoint: str | None) -> list[tuple[bytes, Held]]:
        described = ((name, describe(name.decode(errors="replace").removeprefix(self._prefix))) for name in names)
        return [(n, h) for n, h in described if h is not None and (endpoint is None or h.endpoint == endpoint)]

    async def _read(self, client: Any, found: list[tuple[bytes, Held]]) -> list[dict[str, object]]:
        pipe = client.pipeline(transaction=False)
        for name, held in found:
            if held.kind == "entry":
                pipe.get(name)
            else:
                pipe.hvals(name)
        rows: list[dict[str, object]] = []
        for (name, held), value in zip(found, await pipe.execute(), strict=True):
            key = name.decode(errors="replace").removeprefix(self._prefix)
            if held.kind == "entry":
                entry = decode(value) if isinstance(value, bytes) else None
                if entry is not None:
                    rows.append(_shown({"name": key, "stored_at": entry.stored_at, "fresh_until": entry.fresh_until,
                                        "bytes": len(value)}) or {})  # fmt: skip
            else:
                points = [p for p in map(decode_point, value or []) if p is not None]
                rows.append(_shown(_series_row(key, points)) or {})
        return [row for row in rows if row]


async def _scan(client: Any, node: Any, at: int, match: str) -> tuple[int, list[bytes]]:
    """One SCAN round: on the one Redis (`node` None), or on one primary of a cluster."""
    if node is None:
        following, names = await client.scan(at, match=match, count=SCAN_COUNT)
        return int(following), names
    cursors, names = await client.scan(at, match=match, count=SCAN_COUNT, target_nodes=node)
    return int(cursors[node.name]), names


def _cursor(cluster: bool, place: int, on_node: str) -> str:
    return f"{place}-{on_node}" if cluster else on_node


def _series_row(key: str, points: list[Any]) -> dict[str, object]:
    latest = max(points, key=lambda p: p.fetched_at, default=None)
    return {
        "name": key,
        "stored_at": latest.fetched_at if latest else 0.0,
        "fresh_until": min((p.fresh_until for p in points), default=0.0),
        "bytes": sum(len(p.raw) for p in points),
        "buckets": len(points),
    }


def _shown(row: dict[str, object]) -> dict[str, object] | None:
    """A listing row: what is held (held.Held.shown), with its times and size; the stored name left out."""
    held = describe(str(row.pop("name")))
    if held is None:
        return None
    return {**held.shown(), **row}


def _wanted(row: dict[str, object], endpoint: str | None) -> bool:
    return endpoint is None or row.get("endpoint") == endpoint


def _int_cursor(cursor: str) -> int:
    if not cursor:
        return 0
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 20:
        raise InvalidRequest("Invalid request: 'cursor' must be a cursor a previous page gave")
    return int(cursor)


__all__ = ["Inventory", "StoreError"]
