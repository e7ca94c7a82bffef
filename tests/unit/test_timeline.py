"""Pure time arithmetic: ISO-8601 spellings, buckets in the reporting zone, DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from proxy.core.timeline import (
    TimeFormatError,
    bucket_end,
    bucket_start,
    format_instant,
    parse_instant,
    previous_bucket,
)

NEW_YORK = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2018-06-28T23:59:59-5:00", datetime(2018, 6, 29, 4, 59, 59, tzinfo=UTC)),  # the Braze docs' own form
        ("2018-06-28T23:59:59-05:00", datetime(2018, 6, 29, 4, 59, 59, tzinfo=UTC)),
        ("2018-06-28T23:59:59-0500", datetime(2018, 6, 29, 4, 59, 59, tzinfo=UTC)),
        ("2018-06-28T23:59:59+0530", datetime(2018, 6, 28, 18, 29, 59, tzinfo=UTC)),
        ("2018-06-28T23:59:59+05", datetime(2018, 6, 28, 18, 59, 59, tzinfo=UTC)),
        ("2018-06-28T23:59:59 05:30", datetime(2018, 6, 28, 18, 29, 59, tzinfo=UTC)),  # '+' decoded to ' '
        ("2018-06-28T23:59:59Z", datetime(2018, 6, 28, 23, 59, 59, tzinfo=UTC)),
        ("2018-06-28t23:59:59z", datetime(2018, 6, 28, 23, 59, 59, tzinfo=UTC)),
        ("2018-06-28T23:59:59.123456789Z", datetime(2018, 6, 28, 23, 59, 59, 123456, tzinfo=UTC)),
        ("2018-06-28T23:59:59,5Z", datetime(2018, 6, 28, 23, 59, 59, 500000, tzinfo=UTC)),
        ("2018-06-28T23:59Z", datetime(2018, 6, 28, 23, 59, tzinfo=UTC)),
        ("2018-06-28 23:59:59Z", datetime(2018, 6, 28, 23, 59, 59, tzinfo=UTC)),
        ("2018-06-28", datetime(2018, 6, 28, tzinfo=UTC)),  # a bare date: midnight in the reporting zone
        ("2018-06-28T12:00:00", datetime(2018, 6, 28, 12, tzinfo=UTC)),
    ],
)
def test_accepted_spellings(text: str, expected: datetime) -> None:
    assert parse_instant(text, UTC) == expected


def test_naive_values_are_read_in_the_reporting_zone() -> None:
    assert parse_instant("2018-06-28", NEW_YORK) == datetime(2018, 6, 28, 4, tzinfo=UTC)
    assert parse_instant("2018-01-15T10:00:00", NEW_YORK) == datetime(2018, 1, 15, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "2018-13-01",
        "2018-02-30",
        "2018-06-28T24:00:00Z",
        "2018-06-28T23:60:00Z",
        "2018-06-28T23:59:59+19:00",
        "2018-06-28T23:59:59+05:99",
        "2018-06-28T23:59:59Zjunk",
        "18-06-28",
        "2018-06-28T",
        "٢٠١٨-٠٦-٢٨",  # digits of another script
        "1530230399",
        "0001-01-01T00:00:00+05:00",  # outside what zones and bucket ends can represent
        "9999-12-31",
        "1969-12-31T23:59:59Z",
    ],
)
def test_rejected_spellings(text: str) -> None:
    with pytest.raises(TimeFormatError):
        parse_instant(text, UTC)


def test_day_buckets_follow_the_reporting_zone() -> None:
    instant = datetime(2018, 6, 29, 3, tzinfo=UTC)  # still June 28th in New York
    assert bucket_start(instant, "day", UTC) == datetime(2018, 6, 29, tzinfo=UTC)
    assert bucket_start(instant, "day", NEW_YORK) == datetime(2018, 6, 28, 4, tzinfo=UTC)


def test_hour_buckets_in_a_half_hour_zone() -> None:
    instant = datetime(2018, 6, 28, 10, 10, tzinfo=UTC)  # 15:40 in Kolkata
    assert bucket_start(instant, "hour", KOLKATA) == datetime(2018, 6, 28, 9, 30, tzinfo=UTC)
    assert bucket_start(instant, "hour", UTC) == datetime(2018, 6, 28, 10, tzinfo=UTC)


def test_dst_days_are_23_and_25_hours_long() -> None:
    spring = bucket_start(datetime(2024, 3, 10, 12, tzinfo=UTC), "day", NEW_YORK)
    fall = bucket_start(datetime(2024, 11, 3, 12, tzinfo=UTC), "day", NEW_YORK)
    assert bucket_end(spring, "day", NEW_YORK) - spring == timedelta(hours=23)
    assert bucket_end(fall, "day", NEW_YORK) - fall == timedelta(hours=25)


def test_format_instant_is_canonical_in_the_zone() -> None:
    instant = datetime(2018, 6, 29, 4, tzinfo=UTC)
    assert format_instant(instant, UTC) == "2018-06-29T04:00:00+00:00"
    assert format_instant(instant, NEW_YORK) == "2018-06-29T00:00:00-04:00"
    assert format_instant(instant.replace(microsecond=5), UTC) == "2018-06-29T04:00:00.000005+00:00"


instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)).map(
    lambda d: d.replace(microsecond=0)
)
zones = st.sampled_from([UTC, NEW_YORK, KOLKATA, ZoneInfo("Australia/Lord_Howe"), ZoneInfo("Europe/Berlin")])
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@given(instants, offsets)
def test_any_offset_spelling_is_the_same_instant(instant: datetime, offset: timezone) -> None:
    text = instant.astimezone(offset).isoformat()
    assert parse_instant(text, UTC) == instant


@given(instants, zones, st.sampled_from(["day", "hour"]))
def test_bucket_contains_its_instant(instant: datetime, zone: ZoneInfo, unit: str) -> None:
    start = bucket_start(instant, unit, zone)  # type: ignore[arg-type]
    end = bucket_end(start, unit, zone)  # type: ignore[arg-type]
    assert start <= instant < end
    assert bucket_start(start, unit, zone) == start  # type: ignore[arg-type]
    assert bucket_start(end, unit, zone) == end  # type: ignore[arg-type]


ZONES = [ZoneInfo(name) for name in (
    "UTC", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe", "Pacific/Chatham",
    "America/St_Johns", "Europe/London", "America/Santiago", "Asia/Tehran",
)]  # fmt: skip
instants = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2037, 12, 31), timezones=st.just(UTC))


@given(instants, st.sampled_from(ZONES), st.sampled_from(["day", "hour"]))
@example(datetime(2000, 3, 18, 14, 0, tzinfo=UTC), ZoneInfo("Pacific/Chatham"), "hour")  # a 15-minute hour
def test_every_instant_lies_in_its_bucket_and_buckets_tile_the_timeline(
    instant: datetime, zone: ZoneInfo, unit: str
) -> None:
    start = bucket_start(instant, unit, zone)  # type: ignore[arg-type]
    end = bucket_end(start, unit, zone)  # type: ignore[arg-type]
    assert start <= instant < end
    assert bucket_start(start, unit, zone) == start  # type: ignore[arg-type]
    assert bucket_start(end, unit, zone) == end, "the next bucket starts where this one ends"  # type: ignore[arg-type]
    assert previous_bucket(end, unit, zone) == start  # type: ignore[arg-type]
    # At least 15 minutes: Pacific/Chatham (+12:45) goes back an hour at 03:45 local, so the hour from the change
    # to the next 03:00 mark is 15 minutes long (hypothesis found it: the bound was 30 minutes).
    assert timedelta(minutes=15) <= end - start <= (timedelta(hours=25) if unit == "day" else timedelta(hours=1.5))


def test_a_half_hour_dst_shift_makes_a_short_hour_that_holds_its_instants() -> None:
    """Australia/Lord_Howe, 2024-04-07 02:00 local: clocks go back half an hour (at 15:00Z)."""
    lord_howe = ZoneInfo("Australia/Lord_Howe")
    for minutes in (0, 10, 29):
        instant = datetime(2024, 4, 6, 15, minutes, tzinfo=UTC)
        start = bucket_start(instant, "hour", lord_howe)
        assert start == datetime(2024, 4, 6, 15, tzinfo=UTC)
        assert bucket_end(start, "hour", lord_howe) == datetime(2024, 4, 6, 15, 30, tzinfo=UTC)
    assert bucket_end(datetime(2024, 4, 6, 14, tzinfo=UTC), "hour", lord_howe) == datetime(2024, 4, 6, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    "text", ["1970-01-01T00:00:00+05:00", "9998-12-31T23:59:59-12:00", "0001-01-01T00:00+05:00", "9999-12-31"]
)
def test_the_range_is_checked_on_the_instant_not_its_local_spelling(text: str) -> None:
    with pytest.raises(TimeFormatError, match="out of range"):
        parse_instant(text, UTC)
    assert parse_instant("1970-01-01T05:00:00+05:00", UTC) == datetime(1970, 1, 1, tzinfo=UTC)
