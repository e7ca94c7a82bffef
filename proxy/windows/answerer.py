"""Windows answered from buckets: an answer assembled here before (in process, or in the store under the
question's key), else the window's points from the series store when every one is there and its date is
vouched for (alignment.py), else one fetch (in process and across replicas) of the widest window that holds the
question and ends with its last bucket, whose vouched-for buckets are kept and answer the question.

`answer` returns None when the question must be answered exactly instead: it reaches past the open bucket,
its dates did not check out against Braze's labels, or its series' answers are not a plain series. The caller
then asks Braze for the client's own instant. Correct before clever: nothing is assembled from buckets whose
dates were not checked, nor from an answer whose labels did not check out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import tzinfo
from typing import Any

from proxy.cache.tiered import TieredCache
from proxy.core import series
from proxy.core.credentials import Credential
from proxy.core.entry import Entry
from proxy.core.freshness import FreshnessPolicy
from proxy.core.lookup import Answer
from proxy.core.outcomes import Filled, PassedOn
from proxy.core.query import Question
from proxy.core.series import Point
from proxy.fill.cross_replica import Filler
from proxy.fill.loop import Kept, Plan, RequestLoop
from proxy.obs.metrics import Metrics
from proxy.redis.health import Health
from proxy.upstream.asker import Asker
from proxy.windows.alignment import Alignment
from proxy.windows.store import GuardedSeries, SeriesStore


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
        answers: TieredCache,
        metrics: Metrics,
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._series = GuardedSeries(store, health)
        self._filler = filler
        self._asker = asker
        self.alignment = alignment  # the label checks: Service keys Canvas questions by them too
        self._freshness = freshness
        self._zone = zone
        self._widen = widen
        self._zone_name = str(zone)
        self._answers = answers
        self._m = metrics
        self._clock = clock
        self._loop: RequestLoop[Outcome] = RequestLoop(metrics, clock, freshness.revalidate_seconds)
        self._from_store = metrics.batched_counter(metrics.series_buckets.labels("store"))  # per answer: batched
        self._avoided = metrics.batched_counter(metrics.calls_avoided)
        self._fetched = metrics.series_buckets.labels("fetched")

    @property
    def store(self) -> SeriesStore:
        """Where the buckets are kept (the admin API lists and purges it)."""
        return self._store

    async def answer(self, question: Question, credential: Credential, key: str) -> Answer | None:
        """The window's answer (`key`: the question's cache key), or None: answer it exactly. Raises ProxyError
        when there is no answer."""
        now = self._clock()
        unit, scope = question.unit, credential.scope
        if question.ending_at > series.current_bucket(now, unit, self._zone):
            return None  # a window reaching into the future: Braze's answer for it is its own
        skey = series.series_key(question, scope, self._zone_name)
        if self.alignment.odd(skey, now):
            return None
        starts = series.window(question, self._zone)
        known = self.alignment.standing(scope, unit, starts, now)
        if None in known and False not in known:  # another replica may have checked these dates
            known = await self.alignment.load(scope, unit, starts)
        if False in known:
            return None
        fields = series.fields(starts)
        assembled = None
        if None not in known:  # every date vouched for: what was assembled or kept for it may answer
            assembled = await self._answers.get(key, now)
            if assembled is None or not assembled.is_fresh(now):
                assembled = series.assemble(await self._series.read(skey, fields)) or assembled
        return await self._loop.answer(assembled, self._plan(question, credential, key, skey, fields))

    def _plan(
        self, question: Question, credential: Credential, key: str, skey: str, fields: Sequence[str]
    ) -> Plan[Outcome]:
        return Plan(
            self._flight(question, skey),
            credential.team,
            fill=lambda: self._fill(question, credential, skey, fields),
            finish=lambda outcome: self._finish(outcome, key, skey, fields),
            detail="buckets",
            served=lambda entry, now: self._served_from_store(key, entry, len(fields), now),
        )

    async def _finish(self, outcome: Outcome, key: str, skey: str, fields: Sequence[str]) -> Kept | None:
        """The window's answer from what a fill brought (kept under the question's key too), or None: exactly."""
        if isinstance(outcome, Exact):
            return None
        points = [outcome.points.get(f) for f in fields]
        if any(p is None for p in points):  # a fill for another window of the series (widening off)
            points = await self._series.read(skey, fields)
        entry = series.assemble(points)
        if entry is None:
            return None
        await self._answers.put(key, entry, self._clock())
        return Kept(entry, outcome.stored)

    def _fetch(self, question: Question) -> Question:
        """The widest window ending at the question's last bucket (never after the open one): one fetch each."""
        return replace(question, length=question.endpoint.max_length) if self._widen else question

    def _flight(self, question: Question, skey: str) -> str:
        """One fill per series and fetched window: every question that window holds is answered by it."""
        length = question.endpoint.max_length if self._widen else question.length  # _fetch's, without a copy
        return f"{skey}:w:{series.field(question.ending_at)}:{length}"

    async def _fill(
        self, question: Question, credential: Credential, skey: str, fields: Sequence[str]
    ) -> Filled[Outcome]:
        return await self._filler.fill(
            self._flight(question, skey),
            produce=lambda: self._produce(question, credential, skey),
            recheck=lambda: self._recheck(skey, fields),
            team=credential.team,
        )

    async def _recheck(self, skey: str, fields: Sequence[str]) -> Fetched | None:
        points = await self._series.read(skey, fields)
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
        wide = self._fetch(question)
        starts = series.window(wide, self._zone)
        # Every date the fetch holds is checked before anything is kept. Braze's refusal of a probe is not this
        # question's: it is asked exactly (a remembered 401/403 then costs nothing).
        vouched = await self.alignment.vouch(credential, wide, starts, payer)
        if isinstance(vouched, PassedOn):
            return Exact()
        own = set(series.window(question, self._zone))
        if not all(ok for start, ok in zip(starts, vouched, strict=True) if start in own):
            await self._series.drop(skey, [series.field(s) for s, ok in zip(starts, vouched, strict=True) if not ok])
            return Exact()
        reply = await self._asker.ask(wide, credential, payer)
        now = self._clock()
        if reply.kind != "success":
            refused = await self._asker.refused(credential, endpoint, reply)
            # Widened, this flight answers every window it holds: Braze's refusal of it is not theirs.
            return Exact() if wide != question else refused
        labelled = series.points_of(reply.answer.body)
        wrong = None if labelled is None else series.mismatch(labelled, starts, wide.unit, self._zone)
        if labelled is None or len(labelled) != len(starts):
            self.alignment.set_odd(skey, wide.unit, now)
            return Exact()
        if wrong is not None:  # the dates were vouched for, yet the labels disagree: they are not any more
            await self.alignment.contradict(credential.scope, wide.unit, starts[-1], *wrong)
            await self._series.drop(skey, series.fields(starts))
            return Exact()
        stamped = series.stamp(wide, starts, [raw for _, raw in labelled], now, self._freshness)
        points = {f: p for (f, p), ok in zip(stamped.items(), vouched, strict=True) if ok}
        self._fetched.inc(len(points))
        if wide.length > question.length:
            self._m.widened_fetches.inc()
        return Fetched(points, await self._series.write(skey, points, now))

    def _served_from_store(self, key: str, entry: Entry, buckets: int, now: float) -> None:
        self._from_store.inc(buckets)
        self._avoided.inc()  # under exact-question caching this window would have been its own call
        self._answers.keep_local(key, entry, now)

    async def renew(self, question: Question, credential: Credential) -> None:
        """Fetch the question's series again now (refresh ahead). Raises ProxyError."""
        await self._produce(question, credential, series.series_key(question, credential.scope, self._zone_name))

    def tasks(self) -> list[asyncio.Future[Any]]:
        """The fills still running (for shutdown)."""
        return self._loop.tasks()
