"""Refresh ahead: a question asked again while its entry is fresh (a hit: the fill was the first ask) is fetched
again in the background shortly before the entry expires, so the next client after the expiry gets a fresh hit
instead of a stale answer or a wait on Braze.

- The hit path only notes the entry (a dict lookup; no I/O, no await).
- A loop picks the entries coming due; one replica refreshes each (a Redis claim per key and expiry), paid as
  the background team: only spare budget, skipped when the budget is short (background.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from proxy.budget.background import background
from proxy.core.credentials import Credential
from proxy.core.endpoints import Endpoint
from proxy.core.entry import Entry
from proxy.core.errors import ProxyError, StoreError
from proxy.core.query import Question
from proxy.obs.metrics import Metrics
from proxy.redis.connection import RedisConnection

log = logging.getLogger("braze_proxy.refresh_ahead")

TICK_SECONDS = 0.2
LEAD_FRACTION = 0.2  # refreshed this part of its freshness before it expires ...
MIN_LEAD, MAX_LEAD = 1.0, 60.0  # ... within these bounds (seconds), and never more than half of it
MAX_PLANNED = 10_000
MAX_RUNNING = 4
PRUNE_TICKS = 25
Renew = Callable[[Question, Credential, str], Awaitable[None]]
Room = Callable[[Credential, Endpoint], Awaitable[bool]]


def lead(entry: Entry) -> float:
    """How long before `entry` expires it is refreshed."""
    freshness = entry.fresh_until - entry.stored_at
    return min(max(MIN_LEAD, min(MAX_LEAD, freshness * LEAD_FRACTION)), freshness / 2)


@dataclass(order=True, slots=True)
class Planned:
    due: float
    key: str = field(compare=False)
    question: Question = field(compare=False)
    credential: Credential = field(compare=False)
    fresh_until: float = field(compare=False)


class RefreshAhead:
    def __init__(
        self,
        *,
        renew: Renew,
        room: Room,
        metrics: Metrics,
        clock: Callable[[], float],
        redis: RedisConnection | None = None,
        prefix: str = "",
        timeout: float = 0.5,
    ) -> None:
        self._renew = renew
        self._room = room  # whether the budget has tokens the clients leave (background.Spare)
        self._m = metrics
        self._clock = clock
        self._redis = redis
        self._prefix = prefix
        self._timeout = timeout
        self._seen: dict[str, Entry] = {}  # key -> the entry planned for (bounded by MAX_PLANNED)
        self._heap: list[Planned] = []
        self._running: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None

    def seen(self, key: str, question: Question, credential: Credential, entry: Entry) -> None:
        """A hit on `entry`: plan its refresh once. The hot path: no I/O, no await."""
        if self._seen.get(key) is entry:
            return
        if len(self._seen) >= MAX_PLANNED and key not in self._seen:
            return  # full: this one expires as usual
        self._seen[key] = entry
        due = entry.fresh_until - lead(entry)
        heapq.heappush(self._heap, Planned(due, key, question, background(credential), entry.fresh_until))

    def due(self, now: float) -> list[Planned]:
        """The planned refreshes due at `now` whose entry is still the one planned for."""
        found: list[Planned] = []
        while self._heap and self._heap[0].due <= now:
            planned = heapq.heappop(self._heap)
            entry = self._seen.get(planned.key)
            if entry is None or entry.fresh_until != planned.fresh_until:
                continue  # replaced since (a newer entry was planned)
            if now < planned.fresh_until:  # kept in _seen: more hits on this entry plan nothing more
                found.append(planned)
        return found

    async def _claim(self, planned: Planned) -> bool:
        """Whether this replica refreshes it (one replica per key and expiry)."""
        if self._redis is None:
            return True
        digest = hashlib.sha256(planned.key.encode()).hexdigest()[:32]
        name = f"{self._prefix}ahead:{digest}:{planned.fresh_until:.3f}"
        ms = int(max(1.0, planned.fresh_until - self._clock() + MAX_LEAD) * 1000)
        try:
            async with self._redis.translated(self._timeout):
                return bool(await self._redis.client.set(name, b"1", nx=True, px=ms))
        except StoreError:
            return True  # Redis is out of reach: each replica's own fill lock still holds one call per replica

    async def _refresh(self, planned: Planned) -> None:
        if not await self._room(planned.credential, planned.question.endpoint):
            self._m.refresh_ahead.labels("skipped").inc()
            return
        if not await self._claim(planned):
            self._m.refresh_ahead.labels("peer").inc()
            return
        try:
            await self._renew(planned.question, planned.credential, planned.key)
        except ProxyError as error:
            self._m.refresh_ahead.labels("skipped" if error.status == 429 else "error").inc()
            return
        self._m.refresh_ahead.labels("ok").inc()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def prune(self, now: float) -> None:
        """Forget the entries that expired (their keys plan again on their next hit)."""
        for key in [key for key, entry in self._seen.items() if entry.fresh_until <= now]:
            del self._seen[key]

    async def _run(self) -> None:
        for tick in range(1 << 62):  # until cancelled
            await asyncio.sleep(TICK_SECONDS)
            if tick % PRUNE_TICKS == 0:
                self.prune(self._clock())
            for planned in self.due(self._clock()):
                if len(self._running) >= MAX_RUNNING:
                    self._m.refresh_ahead.labels("skipped").inc()
                    continue
                task = asyncio.get_running_loop().create_task(self._guarded(planned))
                self._running.add(task)
                task.add_done_callback(self._running.discard)

    async def _guarded(self, planned: Planned) -> None:
        try:
            await self._refresh(planned)
        except Exception:  # a bug: logged, the entry expires as usual
            self._m.refresh_ahead.labels("error").inc()
            log.exception("refresh ahead failed")

    async def close(self) -> None:
        tasks = [t for t in (self._task, *self._running) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
