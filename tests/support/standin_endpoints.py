"""The stand-in's model of Braze's export series: each endpoint's parameters (as Braze documents them, strictly:
an undocumented parameter is refused, so a proxy that sends one is caught) and deterministic answers.

Written apart from proxy/endpoints.py on purpose: the stand-in is a second opinion on the contract, not a copy.
A bucket's numbers are a pure function of (credential, endpoint, filters, options, unit, bucket label), plus
the revision while the bucket is open, so overlapping windows agree.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
from collections.abc import Callable, Mapping
from typing import Any

from tests.support.standin_time import Cut, buckets, parse_iso

NO_ANALYTICS_SEGMENT = "segment-without-analytics"  # /segments/data_series answers Braze's error for it
CANVAS_FLAGS = ("include_variant_breakdown", "include_step_breakdown", "include_deleted_step_data")
MAX_STARTING_AT_DAYS = 100  # a bound of the stand-in's own: Braze documents none for starting_at


@dataclasses.dataclass(frozen=True)
class Spec:
    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    kind: str  # "points", "campaign", "canvas_series", "canvas_summary"
    value_key: str = ""
    hourly: bool = False  # takes `unit` (day or hour)
    max_length: int = 100


def _kpi(name: str) -> Spec:
    return Spec(name, (), ("app_id",), "points", name)


SPECS: dict[str, Spec] = {
    "/sessions/data_series": Spec("sessions", (), ("app_id", "segment_id"), "points", "sessions", hourly=True),
    "/events/data_series": Spec("events", ("event",), ("app_id", "segment_id"), "points", "count", hourly=True),
    "/kpi/dau/data_series": _kpi("dau"),
    "/kpi/mau/data_series": _kpi("mau"),
    "/kpi/new_users/data_series": _kpi("new_users"),
    "/kpi/uninstalls/data_series": _kpi("uninstalls"),
    "/purchases/quantity_series": Spec(
        "purchases_quantity", (), ("app_id", "product"), "points", "purchase_quantity", hourly=True
    ),
    "/purchases/revenue_series": Spec("purchases_revenue", (), ("app_id", "product"), "points", "revenue", hourly=True),
    "/segments/data_series": Spec("segments", ("segment_id",), (), "points", "size"),
    "/campaigns/data_series": Spec("campaigns", ("campaign_id",), (), "campaign"),
    "/sends/data_series": Spec("sends", ("campaign_id", "send_id"), (), "campaign"),
    "/canvas/data_series": Spec("canvas", ("canvas_id",), CANVAS_FLAGS, "canvas_series", max_length=14),
    "/canvas/data_summary": Spec("canvas_summary", ("canvas_id",), CANVAS_FLAGS, "canvas_summary", max_length=14),
    "/feed/data_series": Spec("feed", ("card_id",), (), "points", "clicks", hourly=True),  # deprecated News Feed
}


@dataclasses.dataclass(frozen=True)
class Ask:
    """A validated request to one endpoint."""

    spec: Spec
    length: int
    unit: str
    ending_at: dt.datetime
    starting_at: dt.datetime | None
    filters: tuple[tuple[str, str], ...]  # filters and options as sent, sorted by name


def parse(spec: Spec, query: Mapping[str, str], now: dt.datetime) -> tuple[Ask | None, list[str]]:
    """Validate the query against `spec`; return the request or the list of errors."""
    canvas = spec.kind.startswith("canvas")
    known = {"length", "ending_at", "api_key", *spec.required, *spec.optional}
    known |= {"unit"} if spec.hourly else set()
    known |= {"starting_at"} if canvas else set()
    errors = [f"unknown parameter {name!r}" for name in query if name not in known]
    errors += [f"{name} is required" for name in spec.required if not query.get(name)]
    errors += [f"{name} must be true or false" for name in CANVAS_FLAGS if query.get(name, "false") not in _BOOLS]
    unit = query.get("unit", "day")
    if unit not in ("day", "hour"):
        errors.append("unit must be 'day' or 'hour'")
    raw_end = query.get("ending_at")
    ending_at = now if raw_end is None else parse_iso(raw_end)
    if ending_at is None:
        errors.append("ending_at must be an ISO-8601 date-time")
    starting_at, length = _window(spec, query, ending_at, errors)
    if errors or ending_at is None:
        return None, errors
    filters = tuple(sorted((k, v) for k, v in query.items() if k in spec.required or k in spec.optional))
    return Ask(spec, length, unit, ending_at, starting_at, filters), []


_BOOLS = ("true", "false")


def _window(
    spec: Spec, query: Mapping[str, str], ending_at: dt.datetime | None, errors: list[str]
) -> tuple[dt.datetime | None, int]:
    raw_start = query.get("starting_at")
    if raw_start is not None and spec.kind.startswith("canvas"):
        starting_at = parse_iso(raw_start)
        if starting_at is None or ending_at is None or not starting_at <= ending_at:
            errors.append("starting_at must be an ISO-8601 date-time not after ending_at")
            return None, 0
        days = (ending_at.date() - starting_at.date()).days + 1
        if days > MAX_STARTING_AT_DAYS:
            errors.append(f"starting_at must be at most {MAX_STARTING_AT_DAYS} days before ending_at")
        return starting_at, days
    raw = query.get("length")
    length = int(raw) if raw and re.fullmatch(r"[0-9]{1,6}", raw) else 0
    if not 1 <= length <= spec.max_length:
        errors.append(f"length must be an integer between 1 and {spec.max_length}")
    return None, length


def answer(ask: Ask, api_key: str, cut: Cut) -> tuple[int, dict[str, Any]]:
    """The status and JSON body Braze would send; raises OverflowError near year 1."""
    spec = ask.spec
    filters = dict(ask.filters)
    if spec.name == "segments" and filters.get("segment_id") == NO_ANALYTICS_SEGMENT:
        message = "Segment analytics tracking is not enabled for this segment"
        return 400, {"message": message, "errors": [message]}
    length = ask.length
    if ask.starting_at is not None:  # the local days from starting_at to ending_at
        tz = cut.tz
        length = (ask.ending_at.astimezone(tz).date() - ask.starting_at.astimezone(tz).date()).days + 1
    labels = buckets(ask.ending_at, ask.unit, length, cut)
    # Options change what is shown, not the numbers: a breakdown never changes the totals.
    # A Canvas summary rolls up the same days as the Canvas's series: one seed for both.
    family = "canvas" if spec.kind.startswith("canvas") else spec.name
    seed = [api_key, family, *(f"{k}={v}" for k, v in ask.filters if k not in CANVAS_FLAGS), ask.unit]

    def number(label: str, is_open: bool, field: str, scale: int) -> int:
        parts = [*seed, label, field] + ([f"revision={cut.revision}"] if is_open and cut.revision else [])
        return int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest()[:4], "big") % scale

    if spec.kind == "points":
        scale = 100_000 if ask.unit == "day" else 5_000
        points = [{"time": t, spec.value_key: number(t, o, spec.value_key, scale)} for t, o in labels]
        return 200, {"message": "success", "data": points}
    if spec.kind == "campaign":
        return 200, {"message": "success", "data": [_campaign_point(t, o, number) for t, o in labels]}
    flags = {k for k, v in ask.filters if k in CANVAS_FLAGS and v == "true"}
    stats = [_canvas_stats(t, o, number, flags) for t, o in labels]
    name = f"Canvas {filters['canvas_id']}"
    if spec.kind == "canvas_series":
        return 200, {"message": "success", "data": {"name": name, "stats": stats}}
    summary: dict[str, Any] = {"name": name, "total_stats": _sum([s["total_stats"] for s in stats])}
    for part in ("variant_stats", "step_stats"):
        if stats and part in stats[0]:
            summary[part] = {k: _sum([s[part][k] for s in stats]) for k in stats[0][part]}
    return 200, {"message": "success", "data": summary}


Number = Callable[[str, bool, str, int], int]
_EMAIL = ("sent", "opens", "unique_opens", "clicks", "unique_clicks", "unsubscribes", "bounces", "delivered")
_PUSH = ("sent", "direct_opens", "total_opens", "bounces", "body_clicks")
_CONVERSIONS = ("conversions", "conversions_by_send_time", "conversions1", "conversions1_by_send_time")


def _campaign_point(t: str, is_open: bool, number: Number) -> dict[str, Any]:
    """A point as Braze documents /campaigns/data_series and /sends/data_series: messages by channel, each a list
    of variations, then the conversions, unique recipients and revenue of the day."""
    email = {"variation_name": "Variant 1", **{f: number(t, is_open, f"email.{f}", 1000) for f in _EMAIL}}
    push = {"variation_name": "iOS_Push", **{f: number(t, is_open, f"ios.{f}", 1000) for f in _PUSH}}
    point: dict[str, Any] = {"time": t, "messages": {"email": [email], "ios_push": [push]}}
    point |= {f: number(t, is_open, f, 100) for f in _CONVERSIONS}
    point["unique_recipients"] = number(t, is_open, "unique_recipients", 5000)
    point["revenue"] = number(t, is_open, "revenue", 100_000) / 100
    return point


def _canvas_stats(t: str, is_open: bool, number: Number, flags: set[str]) -> dict[str, Any]:
    def totals(prefix: str) -> dict[str, Any]:
        fields = ("conversions", "conversions_by_entry_time", "entries")
        stats: dict[str, Any] = {f: number(t, is_open, f"{prefix}.{f}", 1000) for f in fields}
        stats["revenue"] = number(t, is_open, f"{prefix}.revenue", 100_000) / 100
        return stats

    point: dict[str, Any] = {"time": t, "total_stats": totals("total")}
    if "include_variant_breakdown" in flags:
        point["variant_stats"] = {"variant-1": {"name": "Variant 1", **totals("variant-1")}}
    if "include_step_breakdown" in flags:
        steps = ["step-1", *(["step-deleted"] if "include_deleted_step_data" in flags else [])]
        point["step_stats"] = {s: {"name": s, **totals(s)} for s in steps}
    return point


def _sum(stats: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for one in stats:
        for k, v in one.items():
            out[k] = round(out.get(k, 0) + v, 2) if isinstance(v, int | float) else v
    return out
