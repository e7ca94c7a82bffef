"""Pure: what to do with what the cache holds, and the answer each outcome gives. No I/O, `now` passed in.

- `next_step`: a fresh entry is served; a stale one within stale-while-revalidate is served while one
  background refresh runs; anything else is filled from upstream (keeping the stale entry for a rescue).
- `rescue`: when the fill fails, a still-usable stale entry answers instead, if the error allows it
  (RFC 5861 stale-if-error; the error says whether it does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from proxy.core.cache_status import CacheStatus
from proxy.core.entry import Entry
from proxy.core.errors import ProxyError


@dataclass(frozen=True, slots=True)
class Answer:
    """What the client gets."""

    status: int
    body: bytes
    content_type: str
    cache_status: CacheStatus
    age: int | None = None  # the Age header (RFC 9111 §5.1), for answers served from the cache
    link: str = ""  # Braze's Link header, kept with the body (the web shell points it at the proxy)


@dataclass(frozen=True, slots=True)
class Serve:
    entry: Entry


@dataclass(frozen=True, slots=True)
class Revalidate:
    entry: Entry


@dataclass(frozen=True, slots=True)
class Fill:
    stale: Entry | None  # what may still rescue a failed fill


Step = Serve | Revalidate | Fill


def next_step(entry: Entry | None, now: float, swr_seconds: float) -> Step:
    """What to do with the entry a lookup found (None: nothing) at `now`."""
    if entry is None:
        return Fill(None)
    if entry.is_fresh(now):
        return Serve(entry)
    if now < entry.fresh_until + swr_seconds and entry.is_usable(now):
        return Revalidate(entry)
    return Fill(entry if entry.is_usable(now) else None)


def rescue(stale: Entry | None, error: ProxyError, now: float) -> Entry | None:
    """The stale entry that may answer instead of `error`, or None if the error must be answered."""
    if stale is None or error.stale_reason is None or not stale.is_usable(now):
        return None
    return stale


def hit(entry: Entry, now: float, detail: str | None = None) -> Answer:
    status = CacheStatus("hit", ttl=entry.ttl(now), detail=detail)
    return Answer(entry.status, entry.body, entry.content_type, status, entry.age(now), entry.link)


def stale(entry: Entry, now: float, detail: str, fwd_status: int | None = None) -> Answer:
    status = CacheStatus("stale", fwd="stale", fwd_status=fwd_status, ttl=int(entry.fresh_until - now), detail=detail)
    return Answer(entry.status, entry.body, entry.content_type, status, entry.age(now), entry.link)


def forwarded(entry: Entry, *, had_stale: bool, stored: bool, collapsed: bool) -> Answer:
    """An answer fetched for this request (or for one it joined): Braze's status and bytes."""
    fwd: Literal["stale", "miss"] = "stale" if had_stale else "miss"
    if collapsed:
        status = CacheStatus("collapsed", fwd=fwd, fwd_status=entry.status, collapsed=True)
    else:
        status = CacheStatus("miss", fwd=fwd, fwd_status=entry.status, stored=stored)
    return Answer(entry.status, entry.body, entry.content_type, status, link=entry.link)
