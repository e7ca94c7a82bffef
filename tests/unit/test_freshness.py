"""Pure: TTLs by unit and by where the series' last bucket lies relative to now."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from proxy.core.endpoints import CAMPAIGNS, CANVAS, CANVAS_SUMMARY, KPI_DAU, SENDS, SESSIONS, Endpoint
from proxy.core.freshness import FreshnessPolicy, decide
from proxy.core.query import Question

POLICY = FreshnessPolicy(
    zone=UTC,
    ttl_open_hour=60,
    ttl_open_day=300,
    settle_window_hour=3 * 3600,
    settle_window_day=2 * 86400,
    ttl_recent_hour=600,
    ttl_recent_day=1800,
    ttl_settled=86400,
    stale_seconds=7200,
    revalidate_seconds=0,
)
NOW = datetime(2026, 11, 29, 12, 30, tzinfo=UTC)


def question(unit: str, ending_at: datetime) -> Question:
    return Question(SESSIONS, 7, unit, ending_at, ())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("unit", "ending_at", "phase", "ttl"),
    [
        ("day", datetime(2026, 11, 29, tzinfo=UTC), "open", 300),  # today: still counting
        ("day", datetime(2026, 11, 28, tzinfo=UTC), "recent", 1800),  # closed 12.5 h ago
        ("day", datetime(2026, 11, 27, tzinfo=UTC), "recent", 1800),  # closed 36.5 h ago (< 48 h)
        ("day", datetime(2026, 11, 26, tzinfo=UTC), "settled", 86400),  # closed 60.5 h ago
        ("day", datetime(2030, 1, 1, tzinfo=UTC), "open", 300),  # the future is not settled
        ("hour", datetime(2026, 11, 29, 12, tzinfo=UTC), "open", 60),
        ("hour", datetime(2026, 11, 29, 10, tzinfo=UTC), "recent", 600),  # closed 1.5 h ago
        ("hour", datetime(2026, 11, 29, 8, tzinfo=UTC), "settled", 86400),  # closed 3.5 h ago
    ],
)
def test_phases(unit: str, ending_at: datetime, phase: str, ttl: float) -> None:
    fresh = decide(question(unit, ending_at), NOW, POLICY)
    assert (fresh.phase, fresh.ttl, fresh.stale) == (phase, ttl, 7200)


def test_settle_window_boundary_is_exclusive() -> None:
    closed = datetime(2026, 11, 28, tzinfo=UTC)
    at_boundary = closed + timedelta(days=1, seconds=POLICY.settle_window_day)
    assert decide(question("day", closed), at_boundary - timedelta(seconds=1), POLICY).phase == "recent"
    assert decide(question("day", closed), at_boundary, POLICY).phase == "settled"


def test_the_reporting_zone_decides_whether_a_day_is_open() -> None:
    tokyo = replace(POLICY, zone=ZoneInfo("Asia/Tokyo"))
    ending = datetime(2026, 11, 29, 15, tzinfo=UTC)  # Nov 30th 00:00 in Tokyo: that day has just begun
    now = datetime(2026, 11, 29, 16, tzinfo=UTC)
    assert decide(question("day", ending), now, tokyo).phase == "open"
    assert decide(question("day", datetime(2026, 11, 29, 0, tzinfo=UTC)), now, tokyo).phase == "recent"


@pytest.mark.parametrize(
    ("endpoint", "closed_days_ago", "phase"),
    [
        (SESSIONS, 3, "settled"),  # the setting: 2 days
        (KPI_DAU, 3, "settled"),
        (CAMPAIGNS, 3, "recent"),  # Braze restates campaign days for 14 days
        (CAMPAIGNS, 13, "recent"),
        (CAMPAIGNS, 15, "settled"),
        (SENDS, 13, "recent"),
        (CANVAS, 13, "recent"),
        (CANVAS_SUMMARY, 15, "settled"),
    ],
)
def test_an_endpoint_settle_window_replaces_the_setting(endpoint: Endpoint, closed_days_ago: int, phase: str) -> None:
    day = datetime(2026, 11, 29, tzinfo=UTC) - timedelta(days=closed_days_ago)  # the series ends the day before
    fresh = decide(Question(endpoint, 1, "day", day - timedelta(days=1), ()), NOW, POLICY)
    assert fresh.phase == phase
    assert fresh.ttl == {"recent": 1800, "settled": 86400}[phase]
