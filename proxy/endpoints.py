"""The proxied endpoints, described as data.

Braze's sibling `data_series` endpoints share the same contract (length, unit, ending_at, a few string
filters, `{"message", "data": [{"time", <value>}]}`), so each is one row here. Only the rows in SERVED are
routed; adding a sibling is adding its row to SERVED (and testing it), not writing code.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Filter:
    """A string parameter that narrows the series (app_id, segment_id, event)."""

    name: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class Endpoint:
    path: str
    name: str  # short, stable: goes into cache keys and metric labels
    value_key: str  # the key of each point's value in the response
    filters: tuple[Filter, ...]
    supports_hour: bool = True
    max_length: int = 100


SESSIONS = Endpoint(
    path="/sessions/data_series",
    name="sessions",
    value_key="sessions",
    filters=(Filter("app_id"), Filter("segment_id")),
)

# Known siblings (from Braze's docs), not routed yet.
KPI_DAU = Endpoint("/kpi/dau/data_series", "dau", "dau", (Filter("app_id"),), supports_hour=False)
KPI_MAU = Endpoint("/kpi/mau/data_series", "mau", "mau", (Filter("app_id"),), supports_hour=False)
KPI_NEW_USERS = Endpoint(
    "/kpi/new_users/data_series", "new_users", "new_users", (Filter("app_id"),), supports_hour=False
)
KPI_UNINSTALLS = Endpoint(
    "/kpi/uninstalls/data_series", "uninstalls", "uninstalls", (Filter("app_id"),), supports_hour=False
)
EVENTS = Endpoint(
    "/events/data_series", "events", "count", (Filter("event", required=True), Filter("app_id"), Filter("segment_id"))
)
SEGMENTS = Endpoint(
    "/segments/data_series", "segments", "size", (Filter("segment_id", required=True),), supports_hour=False
)

SERVED: tuple[Endpoint, ...] = (SESSIONS,)
