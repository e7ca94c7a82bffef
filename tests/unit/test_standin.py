"""The stand-in's pure parts: time parsing, its --zone flag, and buckets cut as the proxy cuts them. Served in process:
tests/inprocess/test_standin.py; as a process: tests/processes/test_standin.py."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core import timeline
from tests.support import braze_standin
from tests.support.braze_standin import parse_iso


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2018-06-28T23:59:59-5:00", "2018-06-29T04:59:59+00:00"),
        ("2018-06-28T23:59:59+05:30", "2018-06-28T18:29:59+00:00"),
        ("2018-06-28T23:59:59+0530", "2018-06-28T18:29:59+00:00"),
        ("2018-06-28T23:59:59.123456789Z", "2018-06-28T23:59:59.123456+00:00"),
        ("2018-06-28T10:15", "2018-06-28T10:15:00+00:00"),
        ("2018-06-28", "2018-06-28T00:00:00+00:00"),
    ],
)
def test_parse_iso_accepts_the_forms_braze_documents(text: str, utc: str) -> None:
    parsed = parse_iso(text)
    assert parsed is not None
    assert parsed.astimezone(dt.UTC).isoformat() == utc


def test_zone_flag_of_the_process() -> None:
    with pytest.raises(SystemExit) as refused:
        braze_standin.main(["--zone", "Mars/Olympus"])
    assert refused.value.code == 2
    state = braze_standin.StandinState(zone="Asia/Kolkata")
    assert state.settings()["zone"] == "Asia/Kolkata"
    state.configure({"zone": "UTC"}, 0.0)
    state.reset(0.0)
    assert state.zone == "Asia/Kolkata"  # a reset goes back to the zone the process was started with


# --- agreement with the proxy's bucket arithmetic, every endpoint's rules ---------------------------------

ZONES = ["UTC", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Chatham", "Europe/London"]


@given(
    instant=st.datetimes(
        min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2040, 1, 1), timezones=st.just(dt.UTC)
    ),
    zone=st.sampled_from(ZONES),
    unit=st.sampled_from(["day", "hour"]),
    length=st.integers(1, 30),
)
def test_standin_buckets_are_the_proxys_buckets(instant: dt.datetime, zone: str, unit: str, length: int) -> None:
    """Same zone, same buckets: what windows assembly expects of Braze (proxy/timeline.py is the other opinion)."""
    tz = zoneinfo.ZoneInfo(zone)
    labels = [label for label, _ in braze_standin.buckets(instant, unit, length, braze_standin.Cut(zone))]
    start = timeline.bucket_start(instant, unit, tz)  # type: ignore[arg-type]
    starts = [start]
    for _ in range(length - 1):
        starts.append(timeline.previous_bucket(starts[-1], unit, tz))  # type: ignore[arg-type]
    starts.reverse()
    if unit == "day":
        assert labels == [s.astimezone(tz).date().isoformat() for s in starts]
    else:
        assert [dt.datetime.fromisoformat(label.replace("Z", "+00:00")) for label in labels] == starts
