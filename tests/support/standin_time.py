"""The stand-in's clock arithmetic: ISO-8601 as Braze accepts it, and buckets cut in an IANA zone.

Written apart from proxy/timeline.py on purpose (a second opinion), to the same rules: days are local dates,
hours start where the local clock reads HH:00 or where the zone's offset changes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
import zoneinfo

_ISO = re.compile(
    r"(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})"
    r"(?:[Tt ](?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d+))?)?"
    r"(?P<tz>[Zz]|(?P<sign>[+-])(?P<oh>\d{1,2})(?::?(?P<om>\d{2}))?)?)?",
    re.ASCII,  # \d must not match other scripts' digits
)


def parse_iso(text: str) -> dt.datetime | None:
    """ISO-8601 as Braze accepts it (incl. `-5:00` and `+0530`); naive means UTC. None if invalid."""
    m = _ISO.fullmatch(text)
    if m is None:
        return None
    tz = dt.UTC
    if m["sign"]:
        hours, minutes = int(m["oh"]), int(m["om"] or 0)
        if hours > 23 or minutes > 59:
            return None
        sign = -1 if m["sign"] == "-" else 1
        tz = dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
    fraction = (m["f"] or "")[:6].ljust(6, "0")
    year, month, day, hour, minute, second = (int(m[name] or 0) for name in ("y", "mo", "d", "h", "mi", "s"))
    try:
        return dt.datetime(year, month, day, hour, minute, second, int(fraction), tzinfo=tz)
    except ValueError:
        return None


@dataclasses.dataclass(frozen=True)
class Cut:
    """How buckets are cut and which are still open: the zone, the revision of open buckets, the time now."""

    zone: str = "UTC"
    revision: int = 0
    now: float = math.inf  # epoch seconds; every bucket closed by default

    @property
    def tz(self) -> dt.tzinfo:
        return dt.UTC if self.zone == "UTC" else zoneinfo.ZoneInfo(self.zone)


def buckets(ending_at: dt.datetime, unit: str, length: int, cut: Cut) -> list[tuple[str, bool]]:
    """(label, open) of the `length` buckets of `unit` in `cut.zone` ending with the one holding `ending_at`.

    Day labels are the local date; hour labels the local hour with the zone's offset (`Z` in UTC).
    Raises OverflowError near year 1.
    """
    tz = cut.tz
    if unit == "day":
        last = ending_at.astimezone(tz).date()
        out = []
        for i in reversed(range(length)):
            day = last - dt.timedelta(days=i)
            closes = _local_midnight(day + dt.timedelta(days=1), tz)
            out.append((day.isoformat(), closes.timestamp() > cut.now))
        return out
    starts = [_hour_start(ending_at, tz)]
    for _ in range(length - 1):
        starts.append(_hour_start(starts[-1] - dt.timedelta(microseconds=1), tz))
    out = []
    for i, start in enumerate(reversed(starts)):
        closes = starts[length - 2 - i] if i < length - 1 else _hour_start(start + dt.timedelta(hours=1), tz)
        local = start.astimezone(tz)
        label = local.strftime("%Y-%m-%dT%H:%M:00Z") if cut.zone == "UTC" else local.isoformat(timespec="seconds")
        out.append((label, closes.timestamp() > cut.now))
    return out


def _local_midnight(day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    wall = dt.datetime(day.year, day.month, day.day, tzinfo=tz)
    return wall.astimezone(dt.UTC).astimezone(tz)  # a skipped midnight lands on a real instant


def _hour_start(instant: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """The UTC instant where the local hour holding `instant` began: the last HH:00 of the local clock, or the
    offset change after it (a half-hour DST change, as on Lord Howe Island, makes a short hour)."""
    local = instant.astimezone(tz)
    back = dt.timedelta(minutes=local.minute, seconds=local.second, microseconds=local.microsecond)
    start = instant.astimezone(dt.UTC) - back  # in UTC: local arithmetic would forget which of two 01:00s
    low, high = start, instant.astimezone(dt.UTC)
    if start.astimezone(tz).utcoffset() == local.utcoffset():
        return start
    for _ in range(40):  # bisect to the minute of the change; offsets change on whole minutes
        if high - low <= dt.timedelta(minutes=1):
            break
        middle = low + (high - low) / 2
        if middle.astimezone(tz).utcoffset() == local.utcoffset():
            high = middle
        else:
            low = middle
    change = high.replace(second=0, microsecond=0)
    return change if change > low and change.astimezone(tz).utcoffset() == local.utcoffset() else high
