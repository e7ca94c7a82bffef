"""A series as buckets: windows, points kept byte for byte, labels checked as buckets, assembly, and both stores
(the Redis one on a real redis-server)."""

from __future__ import annotations

import json
import tracemalloc
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from proxy.core import series, timeline
from proxy.core.endpoints import SESSIONS
from proxy.core.query import Question
from proxy.core.series import Point
from proxy.windows.store import MemorySeriesStore

UTC_ZONE = ZoneInfo("UTC")
NEW_YORK = ZoneInfo("America/New_York")
DAY = datetime(2026, 11, 20, tzinfo=UTC)


def question(length: int, ending_at: datetime, unit: str = "day", **filters: str) -> Question:
    return Question(SESSIONS, length, unit, ending_at, tuple(filters.items()))  # type: ignore[arg-type]


def body(points: list[str]) -> bytes:
    return ('{"message": "success", "data": [' + ", ".join(points) + "]}").encode()


def test_a_window_is_its_buckets_oldest_first() -> None:
    starts = series.window(question(3, DAY), UTC_ZONE)
    assert list(starts) == [DAY - timedelta(days=2), DAY - timedelta(days=1), DAY]
    hours = series.window(question(2, DAY, "hour"), UTC_ZONE)
    assert list(hours) == [DAY - timedelta(hours=1), DAY]


def test_a_window_across_a_dst_change_has_a_23_hour_day() -> None:
    end = datetime(2026, 3, 9, 4, tzinfo=UTC)  # 2026-03-09 00:00 in New York (EDT)
    starts = series.window(question(2, end), NEW_YORK)
    assert end - starts[0] == timedelta(hours=23)


def test_points_keep_braze_bytes_exactly() -> None:
    raw = ['{"time":"2026-11-19","sessions":1.10}', '{ "time" : "2026-11-20", "sessions" : 1e3, "x": "é\\u00e9" }']
    got = series.points_of(body(raw))
    assert got is not None
    assert [label for label, _ in got] == ["2026-11-19", "2026-11-20"]
    assert [r.decode() for _, r in got] == raw


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b'{"message": "success"}',
        b'{"message": "success", "data": {}}',
        b'{"message": "success", "data": [1]}',
        b'{"message": "queued", "data": []}',
        b'{"message": "success", "data": [], "errors": ["x"]}',  # more than a series: never assembled
    ],
)
def test_anything_but_a_plain_series_has_no_points(payload: bytes) -> None:
    assert series.points_of(payload) is None


def test_day_labels_are_local_dates() -> None:
    ny_day = datetime(2026, 11, 20, 5, tzinfo=UTC)  # 2026-11-20 00:00 in New York
    assert series.label_matches("2026-11-20", ny_day, "day", NEW_YORK)
    assert not series.label_matches(20261120, ny_day, "day", NEW_YORK)
    evening = datetime(2026, 11, 20, 1, tzinfo=UTC)  # still the 19th in New York
    assert series.label_matches("2026-11-20", evening, "day", UTC_ZONE)
    assert not series.label_matches("2026-11-20", evening, "day", NEW_YORK)


@pytest.mark.parametrize(
    ("label", "ok"),
    [
        ("2026-11-20T05:00:00Z", True),
        ("2026-11-20T05:00:00+00:00", True),
        ("2026-11-20T00:00:00-05:00", True),
        ("2026-11-20T00:00:00", True),  # no offset: read in the reporting zone
        ("2026-11-20T05:00:00.000Z", True),
        ("2026-11-20T06:00:00Z", False),
        ("2026-11-20 05", False),
        ("", False),
    ],
)
def test_hour_labels_are_compared_as_instants(label: str, ok: bool) -> None:
    assert series.label_matches(label, datetime(2026, 11, 20, 5, tzinfo=UTC), "hour", NEW_YORK) is ok


def test_a_mismatch_names_the_first_wrong_bucket_and_short_answers() -> None:
    starts = series.window(question(2, DAY), UTC_ZONE)
    good = [("2026-11-19", b"{}"), ("2026-11-20", b"{}")]
    assert series.mismatch(good, starts, "day", UTC_ZONE) is None
    assert series.mismatch(good[:1], starts, "day", UTC_ZONE) == ("2 points", "1 points")
    shifted = [("2026-11-18", b"{}"), ("2026-11-19", b"{}")]
    assert series.mismatch(shifted, starts, "day", UTC_ZONE) == ("2026-11-19", "2026-11-18")


def test_duplicate_members_at_any_level_and_extra_top_level_members_are_not_a_series() -> None:
    assert series.points_of(b'{"message":"success","data":[{"time":"2026-11-20","sessions":3}]}') is not None
    for body in (
        b'{"message":"success","data":[{"time":"2026-11-19"}],"data":[{"time":"2026-11-20"}]}',
        b'{"message":"success","data":[{"time":"2026-11-19","time":"2026-11-20","sessions":3}]}',
        b'{"message":"success","message":"success","data":[]}',
        b'{"message":"success","data":[],"next":"x"}',
    ):
        assert series.points_of(body) is None, body


def test_points_round_trip_and_junk_reads_as_missing() -> None:
    point = Point(b'{"time":"2026-11-20","sessions":3}', 10.0, 20.5, 30.25)
    assert series.decode_point(series.encode_point(point)) == point
    for junk in (None, b"", b"P1|x|y|z|{}", b"E1|200|...", b"P1|1|2|3|not an object"):
        assert series.decode_point(junk) is None


def test_a_window_is_as_fresh_as_its_least_fresh_point() -> None:
    a = Point(b'{"a":1}', 5.0, 100.0, 500.0)
    b = Point(b'{"b":2}', 7.0, 50.0, 900.0)
    entry = series.assemble([a, b])
    assert entry is not None
    assert json.loads(entry.body) == {"message": "success", "data": [{"a": 1}, {"b": 2}]}
    assert (entry.stored_at, entry.fresh_until, entry.stale_until) == (5.0, 50.0, 500.0)
    assert series.assemble([a, None]) is None
    assert series.assemble([]) is None


def test_series_keys_are_one_hash_tag_and_never_hold_a_credential() -> None:
    q = question(7, DAY, app_id="a:b/c", segment_id="s")
    key = series.series_key(q, "scope-hash", "Europe/London")
    assert key.startswith("{") and key.endswith("}") and key.count("{") == 1
    assert key == "{s2:scope-hash:Europe/London:sessions:day:app_id=a%3Ab%2Fc:segment_id=s}"
    # Length and ending are not part of the series: every window of it shares the key.
    other = question(30, DAY - timedelta(days=9), app_id="a:b/c", segment_id="s")
    assert series.series_key(other, "scope-hash", "Europe/London") == key
    # Buckets cut in another zone are another series.
    assert series.series_key(q, "scope-hash", "UTC") != key


@given(
    wide=st.integers(min_value=1, max_value=100),
    data=st.data(),
)
def test_any_window_inside_a_fetch_assembles_to_its_own_slice(wide: int, data: st.DataObject) -> None:
    end = DAY
    fetched = question(wide, end)
    starts = series.window(fetched, UTC_ZONE)
    raws = [f'{{"time":"{s.date().isoformat()}","sessions":{i}}}'.encode() for i, s in enumerate(starts)]
    points = {series.field(s): Point(r, 0.0, 10.0, 20.0) for s, r in zip(starts, raws, strict=True)}
    length = data.draw(st.integers(min_value=1, max_value=wide))
    back = data.draw(st.integers(min_value=0, max_value=wide - length))
    asked = question(length, end - timedelta(days=back))
    entry = series.assemble([points.get(series.field(s)) for s in series.window(asked, UTC_ZONE)])
    assert entry is not None
    expected = raws[wide - back - length : wide - back]
    assert json.loads(entry.body)["data"] == [json.loads(r) for r in expected]


async def test_the_memory_store_keeps_the_newest_buckets_and_drops_old_series() -> None:
    store = MemorySeriesStore(max_bytes=200_000)
    many = {str(i): Point(b'{"v":1}', 0.0, 1.0, 2.0) for i in range(series.MAX_BUCKETS + 5)}
    await store.write("{a}", many, 0.0)
    read = await store.read("{a}", ["0", "4", "5", str(series.MAX_BUCKETS + 4)])
    assert read[:2] == [None, None] and read[2] is not None and read[3] is not None
    for n in range(20):  # about 60 kB each: the oldest series go
        await store.write(f"{{s{n}}}", dict(list(many.items())[:1000]), 0.0)
    assert store.bytes <= 200_000
    assert store.evictions > 0
    assert (await store.read("{a}", ["5"])) == [None]


async def test_the_memory_stores_cap_bounds_the_memory_python_really_holds() -> None:
    """The cap counts each bucket as Python holds it (its bytes, its field and its dict slot), not just its bytes:
    400 series of 100 day buckets, under a 2 MB cap, hold at most 2 MB plus a little (measured with tracemalloc)."""
    cap = 2_000_000
    start = datetime(2024, 1, 1, tzinfo=UTC)
    raws = [
        b'{"time":"%s","sessions":%d}' % ((start + timedelta(days=i)).date().isoformat().encode(), i * 37)
        for i in range(100)
    ]
    tracemalloc.start()
    try:
        store = MemorySeriesStore(max_bytes=cap)
        for n in range(400):
            points = {series.field(start + timedelta(days=i)): Point(raw, 0.0, 1.0, 2.0) for i, raw in enumerate(raws)}
            await store.write(f"{{s1:scope:sessions:day:app_id=load-{n}}}", points, 0.0)
            del points
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert store.evictions > 0 and store.bytes <= cap
    assert held <= 1.15 * cap, f"{held:,} bytes held under a {cap:,}-byte cap"


@given(
    st.lists(st.floats(min_value=1_700_000_000, max_value=1_800_000_000), min_size=1, max_size=30),
    st.sampled_from(["UTC", "Europe/London", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]),
    st.sampled_from(["day", "hour"]),
)
@example([1_799_996_400.5, 1_799_999_999.9999998], "UTC", "hour")  # the second rounds to the next hour's start
def test_the_remembered_open_bucket_is_the_one_computed(nows: list[float], zone_name: str, unit: str) -> None:
    """current_bucket remembers the open bucket with its bounds: in any order of instants, across offset
    changes, it says what bucket_start says."""
    zone = ZoneInfo(zone_name)
    for now in [*nows, *(n + 1 for n in nows), *sorted(nows)]:
        expected = timeline.bucket_start(datetime.fromtimestamp(now, UTC), unit, zone)  # type: ignore[arg-type]
        assert series.current_bucket(now, unit, zone) == expected  # type: ignore[arg-type]
