"""Whether Braze's buckets are the ones the proxy computes, checked date by date: the verdicts on the
checkpoints of `checkpoints.py`, per credential, unit and configured zone, kept in process and shared through
Redis (both ways: "holds" and "does not hold"), each standing for `HOLD_SECONDS`.

A window's buckets answer other questions only while every checkpoint around their dates holds; a checkpoint
nobody has checked yet is probed (one or two one-bucket calls, coalesced in the process) before a fetch is
stored. A verdict names the zone it was made in (the Redis key) and the instant it checked (the field), so
replicas with another zone or other tz data never read it.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, tzinfo

from proxy.budget.buckets import Payer
from proxy.core import checkpoints, series
from proxy.core.checkpoints import Checkpoint, Plan
from proxy.core.credentials import Credential
from proxy.core.outcomes import PassedOn
from proxy.core.query import Question
from proxy.core.timeline import Unit
from proxy.fill.flights import Flights
from proxy.obs.metrics import Metrics
from proxy.upstream.asker import Asker
from proxy.windows.verdicts import HOLD_SECONDS, SharedVerdicts, Verdict

log = logging.getLogger("braze_proxy.windows")
MAX_VERDICTS = 20_000
MAX_STANDING = 256  # windows whose `standing` is remembered: at most 100 starts each (~6 KB), shared with series.window


Known = tuple[bool | None, ...]
WindowKey = tuple[str, str, tuple[datetime, ...]]  # (scope, unit, the window's starts)


class RememberedStanding:
    """What `Alignment.standing` said per window, good while no verdict was kept since (their count is the
    same) and none of those it read has ended. Bounded: emptied when full."""

    def __init__(self, max_windows: int = MAX_STANDING) -> None:
        self._said: dict[WindowKey, tuple[int, float, Known]] = {}
        self._max = max_windows

    def get(self, key: WindowKey, kept: int, now: float) -> Known | None:
        said = self._said.get(key)
        return said[2] if said is not None and said[0] == kept and now < said[1] else None

    def put(self, key: WindowKey, kept: int, until: float, known: Known) -> None:
        if len(self._said) >= self._max:
            self._said.clear()
        self._said[key] = (kept, until, known)


class Alignment:
    def __init__(
        self,
        *,
        asker: Asker,
        zone: tzinfo,
        metrics: Metrics,
        clock: Callable[[], float],
        shared: SharedVerdicts | None = None,
    ) -> None:
        self._shared = shared
        self._asker = asker
        self._zone = zone
        self._zone_name = str(zone)
        self._m = metrics
        self._clock = clock
        self._verdicts: OrderedDict[tuple[str, str], Verdict] = OrderedDict()  # (table, checkpoint name)
        self._probes: Flights[Verdict | PassedOn] = Flights()
        self._odd: OrderedDict[str, float] = OrderedDict()  # series key -> until when it is answered exactly
        self._kept = 0  # verdicts kept so far: a remembered `standing` is good while no new one came
        self._standing = RememberedStanding()

    def odd(self, skey: str, now: float) -> bool:
        """Whether this series' answers were not a plain series of the buckets asked (answered exactly)."""
        until = self._odd.get(skey)
        return until is not None and now < until

    def set_odd(self, skey: str, unit: str, now: float) -> None:
        """Braze answered this series with something other than the plain series asked (another member, a
        member named twice, a short series): its windows are asked exactly for a while."""
        if not self.odd(skey, now):
            self._m.label_mismatches.labels(unit).inc()
            log.warning("Braze's answer is not a plain series; this series is asked exactly", extra={"unit": unit})
        self._odd[skey] = now + HOLD_SECONDS
        self._odd.move_to_end(skey)
        while len(self._odd) > MAX_VERDICTS:
            self._odd.popitem(last=False)

    def _table(self, scope: str, unit: str) -> str:
        return f"{self._zone_name}:{scope}:{unit}"

    def _holds_until(self, table: str, the_plan: Plan, now: float) -> tuple[dict[str, bool], float]:
        """The standing verdicts on the plan's checkpoints, and when the first of them ends."""
        holds: dict[str, bool] = {}
        until = float("inf")
        for point in the_plan.points:
            found = self._verdicts.get((table, point.name))
            if found is not None and now < found.until:
                holds[point.name] = found.holds
                until = min(until, found.until)
        return holds, until

    def standing(self, scope: str, unit: Unit, starts: Sequence[datetime], now: float) -> Sequence[bool | None]:
        """What this process knows of each bucket (True: vouched for, False: not, None: not known). No I/O.
        Asked for every window answered from the store: remembered while its verdicts stand (RememberedStanding)."""
        key = (scope, unit, tuple(starts))
        known = self._standing.get(key, self._kept, now)
        if known is None:
            the_plan = checkpoints.plan(checkpoints.local_days(starts, self._zone), self._zone)
            holds, until = self._holds_until(self._table(scope, unit), the_plan, now)
            known = tuple(checkpoints.vouched(starts, unit, self._zone, the_plan, holds))
            self._standing.put(key, self._kept, until, known)
        return known

    async def load(self, scope: str, unit: Unit, starts: Sequence[datetime]) -> list[bool | None]:
        """As `standing`, after reading the other replicas' verdicts for the checkpoints not known here."""
        now = self._clock()
        the_plan = checkpoints.plan(checkpoints.local_days(starts, self._zone), self._zone)
        table = self._table(scope, unit)
        await self._read_shared(table, the_plan, now)
        return checkpoints.vouched(starts, unit, self._zone, the_plan, self._holds_until(table, the_plan, now)[0])

    async def vouches(self, question: Question, scope: str) -> bool:
        """Whether the buckets a question of another shape (Canvas) starts and ends in are known to be Braze's
        (from other questions' checks: it is never probed), so that any instant inside them asks the same. Its
        days in between are Braze's own either way."""
        now = self._clock()
        starts = [question.ending_at] + ([question.starting_at] if question.starting_at is not None else [])
        if question.ending_at > series.current_bucket(now, question.unit, self._zone):
            return False
        known = self.standing(scope, question.unit, starts, now)
        if None in known and False not in known:
            known = await self.load(scope, question.unit, starts)
        return all(k is True for k in known)

    async def vouch(
        self, credential: Credential, question: Question, starts: Sequence[datetime], payer: Payer
    ) -> list[bool] | PassedOn:
        """For each bucket start, whether it may answer other questions, probing Braze at every checkpoint not
        known yet. Braze's refusal of a probe (a one-bucket question of whichever caller probed first) is
        returned: it is nobody's answer, and the caller asks its own question exactly."""
        unit = question.unit
        now = self._clock()
        the_plan = checkpoints.plan(checkpoints.local_days(starts, self._zone), self._zone)
        table = self._table(credential.scope, unit)
        await self._read_shared(table, the_plan, now)
        holds = self._holds_until(table, the_plan, now)[0]
        for point in the_plan.points:
            if point.name in holds:
                continue
            result, _ = await self._probes.run(
                f"{table}:{point.name}", self._checker(table, point, credential, question, payer)
            )
            if isinstance(result, PassedOn):
                return result
            holds[point.name] = result.holds
            if not result.holds:  # one that does not hold decides its dates: the others are not needed now
                break
        decided = checkpoints.vouched(starts, unit, self._zone, the_plan, holds)
        return [v is True for v in decided]

    async def _read_shared(self, table: str, the_plan: Plan, now: float) -> None:
        if self._shared is None:
            return
        missing = [p.name for p in the_plan.points if self._known(table, p.name, now) is None]
        if not missing:
            return
        for name, verdict in zip(missing, await self._shared.read(table, missing), strict=True):
            if verdict is not None and now < verdict.until:
                self._keep(table, name, verdict, here=False)

    def _known(self, table: str, name: str, now: float) -> Verdict | None:
        found = self._verdicts.get((table, name))
        return found if found is not None and now < found.until else None

    def _checker(
        self, table: str, point: Checkpoint, credential: Credential, question: Question, payer: Payer
    ) -> Callable[[], Awaitable[Verdict | PassedOn]]:
        return lambda: self._check(table, point, credential, question, payer)

    async def _check(
        self, table: str, point: Checkpoint, credential: Credential, question: Question, payer: Payer
    ) -> Verdict | PassedOn:
        unit = question.unit
        for probe in checkpoints.probes(point, unit, self._zone):
            asked = replace(question, length=1, ending_at=probe.instant, starting_at=None)
            reply = await self._asker.ask(asked, credential, payer)
            if reply.kind != "success":  # remembered if a 401/403, handed to nobody
                return await self._asker.refused(credential, question.endpoint, reply)
            labelled = series.points_of(reply.answer.body)
            wrong = series.mismatch(labelled or [], [probe.start], unit, self._zone)
            if wrong is not None:
                return await self.record(table, point, Verdict(False, self._clock() + HOLD_SECONDS, *wrong))
        return await self.record(table, point, Verdict(True, self._clock() + HOLD_SECONDS))

    async def contradict(self, scope: str, unit: Unit, start: datetime, expected: str, got: str) -> None:
        """A fetch's labels disagreed at `start` although its checkpoints held: they do not any more (Braze's
        zone changed, or the checks missed it), for this and every other replica."""
        table = self._table(scope, unit)
        the_plan = checkpoints.plan(checkpoints.local_days([start], self._zone), self._zone)
        for point in the_plan.around(start.astimezone(self._zone).date()):
            await self.record(table, point, Verdict(False, self._clock() + HOLD_SECONDS, expected, got))

    async def record(self, table: str, point: Checkpoint, verdict: Verdict) -> Verdict:
        """Keep a verdict here and share it; a new "does not hold" is logged once and counted."""
        self._keep(table, point.name, verdict, here=True)
        if self._shared is not None:
            await self._shared.write(table, point.name, verdict)
        return verdict

    def _keep(self, table: str, name: str, verdict: Verdict, *, here: bool) -> None:
        key = (table, name)
        previous = self._verdicts.get(key)
        if not verdict.holds and (previous is None or previous.holds or previous.until <= self._clock()):
            unit = table.rsplit(":", 1)[1]
            self._m.label_mismatches.labels(unit).inc()
            log.warning(
                "Braze's buckets are not the ones expected around this date; its windows are asked exactly",
                extra={
                    "unit": unit,
                    "checkpoint": name.split("@")[0],
                    "expected": verdict.expected,
                    "got": verdict.got,
                    "zone": self._zone_name,
                    "found_here": here,
                },
            )
        self._verdicts[key] = verdict
        self._kept += 1
        self._verdicts.move_to_end(key)
        while len(self._verdicts) > MAX_VERDICTS:
            self._verdicts.popitem(last=False)

    def details(self) -> dict[str, object]:
        """What /readyz shows: the standing "does not hold" verdicts (a few, newest first; no credential)."""
        now = self._clock()
        standing = [(k, v) for k, v in reversed(self._verdicts.items()) if not v.holds and now < v.until]
        shown = [
            {
                "unit": table.rsplit(":", 1)[1],
                "checkpoint": name.split("@")[0],
                "zone": self._zone_name,
                "expected": v.expected,
                "got": v.got,
                "for_seconds": int(v.until - now),
            }
            for (table, name), v in standing[:5]
        ]
        return {"label_mismatches": len(standing), "examples": shown}
