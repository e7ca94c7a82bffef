"""Whether Braze's buckets are the ones the proxy computes, per credential and unit (the reporting time zone)
and per series (a short or unreadable answer), remembered for a while.

Labels fetched at a bucket's start catch a reporting zone east of the workspace's; they cannot show one west
of it (Braze's bucket then starts earlier and still carries the expected label). A one-bucket probe at the
last second of a closed bucket checks the other edge, once per credential and unit per hold period, one at a
time in this process; with Redis, an "aligned" verdict is shared by the replicas (a mismatch is not: each
replica finds it with its own probe or first fetch).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo

from proxy import series
from proxy.asking import Asker
from proxy.budget import Payer
from proxy.coalesce import Flights
from proxy.credentials import Credential
from proxy.errors import StoreError
from proxy.filler import PassedOn
from proxy.metrics import Metrics
from proxy.query import Question
from proxy.redis_conn import RedisConnection

log = logging.getLogger("braze_proxy.windows")
HOLD_SECONDS = 600.0  # how long a verdict (either way) stands before Braze is asked again
MAX_VERDICTS = 10_000


@dataclass(frozen=True, slots=True)
class Verdict:
    """Windows of this credential and unit (or of this series) are answered exactly until `until`."""

    until: float
    unit: str
    why: str  # "time zone" (labels are other buckets) or "answer" (short or unreadable)
    expected: str
    got: str


class SharedAlignment:
    """The probes' verdicts in Redis, so that one replica's probe answers for all of them (best effort: a Redis
    failure only means this replica probes for itself)."""

    def __init__(self, conn: RedisConnection, prefix: str, timeout: float) -> None:
        self._conn = conn
        self._prefix = prefix
        self._timeout = timeout

    def _key(self, name: str) -> str:
        return f"{self._prefix}{{align:{name}}}"

    async def aligned(self, name: str) -> bool:
        try:
            async with self._conn.translated(self._timeout):
                return bool(await self._conn.client.get(self._key(name)) == b"aligned")
        except StoreError:
            return False

    async def remember(self, name: str, seconds: float) -> None:
        try:
            async with self._conn.translated(self._timeout):
                await self._conn.client.set(self._key(name), b"aligned", px=int(seconds * 1000))
        except StoreError:
            return


class Alignment:
    def __init__(
        self,
        *,
        asker: Asker,
        zone: tzinfo,
        metrics: Metrics,
        clock: Callable[[], float],
        shared: SharedAlignment | None = None,
    ) -> None:
        self._shared = shared
        self._asker = asker
        self._zone = zone
        self._m = metrics
        self._clock = clock
        self._verdicts: OrderedDict[str, Verdict] = OrderedDict()  # by "scope:unit" or series key
        self._aligned: dict[str, float] = {}  # "scope:unit" -> until when the probe's answer stands
        self._probes: Flights[Verdict | PassedOn | None] = Flights()

    def verdict(self, scope: str, skey: str, unit: str, now: float) -> Verdict | None:
        """The standing verdict that sends this series to exact answers, if any."""
        for name in (f"{scope}:{unit}", skey):
            found = self._verdicts.get(name)
            if found is not None:
                if now < found.until:
                    return found
                del self._verdicts[name]
        return None

    async def check(self, credential: Credential, question: Question, payer: Payer) -> Verdict | PassedOn | None:
        """None when this credential's buckets are known (or now probed) to be ours; a Verdict when they are
        not; Braze's own answer when it did not answer the probe with a series."""
        name = f"{credential.scope}:{question.unit}"
        if self._aligned.get(name, 0.0) > self._clock():
            return None
        result, _ = await self._probes.run(name, lambda: self._probe(name, credential, question, payer))
        return result

    async def _probe(
        self, name: str, credential: Credential, question: Question, payer: Payer
    ) -> Verdict | PassedOn | None:
        if self._shared is not None and await self._shared.aligned(name):  # another replica probed
            self._aligned[name] = self._clock() + HOLD_SECONDS
            return None
        instant, start = series.probe_instant(question, self._zone)
        probe = replace(question, length=1, ending_at=instant)
        reply = await self._asker.ask(probe, credential, payer)
        now = self._clock()
        if reply.kind != "success":  # Braze's refusal of the probe: remembered if a 401/403, handed to nobody
            return await self._asker.refused(credential, question.endpoint, reply)
        labelled = series.points_of(reply.answer.body)
        wrong = series.mismatch(labelled or [], [start], question.unit, self._zone)
        if wrong is None:
            self._aligned[name] = now + HOLD_SECONDS
            if self._shared is not None:
                await self._shared.remember(name, HOLD_SECONDS)
            return None
        return self._set(name, Verdict(now + HOLD_SECONDS, question.unit, "time zone", *wrong))

    def reject(
        self,
        scope: str,
        skey: str,
        wide: Question,
        labelled: Sequence[tuple[object, bytes]] | None,
        starts: Sequence[datetime],
        now: float,
    ) -> Verdict:
        """Remember that a fetched answer was not the buckets expected: the whole credential and unit when its
        labels are other buckets, this series alone when the answer was short or unreadable."""
        if labelled is None:
            return self._set(skey, Verdict(now + HOLD_SECONDS, wide.unit, "answer", "a series", "another shape"))
        expected, got = series.mismatch(labelled, starts, wide.unit, self._zone) or ("", "")
        if len(labelled) != len(starts):
            return self._set(skey, Verdict(now + HOLD_SECONDS, wide.unit, "answer", expected, got))
        self._aligned.pop(f"{scope}:{wide.unit}", None)
        return self._set(f"{scope}:{wide.unit}", Verdict(now + HOLD_SECONDS, wide.unit, "time zone", expected, got))

    def _set(self, name: str, verdict: Verdict) -> Verdict:
        self._m.label_mismatches.labels(verdict.unit).inc()
        if name not in self._verdicts:  # logged once per hold period
            log.warning(
                "Braze's buckets are not the ones expected; answering exactly",
                extra={"unit": verdict.unit, "why": verdict.why, "expected": verdict.expected, "got": verdict.got},
            )
        self._verdicts[name] = verdict
        self._verdicts.move_to_end(name)
        while len(self._verdicts) > MAX_VERDICTS:
            self._verdicts.popitem(last=False)
        if len(self._aligned) > MAX_VERDICTS:
            self._aligned.clear()
        return verdict

    def details(self) -> dict[str, object]:
        """What /readyz shows: the standing verdicts (a few, newest first; no credential)."""
        now = self._clock()
        standing = [v for v in reversed(self._verdicts.values()) if now < v.until]
        shown = [
            {"unit": v.unit, "why": v.why, "expected": v.expected, "got": v.got, "for_seconds": int(v.until - now)}
            for v in standing[:5]
        ]
        return {"label_mismatches": len(standing), "examples": shown}
