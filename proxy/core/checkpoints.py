"""Pure: which instants must be checked against Braze's own labels before stored buckets may answer windows,
and which buckets a set of checked instants vouches for. No I/O.

Braze cuts days (and maybe hours) in the workspace's time zone, which the proxy cannot read; it is configured
(`BRAZE_PROXY_REPORTING_TIMEZONE`). Where the two zones agree on some dates and not others (DST on one side
only, other DST rules, older tz data on one side), a verdict made on one date says nothing about another. So
alignment is checked at *checkpoints*: local midnights (in our zone) on a fixed grid every `SPAN_DAYS` days,
plus the midnights around each day on which our zone changes its offset. A checkpoint holds when Braze puts a
bucket boundary exactly there:
- days: Braze labels the last second before our midnight with the day before and our midnight with the day
  itself (two one-bucket questions);
- hours: Braze's hour holding our midnight starts there and carries the label we expect (one question).

A bucket is vouched for when the checkpoints on both sides of its date hold. Between two adjacent checkpoints
our offset is constant (or the span is the one day on which it changes), so a zone that agreed at both ends
and disagreed in between would have to change its offset twice within `SPAN_DAYS` days: no IANA zone's rules
do that (the shortest, Morocco's Ramadan suspensions, last about five weeks). Hours of a day on which our zone
changes its offset are never vouched for (Braze's change could fall in another hour of that day): they are
asked exactly.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from functools import lru_cache

from proxy.core.timeline import Unit, bucket_start, day_start

SPAN_DAYS = 28
_ANCHOR = date(2000, 1, 3)  # a grid point: every SPAN_DAYS-th date from here is a checkpoint
_SECOND = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Probe:
    """One one-bucket question to Braze: ask at `instant`; its label must name the bucket starting at `start`."""

    instant: datetime
    start: datetime


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A local date of our zone whose first instant must be a boundary of Braze's buckets too. Its name in the
    verdict table holds the date and the instant (replicas whose tz data put the date's start elsewhere never
    share a verdict)."""

    day: date
    at: datetime  # the date's first instant, UTC
    name: str

    @staticmethod
    def of(day: date, zone: tzinfo) -> Checkpoint:
        at = day_start(day, zone)
        return Checkpoint(day, at, f"{day.isoformat()}@{int(at.timestamp())}")


def probes(point: Checkpoint, unit: Unit, zone: tzinfo) -> list[Probe]:
    """The questions that check `point` for `unit`."""
    if unit == "hour":
        return [Probe(point.at, point.at)]
    before = point.at - _SECOND
    return [Probe(before, bucket_start(before, "day", zone)), Probe(point.at, point.at)]


def _changes_offset(day: date, zone: tzinfo) -> bool:
    return (
        day_start(day, zone).astimezone(zone).utcoffset()
        != day_start(day + timedelta(days=1), zone).astimezone(zone).utcoffset()
    )


def _is_grid(day: date) -> bool:
    return (day - _ANCHOR).days % SPAN_DAYS == 0


@dataclass(frozen=True, slots=True)
class Plan:
    """The checkpoints around a run of dates, oldest first, and which dates change our offset."""

    points: tuple[Checkpoint, ...]
    changes: frozenset[date]
    days: tuple[date, ...] = ()  # the points' days, for bisecting

    def around(self, day: date) -> tuple[Checkpoint, Checkpoint]:
        """The checkpoints just before (or at) and just after `day`."""
        i = bisect_right(self.days, day)
        return self.points[i - 1], self.points[i]


def plan(days: Iterable[date], zone: tzinfo) -> Plan:
    """The checkpoints that decide every date in `days` (grid points and the dates around offset changes)."""
    chosen = list(days)
    if not chosen:
        return Plan((), frozenset())
    return plan_span(min(chosen), max(chosen), zone)


@lru_cache(maxsize=1024)  # pure, and asked again for every window over the same dates: kept, bounded
def plan_span(first: date, last: date, zone: tzinfo) -> Plan:
    """The checkpoints that decide every date from `first` to `last`."""
    low = first
    while not _is_grid(low):
        low -= timedelta(days=1)
    high = last + timedelta(days=1)
    while not _is_grid(high):
        high += timedelta(days=1)
    picked: set[date] = set()
    changes: set[date] = set()
    day = low
    while day <= high:
        if _is_grid(day):
            picked.add(day)
        if day < high and _changes_offset(day, zone):
            changes.add(day)
            picked.update((day, day + timedelta(days=1)))
        day += timedelta(days=1)
    points = tuple(Checkpoint.of(d, zone) for d in sorted(picked))
    return Plan(points, frozenset(changes), tuple(p.day for p in points))


def local_days(starts: Sequence[datetime], zone: tzinfo) -> tuple[date, ...]:
    """The local date of each bucket start."""
    return _local_days(tuple(starts), zone)


@lru_cache(maxsize=256)  # a window's starts are asked again and again: kept, bounded (~5 KB each)
def _local_days(starts: tuple[datetime, ...], zone: tzinfo) -> tuple[date, ...]:
    return tuple(start.astimezone(zone).date() for start in starts)


def vouched(
    starts: Sequence[datetime], unit: Unit, zone: tzinfo, the_plan: Plan, holds: Mapping[str, bool]
) -> list[bool | None]:
    """For each bucket start: True when the checkpoints around its date hold, False when one of them does not
    (or, for hours, its date changes our offset), None when one of them is not known yet."""
    decided: dict[date, bool | None] = {}  # an hour window has a few dates for many buckets
    out: list[bool | None] = []
    for day in local_days(starts, zone):
        if day not in decided:
            decided[day] = _vouched_day(day, unit, the_plan, holds)
        out.append(decided[day])
    return out


def _vouched_day(day: date, unit: Unit, the_plan: Plan, holds: Mapping[str, bool]) -> bool | None:
    if unit == "hour" and day in the_plan.changes:
        return False
    low, high = the_plan.around(day)
    a, b = holds.get(low.name), holds.get(high.name)
    return False if a is False or b is False else (None if a is None or b is None else True)
