"""Pure time arithmetic: ISO-8601 parsing (including Braze's own `-5:00`), buckets in the reporting zone.

No I/O and no clock: callers pass `now`.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Literal

Unit = Literal["day", "hour"]

# Extended ISO-8601 as clients write it: date, optional time (minutes, seconds, fraction), optional offset.
# The offset's hour may have one digit (`-5:00`, the Braze docs' own example) and its colon is optional.
# A space before the offset is a '+' that the client left unencoded (form decoding turns '+' into ' ').
_ISO = re.compile(
    r"(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})"
    r"(?:[Tt ](?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?)?"
    r"(?P<tz>[Zz]|[+\- ]\d{1,2}(?::?\d{2})?)?)?",
    re.ASCII,  # \d must not match other scripts' digits
)
_OFFSET = re.compile(r"(?P<sign>[+\- ])(?P<h>\d{1,2}):?(?P<m>\d{2})?", re.ASCII)
_HOUR = timedelta(hours=1)
_MINUTE = timedelta(minutes=1)
_TICK = timedelta(microseconds=1)
MIN_YEAR, MAX_YEAR = 1970, 9998


class TimeFormatError(ValueError):
    """The text is not an ISO-8601 date or date-time we accept."""


def parse_instant(text: str, local: tzinfo) -> datetime:
    """Parse an ISO-8601 date or date-time into an aware datetime.

    A value without an offset (including a bare date) is read in `local`, the reporting time zone.
    Raises TimeFormatError.
    """
    match = _ISO.fullmatch(text)
    if match is None:
        raise TimeFormatError(f"{text!r} is not an ISO-8601 date-time")
    g = match.groupdict()
    fraction = (g["f"] or "").ljust(6, "0")[:6]
    try:
        naive = datetime(
            int(g["y"]), int(g["mo"]), int(g["d"]),
            int(g["h"] or 0), int(g["mi"] or 0), int(g["s"] or 0), int(fraction or 0),
        )  # fmt: skip
    except ValueError as exc:
        raise TimeFormatError(f"{text!r} is not a valid date-time: {exc}") from None
    zone = _parse_offset(g["tz"], text) if g["tz"] else None
    try:
        aware = _localize(naive, local) if zone is None else naive.replace(tzinfo=zone)
        year = aware.astimezone(UTC).year
    except OverflowError:
        year = 0
    if not MIN_YEAR <= year <= MAX_YEAR:
        # The instant, not its local spelling: keeps every later step (zones, bucket ends, epoch keys) inside
        # what datetime can represent, and never sends Braze a year before 1970.
        raise TimeFormatError(f"{text!r} is out of range (years {MIN_YEAR} to {MAX_YEAR})")
    return aware


def _parse_offset(text: str, original: str) -> tzinfo:
    if text in ("Z", "z"):
        return UTC
    match = _OFFSET.fullmatch(text)
    if match is None:
        raise TimeFormatError(f"{original!r} has an invalid UTC offset")
    hours, minutes = int(match["h"]), int(match["m"] or 0)
    if hours > 18 or minutes > 59:
        raise TimeFormatError(f"{original!r} has a UTC offset out of range")
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if match["sign"] == "-" else delta)


def _localize(naive: datetime, zone: tzinfo) -> datetime:
    # Round-trip through UTC so a wall time skipped by a DST jump lands on a real instant.
    return naive.replace(tzinfo=zone).astimezone(UTC).astimezone(zone)


def bucket_start(instant: datetime, unit: Unit, zone: tzinfo) -> datetime:
    """The start (in UTC) of the day or hour, in `zone`, that contains `instant`.

    Hours start where the local clock reads HH:00 (so half-hour zones such as Asia/Kolkata keep their own
    marks) and where the zone's offset changes: a DST shift of half an hour (Australia/Lord_Howe) makes a
    short hour, never one that misses instants it should hold.
    """
    if unit == "day":
        local = instant.astimezone(zone)
        return _localize(datetime(local.year, local.month, local.day), zone).astimezone(UTC)
    instant = instant.astimezone(UTC)
    offset = _offset(instant, zone)
    wall = (instant + offset).replace(minute=0, second=0, microsecond=0)  # the hour mark at this offset
    start = wall - offset
    if _offset(start, zone) != offset:  # the offset changed after that mark: the hour starts with the change
        start = _offset_change(start, instant, zone)
    return start


def bucket_end(start: datetime, unit: Unit, zone: tzinfo) -> datetime:
    """The end (exclusive, in UTC) of the bucket that starts at `start`: where the next one starts."""
    if unit == "day":
        day: date = start.astimezone(zone).date() + timedelta(days=1)
        return _localize(datetime(day.year, day.month, day.day), zone).astimezone(UTC)
    start = start.astimezone(UTC)
    offset = _offset(start, zone)
    mark = (start + offset).replace(minute=0, second=0, microsecond=0) + _HOUR - offset
    if _offset(mark, zone) != offset:  # the offset changes before the next mark: the hour ends with it
        return _offset_change(start, mark, zone)
    return mark


def day_start(day: date, zone: tzinfo) -> datetime:
    """The start (in UTC) of the local date `day` in `zone`: its first instant, where midnight is skipped too."""
    return _localize(datetime(day.year, day.month, day.day), zone).astimezone(UTC)


def previous_bucket(start: datetime, unit: Unit, zone: tzinfo) -> datetime:
    """The start of the bucket just before the one that starts at `start`."""
    return bucket_start(start - _TICK, unit, zone)


def _offset(instant: datetime, zone: tzinfo) -> timedelta:
    return instant.astimezone(zone).utcoffset() or timedelta(0)


def _offset_change(before: datetime, after: datetime, zone: tzinfo) -> datetime:
    """The first instant in (before, after] whose offset is `after`'s (one change at most in between: zones
    change their offset at most once an hour). Offsets change on whole minutes."""
    target = _offset(after, zone)
    low, high = before, after  # offset(low) != target == offset(high)
    while high - low > _MINUTE:
        middle = low + (high - low) / 2
        if _offset(middle, zone) == target:
            high = middle
        else:
            low = middle
    change = high.replace(second=0, microsecond=0)
    return change if change > low and _offset(change, zone) == target else high


def format_instant(instant: datetime, zone: tzinfo) -> str:
    """The canonical spelling sent upstream: the instant in `zone`, with its offset."""
    spec = "microseconds" if instant.microsecond else "seconds"
    return instant.astimezone(zone).isoformat(timespec=spec)
