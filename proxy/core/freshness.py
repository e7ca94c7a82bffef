"""Pure: how long an answer stays fresh, from its unit and where its last bucket lies relative to now.

- open:    the series' last bucket has not closed yet, its counts still grow (short TTL, shorter for hours);
- recent:  the last bucket closed less than a settle window ago, Braze may still revise it (medium TTL);
           the window is the endpoint's own where it has one (campaigns, sends and Canvas: 14 days), else the setting;
- settled: older (long TTL).

The rest of the export surface (export_query.py) is kept by its row's class instead: a list or a page of one, or
one item's details, for minutes (they change when someone edits a campaign); per-user answers and keys never.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Literal

from proxy.core.export_query import AnyQuestion, ExportQuestion
from proxy.core.timeline import bucket_end, bucket_start

Phase = Literal["open", "recent", "settled", "list", "detail", "never"]


@dataclass(frozen=True, slots=True)
class FreshnessPolicy:
    zone: tzinfo
    ttl_open_hour: float
    ttl_open_day: float
    settle_window_hour: float
    settle_window_day: float
    ttl_recent_hour: float
    ttl_recent_day: float
    ttl_settled: float
    stale_seconds: float
    revalidate_seconds: float  # the start of the stale window, where an entry is served while one refresh runs
    ttl_lists: float = 300.0
    ttl_details: float = 300.0


@dataclass(frozen=True, slots=True)
class Freshness:
    phase: Phase
    ttl: float  # seconds the answer may be served as fresh
    stale: float  # further seconds it may be served stale (on upstream failure or while revalidating)


def decide(question: AnyQuestion, now: datetime, policy: FreshnessPolicy) -> Freshness:
    """The freshness of an answer to `question` fetched at `now`."""
    if isinstance(question, ExportQuestion):
        return by_class(question, policy)
    start = bucket_start(question.ending_at, question.unit, policy.zone)
    closed_at = bucket_end(start, question.unit, policy.zone)
    hourly = question.unit == "hour"
    age = (now - closed_at).total_seconds()
    if age < 0:
        ttl = policy.ttl_open_hour if hourly else policy.ttl_open_day
        return Freshness("open", ttl, policy.stale_seconds)
    window = question.endpoint.settle_seconds
    if window is None:
        window = policy.settle_window_hour if hourly else policy.settle_window_day
    if age < window:
        return Freshness("recent", policy.ttl_recent_hour if hourly else policy.ttl_recent_day, policy.stale_seconds)
    return Freshness("settled", policy.ttl_settled, policy.stale_seconds)


def by_class(question: ExportQuestion, policy: FreshnessPolicy) -> Freshness:
    """An export's freshness from its row's class; per-user answers and keys are never fresh (never stored)."""
    kind = question.endpoint.freshness
    if kind == "list":
        return Freshness("list", policy.ttl_lists, policy.stale_seconds)
    if kind == "detail":
        return Freshness("detail", policy.ttl_details, policy.stale_seconds)
    return Freshness("never", 0.0, 0.0)
