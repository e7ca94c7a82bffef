"""Windows answered from buckets: read the window's points from the series store, answer when they are all
there and usable, else fetch the widest window ending at the question's last bucket once (in process and
across replicas), check Braze's labels, keep every bucket, and answer from them.

`answer` returns None when the question must be answered exactly instead (Braze's labels were not the buckets
expected, for this series or for the credential's time zone): the caller then asks Braze for the client's
own instant. Correct before clever: nothing is assembled from an answer whose labels did not check out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import tzinfo
from typing import Any

from proxy import decisions, series, tracing
from proxy.alignment import Alignment
from proxy.asking import Asker
from proxy.coalesce import Flights
from proxy.credentials import Credential
from proxy.decisions import Answer, Fill, Revalidate, Serve
from proxy.entry import Entry
from proxy.errors import ProxyError, StoreError
from proxy.filler import Filled, Filler, Found, PassedOn
from proxy.freshness import FreshnessPolicy
from proxy.health import Health
from proxy.metrics import Metrics
from proxy.query import Question
from proxy.refreshes import Refreshes, passed_on, stale_if_error
from proxy.series import Point
from proxy.series_store import SeriesStore

KeepLocal = Callable[[str, Entry, float], None]


@dataclass(frozen=True, slots=True)
class Fetched:
    """The points one fill brought (by field), and whether the store kept them."""

    points: Mapping[str, Point]
    stored: bool


@dataclass(frozen=True, slots=True)
class Exact:
    """Braze's labels did not check out: answer exactly."""


Outcome = Fetched | Exact


class Windows:
    def __init__(
        self,
        *,
        store: SeriesStore,
        health: Health,
        filler: Filler,
        asker: Asker,
        alignment: Alignment,
        freshness: FreshnessPolicy,
        zone: tzinfo,
        widen: bool,
        keep_local: KeepLocal,
        metrics: Metrics,
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._health = health
        self._filler = filler
        self._asker = asker
        self._alignment = alignment
        self._freshness = freshness
        self._zone = zone
        self._widen = widen
        self._keep_local = keep_local
        self._m = metrics
        self._clock = clock
        self._flights: Flights[Filled[Outcome]] = Flights()
        self._refreshes = Refreshes(self._flights, metrics.refreshes)
        self._from_store = metrics.series_buckets.labels("store")
        self._fetched = metrics.series_buckets.labels("fetched")

    @property
    def store(self) -> SeriesStore:
        """Where the buckets are kept (the admin API lists and purges it)."""
        return self._store

    async def answer(self, question: Question, credential: Credential, key: str) -> Answer | None:
        """The window's answer (`key`: the question's cache key, for the in-process tier), or None: answer it
        exactly. Raises ProxyError when there is no answer."""
        now = self._clock()
        skey = series.series_key(question, credential.scope)
        if self._alignment.verdict(credential.scope, skey, question.unit, now) is not None:
            return None
        fields = [series.field(start) for start in series.window(question, self._zone)]
        assembled = series.assemble(await self._read(skey, fields))
        step = decisions.next_step(assembled, now, self._freshness.revalidate_seconds)
        if isinstance(step, Serve):
            self._served_from_store(key, step.entry, len(fields), now)
            return decisions.hit(step.entry, now, detail="buckets")
        if isinstance(step, Revalidate):
            self._refresh(question, credential, skey, fields)
            self._m.stale_served.labels("revalidate").inc()
            return decisions.stale(step.entry, now, "stale-while-revalidate")
        return await self._fill_and_answer(question, credential, key, skey, fields, step)

    async def _fill_and_answer(
        self, question: Question, credential: Credential, key: str, skey: str, fields: list[str], step: Fill
    ) -> Answer | None:
        try:
            filled, joined = await self._flights.run(
                self._flight(question, skey), lambda: self._fill(question, credential, skey, fields)
            )
        except ProxyError as error:
            return stale_if_error(step.stale, error, self._clock(), self._m.stale_served)
        if joined:
            self._m.coalesced.labels("process").inc()
        had_stale = step.stale is not None
        if isinstance(filled, PassedOn):
            return passed_on(filled, joined=joined, had_stale=had_stale)
        outcome = filled.value
        if isinstance(outcome, Exact):
            return None
        points = [outcome.points.get(f) for f in fields]
        if any(p is None for p in points):  # a fill for a shorter window of the series (widening off)
            points = await self._read(skey, fields)
        entry = series.assemble(points)
        if entry is None:
            return None
        now = self._clock()
        self._keep_local(key, entry, now)
        collapsed = joined or isinstance(filled, Found)
        return decisions.forwarded(entry, had_stale=had_stale, stored=outcome.stored, collapsed=collapsed)

    def _flight(self, question: Question, skey: str) -> str:
        """One fill per series and last bucket: every window ending there is answered by the widest fetch."""
        base = f"{skey}:w:{series.field(question.ending_at)}"
        return base if self._widen else f"{base}:{question.length}"

    async def _fill(self, question: Question, credential: Credential, skey: str, fields: list[str]) -> Filled[Outcome]:
        return await self._filler.fill(
            self._flight(question, skey),
            produce=lambda: self._produce(question, credential, skey),
            recheck=lambda: self._recheck(skey, fields),
        )

    async def _recheck(self, skey: str, fields: list[str]) -> Fetched | None:
        points = await self._read(skey, fields)
        now = self._clock()
        if any(p is None or now >= p.fresh_until for p in points):
            return None
        return Fetched({f: p for f, p in zip(fields, points, strict=True) if p is not None}, stored=False)

    async def _produce(self, question: Question, credential: Credential, skey: str) -> Outcome | PassedOn:
        endpoint = question.endpoint
        remembered = await self._asker.remembered(credential, endpoint)
        if remembered is not None:  # Braze refused this key a moment ago: it would again
            return remembered
        payer = self._asker.payer(credential, endpoint)
        # Braze refused the probe (a one-bucket question of whichever caller probed first): its answer is not
        # this question's, so nobody is handed it; the question is asked exactly, as the client asked it (a
        # 401/403 was remembered: that exact call then costs nothing).
        if await self._alignment.check(credential, question, payer) is not None:
            return Exact()
        wide = replace(question, length=endpoint.max_length) if self._widen else question
        reply = await self._asker.ask(wide, credential, payer)
        now = self._clock()
        if reply.kind != "success":
            refused = await self._asker.refused(credential, endpoint, reply)
            # Widened, this flight answers every window ending at this bucket: Braze's refusal of the wide
            # question is not theirs. Each is then asked exactly (a remembered 401/403 costs no call).
            return Exact() if self._widen else refused
        starts = series.window(wide, self._zone)
        labelled = series.points_of(reply.answer.body)
        if labelled is None or series.mismatch(labelled, starts, wide.unit, self._zone) is not None:
            self._alignment.reject(credential.scope, skey, wide, labelled, starts, now)
            return Exact()
        points = series.stamp(wide, starts, [raw for _, raw in labelled], now, self._freshness)
        self._fetched.inc(len(points))
        if wide.length > question.length:
            self._m.widened_fetches.inc()
        return Fetched(points, await self._write(skey, points, now))

    async def _read(self, skey: str, fields: list[str]) -> list[Point | None]:
        """The window's points; none at all while the store cannot be read (then the window is fetched)."""
        if not self._health.readable:
            return [None] * len(fields)
        try:
            with tracing.span("series read", buckets=len(fields)):
                return await self._store.read(skey, fields)
        except StoreError as error:
            self._health.failed(error)
            return [None] * len(fields)

    async def _write(self, skey: str, points: Mapping[str, Point], now: float) -> bool:
        if not self._health.writable:
            return False
        try:
            with tracing.span("series write", buckets=len(points)):
                await self._store.write(skey, points, now)
        except StoreError as error:
            self._health.failed(error)
            return False
        return True

    def _served_from_store(self, key: str, entry: Entry, buckets: int, now: float) -> None:
        self._from_store.inc(buckets)
        self._m.calls_avoided.inc()  # under exact-question caching this window would have been its own call
        self._keep_local(key, entry, now)

    def _refresh(self, question: Question, credential: Credential, skey: str, fields: list[str]) -> None:
        """One background refresh per series and last bucket (stale-while-revalidate)."""
        flight = self._flight(question, skey)
        self._refreshes.start(flight, lambda: self._fill(question, credential, skey, fields))

    async def renew(self, question: Question, credential: Credential) -> None:
        """Fetch the question's series again now (refresh ahead). Raises ProxyError."""
        await self._produce(question, credential, series.series_key(question, credential.scope))

    def tasks(self) -> list[asyncio.Future[Any]]:
        """The fills still running (for shutdown)."""
        return self._refreshes.tasks()
