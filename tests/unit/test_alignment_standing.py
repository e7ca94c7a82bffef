"""Alignment.standing is remembered per window, and a remembered answer never outlives what it was made of: a
verdict kept since (for any checkpoint) or the first of its verdicts ending makes it be worked out again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from proxy.core import checkpoints, series
from proxy.core.endpoints import SERVED
from proxy.core.query import Question
from proxy.obs.metrics import Metrics
from proxy.windows.alignment import Alignment
from proxy.windows.verdicts import Verdict

ZONE = ZoneInfo("Europe/London")


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def window() -> tuple[datetime, ...]:
    ending = datetime(2024, 3, 30, tzinfo=UTC)  # 14 London days
    question = Question(endpoint=SERVED[0], length=14, unit="day", ending_at=ending, filters=())
    return series.window(question, ZONE)


def test_standing_follows_every_verdict_kept_and_every_one_ending() -> None:
    clock = Clock()
    alignment = Alignment(asker=None, zone=ZONE, metrics=Metrics(), clock=clock)  # type: ignore[arg-type]
    starts = window()
    table = f"{ZONE}:scope:day"
    points = checkpoints.plan(checkpoints.local_days(starts, ZONE), ZONE).points
    assert set(alignment.standing("scope", "day", starts, clock.now)) == {None}
    for i, point in enumerate(points):  # the first ends soonest
        asyncio.run(alignment.record(table, point, Verdict(True, clock.now + 100 + i)))
    assert set(alignment.standing("scope", "day", starts, clock.now)) == {True}
    assert set(alignment.standing("other", "day", starts, clock.now)) == {None}  # another credential's
    clock.now += 100  # the first verdict ends: its dates are not known any more
    after = alignment.standing("scope", "day", starts, clock.now)
    assert None in after and False not in after
    asyncio.run(alignment.record(table, points[0], Verdict(False, clock.now + 100)))
    assert False in alignment.standing("scope", "day", starts, clock.now)
