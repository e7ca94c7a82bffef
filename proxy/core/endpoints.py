"""The proxied endpoints, described as data.

Braze's export series share one contract (length, ending_at, a few string filters, `{"message", "data"}`), so
each endpoint is one row here: its parameters, the budget it spends, how long its recent days may still be
revised, and what a storable answer looks like. Every row in SERVED is routed; the request path has no
per-endpoint code. Braze's News Feed series (`/feed/data_series`) is deprecated since December 2022: served all the
same, and whatever Braze answers (a 4xx included) is passed on. The rest of the read-only surface (lists,
details, catalogs, ...) is in exports.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from proxy.core import exports

DAY = 86400.0
# Braze restates campaign, send and Canvas days as conversions are attributed; public connectors re-read 14 days.
RESTATED = 14 * DAY

Shape = Literal["points", "canvas_series", "canvas_summary"]


class Routed(Protocol):
    """What the call path needs of any endpoint, a series or an export: where, what name, which budget, and
    what a success looks like."""

    @property
    def path(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def budget_group(self) -> str: ...
    def succeeded(self, payload: dict[str, Any]) -> bool: ...
    def storable(self, payload: dict[str, Any]) -> bool: ...


@dataclass(frozen=True, slots=True)
class Filter:
    """A string parameter that narrows the series (app_id, segment_id, event, campaign_id, ...)."""

    name: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class Endpoint:
    path: str
    name: str  # short, stable: goes into cache keys and the metric label `braze_endpoint`
    value_key: str  # the key of each point's value ("" where a point holds several: campaigns, Canvas)
    filters: tuple[Filter, ...]
    supports_hour: bool = True  # `unit=hour` allowed (and `unit` sent upstream: day-only endpoints take none)
    max_length: int = 100
    budget_group: str = "default"  # Braze limits some endpoints apart (accounts.py; ENDPOINT_GROUPS overrides)
    settle_seconds: float | None = None  # how long after a day closes Braze may revise it; None: the setting
    flat: bool = True  # points `{time, <values>}`: a window may be assembled from buckets
    shape: Shape = "points"
    flags: tuple[str, ...] = ()  # boolean options, false by default (Canvas breakdowns)
    starting_at: bool = False  # `starting_at` may stand in for `length` (Canvas)

    def succeeded(self, payload: dict[str, Any]) -> bool:
        """Whether a 2xx JSON object is Braze's success (anything else is Braze's own words, passed on)."""
        return payload.get("message") == "success"

    def storable(self, payload: dict[str, Any]) -> bool:
        """Whether a success answer holds what this endpoint promises (its points, or Canvas's named object)."""
        data = payload.get("data")
        if self.shape == "points":
            return isinstance(data, list) and all(_point(p) for p in data)
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            return False
        if self.shape == "canvas_series":
            stats = data.get("stats")
            return isinstance(stats, list) and all(_point(p) for p in stats)
        return True


def _point(point: object) -> bool:
    return isinstance(point, dict) and isinstance(point.get("time"), str)


def _kpi(path: str, name: str) -> Endpoint:
    return Endpoint(path, name, name, (Filter("app_id"),), supports_hour=False)


def _canvas(path: str, name: str, shape: Shape) -> Endpoint:
    return Endpoint(
        path,
        name,
        "",
        (Filter("canvas_id", required=True),),
        supports_hour=False,
        max_length=14,
        settle_seconds=RESTATED,
        flat=False,
        shape=shape,
        flags=("include_variant_breakdown", "include_step_breakdown", "include_deleted_step_data"),
        starting_at=True,
    )


SESSIONS = Endpoint(
    path="/sessions/data_series",
    name="sessions",
    value_key="sessions",
    filters=(Filter("app_id"), Filter("segment_id")),
)
EVENTS = Endpoint(
    "/events/data_series", "events", "count", (Filter("event", required=True), Filter("app_id"), Filter("segment_id"))
)
KPI_DAU = _kpi("/kpi/dau/data_series", "dau")
KPI_MAU = _kpi("/kpi/mau/data_series", "mau")
KPI_NEW_USERS = _kpi("/kpi/new_users/data_series", "new_users")
KPI_UNINSTALLS = _kpi("/kpi/uninstalls/data_series", "uninstalls")
PURCHASES_QUANTITY = Endpoint(
    "/purchases/quantity_series", "purchases_quantity", "purchase_quantity", (Filter("app_id"), Filter("product"))
)
PURCHASES_REVENUE = Endpoint(
    "/purchases/revenue_series", "purchases_revenue", "revenue", (Filter("app_id"), Filter("product"))
)
SEGMENTS = Endpoint(
    "/segments/data_series", "segments", "size", (Filter("segment_id", required=True),), supports_hour=False
)
CAMPAIGNS = Endpoint(
    "/campaigns/data_series",
    "campaigns",
    "",
    (Filter("campaign_id", required=True),),
    supports_hour=False,
    budget_group="campaigns",  # Braze: 50,000 a minute, apart from the default 250,000 an hour
    settle_seconds=RESTATED,
)
SENDS = Endpoint(
    "/sends/data_series",
    "sends",
    "",
    (Filter("campaign_id", required=True), Filter("send_id", required=True)),
    supports_hour=False,
    settle_seconds=RESTATED,
)
FEED = Endpoint(  # News Feed cards: deprecated by Braze, which may answer a 4xx (passed on)
    "/feed/data_series", "feed", "", (Filter("card_id", required=True),)
)
CANVAS = _canvas("/canvas/data_series", "canvas", "canvas_series")
CANVAS_SUMMARY = _canvas("/canvas/data_summary", "canvas_summary", "canvas_summary")

SERVED: tuple[Endpoint, ...] = (
    SESSIONS,
    EVENTS,
    KPI_DAU,
    KPI_MAU,
    KPI_NEW_USERS,
    KPI_UNINSTALLS,
    PURCHASES_QUANTITY,
    PURCHASES_REVENUE,
    SEGMENTS,
    CAMPAIGNS,
    SENDS,
    CANVAS,
    CANVAS_SUMMARY,
    FEED,
)


def group_move_problems(moves: Mapping[str, str], groups: Iterable[str]) -> list[str]:
    """What is wrong with ENDPOINT_GROUPS (`moves`: endpoint name -> group) given the configured budget `groups`:
    a name no served endpoint has, or a group without a budget (it would silently spend "default")."""
    names = {*(e.name for e in SERVED), *exports.names()}
    known = {"default", *groups}
    problems = [
        f"{name!r} is not an endpoint (one of: {', '.join(sorted(names))})" for name in moves if name not in names
    ]
    problems += [
        f"{name!r} moves to {group!r}, which has no budget" for name, group in moves.items() if group not in known
    ]
    return problems
