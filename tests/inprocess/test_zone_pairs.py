"""A window is never wrong, whatever the two time zones: property tests over pairs (our reporting zone, Braze's
zone) and sequences of questions across a whole year, in any order, on every series endpoint, day and hour,
against the stand-in cutting days and hours in its own zone. Every proxy answer must be the stand-in's own
answer to the same question (compared as JSON). In process: the real app, the real stand-in, a fixed clock.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import zoneinfo
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.inprocess.test_window_properties import KEY, exact
from tests.support.braze_standin import StandinServer, StandinState
from tests.support.harness import InProcessProxy, ManualClock, proxy_in_process
from tests.support.procs import RedisServer

ZONES = [
    "UTC",
    "Europe/London",
    "America/New_York",
    "Australia/Sydney",
    "Australia/Brisbane",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "America/Havana",
]
NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
YEAR_START = datetime(2025, 11, 1, tzinfo=UTC)
EXAMPLES = int(os.environ.get("ZONE_PAIR_EXAMPLES", "40"))
_prefixes = itertools.count()

# (path, fixed parameters, hours served, longest length)
SERIES = [
    ("/sessions/data_series", {"app_id": "a1"}, True, 100),
    ("/events/data_series", {"event": "signup"}, True, 100),
    ("/kpi/dau/data_series", {}, False, 100),
    ("/kpi/mau/data_series", {"app_id": "a2"}, False, 100),
    ("/kpi/new_users/data_series", {}, False, 100),
    ("/kpi/uninstalls/data_series", {}, False, 100),
    ("/purchases/quantity_series", {"product": "p"}, True, 100),
    ("/purchases/revenue_series", {}, True, 100),
    ("/segments/data_series", {"segment_id": "s1"}, False, 100),
    ("/campaigns/data_series", {"campaign_id": "c1"}, False, 100),
    ("/sends/data_series", {"campaign_id": "c1", "send_id": "s1"}, False, 100),
    ("/feed/data_series", {"card_id": "card-1"}, True, 100),
    ("/canvas/data_series", {"canvas_id": "v1"}, False, 14),
    ("/canvas/data_summary", {"canvas_id": "v1"}, False, 14),
]


def _offset_changes(zone: str) -> list[datetime]:
    """Where `zone` changes its UTC offset within the year drawn from (to draw instants near them)."""
    tz = zoneinfo.ZoneInfo(zone)
    changes = []
    at = YEAR_START
    while at < NOW:
        later = at + timedelta(hours=1)
        if at.astimezone(tz).utcoffset() != later.astimezone(tz).utcoffset():
            changes.append(later)
        at = later
    return changes


CHANGES = {zone: _offset_changes(zone) for zone in ZONES}


@st.composite
def instants(draw: st.DrawFn, zones: tuple[str, str]) -> datetime:
    """Anywhere in the year, near either zone's offset changes, or near either zone's midnights."""
    kind = draw(st.sampled_from(["anywhere", "change", "midnight"]))
    span = int((NOW - YEAR_START).total_seconds())
    if kind == "change" and (changes := CHANGES[zones[0]] + CHANGES[zones[1]]):
        near = draw(st.sampled_from(changes))
        at = near + timedelta(hours=draw(st.integers(-72, 72)), seconds=draw(st.integers(-1, 1)))
    elif kind == "midnight":
        day = YEAR_START + timedelta(days=draw(st.integers(0, span // 86400)))
        local = day.astimezone(zoneinfo.ZoneInfo(draw(st.sampled_from(zones))))
        midnight = local.replace(hour=0, minute=0, second=0)
        at = midnight.astimezone(UTC) + timedelta(seconds=draw(st.sampled_from([-1, 0, 1, 3599, 3600])))
    else:
        at = YEAR_START + timedelta(seconds=draw(st.integers(0, span)))
    return min(max(at, YEAR_START), NOW)


@st.composite
def questions(draw: st.DrawFn, zones: tuple[str, str]) -> tuple[str, dict[str, str]]:
    path, fixed, hours, longest = draw(st.sampled_from(SERIES))
    query = dict(fixed)
    unit = draw(st.sampled_from(["day", "hour"])) if hours else "day"
    if hours:
        query["unit"] = unit
    end = draw(st.one_of(st.none(), instants(zones)))
    if end is not None:
        query["ending_at"] = end.strftime("%Y-%m-%dT%H:%M:%SZ")
    if longest == 14 and end is not None and draw(st.booleans()):
        query["starting_at"] = (end - timedelta(days=draw(st.integers(0, 13)))).strftime("%Y-%m-%dT%H:%M:%SZ")
    else:
        query["length"] = str(draw(st.integers(1, longest)))
    return path, query


async def check(pairs: list[str], braze_zone: str, asked: list[tuple[str, dict[str, str]]], redis: Any) -> None:
    clock = ManualClock(NOW.timestamp())
    standin = StandinServer(StandinState(clock=clock, zone=braze_zone))
    await standin.start()
    try:
        async with AsyncExitStack() as stack:
            extra: dict[str, Any] = {}
            if redis is not None:
                extra = {"redis_url": redis.url, "redis_key_prefix": f"zones-{next(_prefixes)}:"}
            proxies: list[InProcessProxy] = [
                await stack.enter_async_context(
                    proxy_in_process(standin.url, clock, windows=True, reporting_timezone=zone, **extra)
                )
                for zone in pairs
            ]
            for i, (path, query) in enumerate(asked * 2):  # each asked again: a repeat is served what was kept
                encoded = urlencode(query)
                reply = await proxies[i % len(proxies)].get(encoded, key=KEY, path=path)
                status, expected = await exact(standin, encoded, path)
                assert (reply.status, reply.json()) == (status, expected), (pairs, braze_zone, path, encoded)
    finally:
        await standin.stop()


zone_pairs = st.tuples(st.sampled_from(ZONES), st.sampled_from(ZONES))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), zones=zone_pairs)
def test_any_zone_pair_any_year_any_order_is_the_stand_ins_answer(data: st.DataObject, zones: tuple[str, str]) -> None:
    ours, braze = zones
    asked = data.draw(st.lists(questions(zones), min_size=1, max_size=12))
    asyncio.run(check([ours], braze, asked, None))


def test_two_replicas_with_different_zones_on_one_redis(redis_server: RedisServer) -> None:
    """A rolling restart that changes the zone: replicas on the old and the new zone share one Redis (each
    example under a key prefix of its own)."""

    @settings(max_examples=max(10, EXAMPLES // 2), deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data(), zones=st.tuples(st.sampled_from(ZONES), st.sampled_from(ZONES), st.sampled_from(ZONES)))
    def run(data: st.DataObject, zones: tuple[str, str, str]) -> None:
        first, second, braze = zones
        asked = data.draw(st.lists(questions((first, braze)), min_size=1, max_size=12))
        asyncio.run(check([first, second], braze, asked, redis_server))

    run()
