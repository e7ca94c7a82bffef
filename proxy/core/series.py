"""Pure: a flat data series as buckets. Which buckets a window holds, how each bucket's point is kept (Braze's
exact bytes plus its own freshness), whether Braze's labels are the buckets we expected, and a window's answer
assembled from its points. No I/O, `now` passed in.

A series is everything one credential scope can ask one endpoint with one unit and one set of filters; a
window (a Question) is `length` buckets of it ending at `ending_at`. Braze charges one call whatever the length,
so one wide call can fill many windows: this module says when the points it holds answer a window exactly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from urllib.parse import quote

from proxy.core.entry import Entry
from proxy.core.freshness import FreshnessPolicy, decide
from proxy.core.query import Question
from proxy.core.timeline import Unit, bucket_end, bucket_start, previous_bucket

SERIES_VERSION = "s2"
MAX_BUCKETS = 1000  # per series: the buckets fetched longest ago are dropped first
_MAGIC = b"P1|"
_DECODER = json.JSONDecoder()
CONTENT_TYPE = "application/json"


def series_key(question: Question, scope: str, zone: str) -> str:
    """The store key of `question`'s series as cut in `zone` (replicas with another reporting zone keep their own
    buckets); the whole key is a hash tag (one Cluster slot per series)."""
    key = f"{SERIES_VERSION}:{scope}:{zone}:{question.endpoint.name}:{question.unit}"
    for name, value in question.filters:
        key += f":{name}={quote(value, safe='')}"
    return "{" + key + "}"


def window(question: Question, zone: tzinfo) -> tuple[datetime, ...]:
    """The starts (UTC) of the window's buckets, oldest first."""
    return _window(question.ending_at, question.length, question.unit, zone)


@lru_cache(maxsize=256)  # pure, and the same windows are asked again and again: kept, bounded (~6 KB each)
def _window(ending_at: datetime, length: int, unit: Unit, zone: tzinfo) -> tuple[datetime, ...]:
    starts = [ending_at]
    for _ in range(length - 1):
        starts.append(previous_bucket(starts[-1], unit, zone))
    starts.reverse()
    return tuple(starts)


_OPEN: dict[tuple[Unit, tzinfo], tuple[datetime, datetime]] = {}  # (unit, zone) -> the open bucket's bounds
MAX_OPEN = 64  # (unit, zone) pairs remembered: a process has one zone and two units


def current_bucket(now: float, unit: Unit, zone: tzinfo) -> datetime:
    """The start of the bucket that holds `now` (the open one: nothing after it is ever fetched or stored).
    Asked for every window answered: the open bucket is remembered with its bounds (any instant inside them
    has the same answer; compared as the datetime `now` makes, rounded to the microsecond as bucket_start sees
    it)."""
    instant = datetime.fromtimestamp(now, UTC)
    held = _OPEN.get((unit, zone))
    if held is not None and held[0] <= instant < held[1]:
        return held[0]
    start = bucket_start(instant, unit, zone)
    if len(_OPEN) >= MAX_OPEN:
        _OPEN.clear()
    _OPEN[(unit, zone)] = (start, bucket_end(start, unit, zone))
    return start


def field(start: datetime) -> str:
    """A bucket's field in its series: the epoch second it starts at."""
    return str(int(start.timestamp()))


@lru_cache(maxsize=256)  # ~7 KB a window
def fields(starts: tuple[datetime, ...]) -> tuple[str, ...]:
    """The fields of a window's buckets (a window's starts are asked again and again: kept, bounded)."""
    return tuple(field(start) for start in starts)


@dataclass(frozen=True, slots=True)
class Point:
    """One bucket's point as Braze sent it, and how long it stays fresh (by the bucket's age when fetched)."""

    raw: bytes  # the point's JSON object, byte for byte
    fetched_at: float
    fresh_until: float
    stale_until: float


def encode_point(point: Point) -> bytes:
    return _MAGIC + f"{point.fetched_at:.3f}|{point.fresh_until:.3f}|{point.stale_until:.3f}|".encode() + point.raw


def decode_point(data: bytes | str | None) -> Point | None:
    """The point, or None for anything encode_point did not write (read as a missing bucket)."""
    if isinstance(data, str):  # only from a client built with decode_responses (ours never is)
        data = data.encode()
    if not data or not data.startswith(_MAGIC):
        return None
    parts = data[len(_MAGIC) :].split(b"|", 3)
    if len(parts) != 4 or not parts[3].startswith(b"{"):
        return None
    try:
        return Point(parts[3], float(parts[0]), float(parts[1]), float(parts[2]))
    except ValueError:
        return None


class DuplicateKey(ValueError):
    """An object of Braze's answer names one member twice (which one a reader takes is not defined)."""


def _unique(pairs: list[tuple[str, object]]) -> dict[str, object]:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise DuplicateKey("duplicate member")
    return found


def points_of(body: bytes) -> list[tuple[object, bytes]] | None:
    """Each point of a success answer `{"message": ..., "data": [{...}, ...]}` as (its `time` label, its exact
    bytes); None when the body is not exactly that shape (another top-level member, a member named twice at any
    level: then nothing in it is assembled from)."""
    try:
        text = body.decode()
        payload = json.loads(text, object_pairs_hook=_unique)
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(payload, dict) or set(payload) != {"message", "data"} or payload["message"] != "success":
        return None  # anything more than a plain series would be lost by assembling: answer it exactly
    data = payload["data"]
    if not isinstance(data, list) or not all(isinstance(p, dict) for p in data):
        return None
    spans = _array_spans(text, "data")
    if spans is None or len(spans) != len(data):
        return None
    return [(point.get("time"), text[a:b].encode()) for point, (a, b) in zip(data, spans, strict=True)]


def _array_spans(text: str, member: str) -> list[tuple[int, int]] | None:
    """Where each element of the top-level object's array `member` starts and ends in `text`."""
    i = _skip(text, 0)
    if text[i : i + 1] != "{":
        return None
    i = _skip(text, i + 1)
    while i < len(text) and text[i] == '"':
        name, i = _DECODER.raw_decode(text, i)
        i = _skip(text, i)
        i = _skip(text, i + 1)  # past ':'
        if name == member and text[i : i + 1] == "[":
            return _elements(text, i)
        _, i = _DECODER.raw_decode(text, i)
        i = _skip(text, i)
        if text[i : i + 1] == ",":
            i = _skip(text, i + 1)
    return None


def _elements(text: str, i: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    i = _skip(text, i + 1)
    while text[i : i + 1] not in ("]", ""):
        _, end = _DECODER.raw_decode(text, i)
        spans.append((i, end))
        i = _skip(text, end)
        if text[i : i + 1] == ",":
            i = _skip(text, i + 1)
    return spans


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def label_matches(label: object, start: datetime, unit: Unit, zone: tzinfo) -> bool:
    """Whether Braze's `time` label names the bucket that starts at `start`: a day label is the bucket's local
    date; an hour label is read as an instant (with `Z`, an offset, or none: then in `zone`) and compared."""
    if not isinstance(label, str):
        return False
    if unit == "day":
        return label == start.astimezone(zone).date().isoformat()
    try:
        instant = datetime.fromisoformat(label)
    except ValueError:
        return False
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=zone)
    return instant == start


def mismatch(
    labelled: Sequence[tuple[object, bytes]], starts: Sequence[datetime], unit: Unit, zone: tzinfo
) -> tuple[str, str] | None:
    """None when the points are exactly the expected buckets, in order; else (expected, got) for the log."""
    if len(labelled) != len(starts):
        return f"{len(starts)} points", f"{len(labelled)} points"
    for (label, _), start in zip(labelled, starts, strict=True):
        if not label_matches(label, start, unit, zone):
            expected = start.astimezone(zone).date().isoformat() if unit == "day" else start.isoformat()
            return expected, str(label)[:64]
    return None


def stamp(
    question: Question, starts: Sequence[datetime], raws: Sequence[bytes], now: float, policy: FreshnessPolicy
) -> dict[str, Point]:
    """The fetched points keyed by field, each fresh for as long as its own bucket's age allows."""
    at = datetime.fromtimestamp(now, UTC)
    points: dict[str, Point] = {}
    for start, raw in zip(starts, raws, strict=True):
        fresh = decide(replace(question, length=1, ending_at=start), at, policy)
        points[field(start)] = Point(raw, now, now + fresh.ttl, now + fresh.ttl + fresh.stale)
    return points


def assemble(points: Sequence[Point | None]) -> Entry | None:
    """The window's answer from its points (oldest first), as fresh as its least fresh point; None if one is
    missing."""
    if not points or any(p is None for p in points):
        return None
    present = [p for p in points if p is not None]
    body = b'{"message":"success","data":[' + b",".join(p.raw for p in present) + b"]}"
    return Entry(
        body,
        200,
        CONTENT_TYPE,
        stored_at=min(p.fetched_at for p in present),
        fresh_until=min(p.fresh_until for p in present),
        stale_until=min(p.stale_until for p in present),
    )
