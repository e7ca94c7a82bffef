"""Pure: a raw query -> a validated, canonical Question, and the one cache-key function.

Every spelling of one question (parameter order, `unit=day` written or omitted, any offset spelling of
the same instant, percent-encoding, any instant inside one bucket) becomes the same Question, hence the
same key and the same canonical upstream query.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from urllib.parse import quote, unquote_to_bytes

from proxy.core.endpoints import Endpoint
from proxy.core.errors import InvalidRequest
from proxy.core.timeline import TimeFormatError, Unit, bucket_end, bucket_start, format_instant, parse_instant

KEY_VERSION = "v1"
LEGACY_KEY_PARAM = "api_key"  # Braze's old credential parameter: a credential, never part of a question
MAX_VALUE_CHARS = 128
_UNITS: dict[str, Unit] = {"day": "day", "hour": "hour"}


@dataclass(frozen=True, slots=True)
class KeyRules:
    """How instants are normalized: to the start of their bucket in the reporting zone."""

    zone: tzinfo


@dataclass(frozen=True, slots=True)
class Question:
    """One canonical question to one endpoint."""

    endpoint: Endpoint
    length: int  # 0 when the window is given by `starting_at` instead (Canvas)
    unit: Unit
    ending_at: datetime  # aware, UTC: the start of the bucket the asked instant falls in
    filters: tuple[tuple[str, str], ...]  # (name, value), in the endpoint's declared order, present only
    starting_at: datetime | None = None  # aware, UTC: the start of the first day (Canvas), else None
    options: tuple[str, ...] = ()  # the endpoint's boolean options that are true, in its declared order
    # `starting_at` as asked (not floored): what Braze is sent when our days may not be Braze's. Not part of
    # the question's identity (nor of its key).
    asked_start: datetime | None = field(default=None, compare=False)

    def cache_key(self, scope: str) -> str:
        """`v1:<scope>:<endpoint>:<length>:<unit>:<ending_at epoch>[:name=value...][:from=<epoch>][:<option>]`.

        `scope` identifies the upstream credential by hash, never by value.
        """
        key = f"{KEY_VERSION}:{scope}:{self.endpoint.name}:{self.length}:{self.unit}:{_stamp(self.ending_at)}"
        for name, value in self.filters:
            key += f":{name}={quote(value, safe='')}"
        if self.starting_at is not None:
            key += f":from={_stamp(self.starting_at)}"
        for option in self.options:
            key += f":{option}"
        return key

    @property
    def upstream_path(self) -> str:
        return self.endpoint.path

    def upstream_params(self, zone: tzinfo) -> list[tuple[str, str]]:
        """The canonical query sent upstream (always explicit, in a fixed order). Day-only endpoints take no
        `unit`; options go as `true` (false is Braze's default, so it is left out)."""
        params: list[tuple[str, str]] = []
        if self.starting_at is not None:
            params.append(("starting_at", format_instant(self.starting_at, zone)))
        else:
            params.append(("length", str(self.length)))
        if self.endpoint.supports_hour:
            params.append(("unit", self.unit))
        params.append(("ending_at", format_instant(self.ending_at, zone)))
        params.extend(self.filters)
        params.extend((option, "true") for option in self.options)
        return params


def _stamp(ts: datetime) -> str:
    epoch = int(ts.timestamp())
    return f"{epoch}.{ts.microsecond:06d}" if ts.microsecond else str(epoch)


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    question: Question
    # Epoch seconds before which the same raw query still means this question: always, when ending_at is
    # given; the end of the current bucket when it is omitted ("now").
    valid_until: float = math.inf
    # The `ending_at` instant as asked (not floored to its bucket); None when omitted or empty ("now").
    instant: datetime | None = None


def parse_query(pairs: Iterable[tuple[str, str]], endpoint: Endpoint, rules: KeyRules, now: datetime) -> ParsedQuery:
    """Validate decoded query pairs against `endpoint`; raises InvalidRequest naming every problem."""
    values, errors = _collect(pairs, endpoint)
    window = values.get("starting_at") if endpoint.starting_at else None
    if window:
        length: int | None = 0
        if values.get("length"):
            errors.append("give either 'length' or 'starting_at', not both")
    else:
        length = _parse_length(values.get("length"), endpoint, errors)
    unit = _parse_unit(values.get("unit"), endpoint, errors)
    ending_at = _parse_instant("ending_at", values.get("ending_at"), rules.zone, errors, now)
    starting_at = _parse_instant("starting_at", window, rules.zone, errors) if window else None
    filters = _parse_filters(values, endpoint, errors)
    options = _parse_options(values, endpoint, errors)
    if errors or length is None or unit is None or ending_at is None:
        raise InvalidRequest(f"Invalid request: {errors[0]}", errors)
    asked_start = starting_at
    if starting_at is not None:
        starting_at = bucket_start(starting_at, unit, rules.zone)
        if starting_at > bucket_start(ending_at, unit, rules.zone):
            message = "parameter 'starting_at' must not be after 'ending_at'"
            raise InvalidRequest(f"Invalid request: {message}", [message])
    asked = ending_at if values.get("ending_at") else None
    ending_at = bucket_start(ending_at, unit, rules.zone)
    valid_until = math.inf
    if asked is None:  # "now": the question changes when the current bucket ends
        valid_until = bucket_end(ending_at, unit, rules.zone).timestamp()
    question = Question(endpoint, length, unit, ending_at, filters, starting_at, options, asked_start)
    return ParsedQuery(question, valid_until, asked)


def _collect(pairs: Iterable[tuple[str, str]], endpoint: Endpoint) -> tuple[dict[str, str], list[str]]:
    """The parameters by name, and an error for each unknown or repeated one."""
    allowed = {"length", "unit", "ending_at", LEGACY_KEY_PARAM, *(f.name for f in endpoint.filters)}
    allowed.update(endpoint.flags)
    if endpoint.starting_at:
        allowed.add("starting_at")
    values: dict[str, str] = {}
    errors: list[str] = []
    for name, value in pairs:
        if name not in allowed:
            errors.append(f"unknown parameter '{_shown(name)}'")
        elif name in values:
            errors.append(f"parameter '{name}' given more than once")
        else:
            values[name] = value
    return values, errors


def _parse_filters(values: dict[str, str], endpoint: Endpoint, errors: list[str]) -> tuple[tuple[str, str], ...]:
    filters: list[tuple[str, str]] = []
    for spec in endpoint.filters:
        value = values.get(spec.name, "")
        if not value:
            if spec.required:
                errors.append(f"parameter '{spec.name}' is required")
            continue  # an empty optional filter means the same as an omitted one
        if len(value) > MAX_VALUE_CHARS or not _printable(value) or value != value.strip():
            errors.append(f"parameter '{spec.name}' must be 1 to {MAX_VALUE_CHARS} printable characters")
            continue
        filters.append((spec.name, value))
    return tuple(filters)


def _printable(value: str) -> bool:
    """No control characters. Format characters (a zero-width space, the joiner inside an emoji event name) and
    other spaces are text Braze takes: they are passed on."""
    return not any(unicodedata.category(c) in ("Cc", "Cs") for c in value)


def _parse_options(values: dict[str, str], endpoint: Endpoint, errors: list[str]) -> tuple[str, ...]:
    """The boolean options that are true; `true`/`false` in any case, or empty (false). Braze refuses `1`/`0`."""
    options: list[str] = []
    for name in endpoint.flags:
        raw = values.get(name, "").lower()
        if raw == "true":
            options.append(name)
        elif raw not in ("", "false"):
            errors.append(f"parameter '{name}' must be 'true' or 'false', got '{_shown(values[name])}'")
    return tuple(options)


def _parse_length(raw: str | None, endpoint: Endpoint, errors: list[str]) -> int | None:
    maximum = endpoint.max_length
    if raw is None or raw == "":
        either = " (or 'starting_at')" if endpoint.starting_at else ""
        errors.append(f"parameter 'length'{either} is required")
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 6 or not 1 <= int(raw) <= maximum:
        errors.append(f"parameter 'length' must be an integer from 1 to {maximum}, got '{_shown(raw)}'")
        return None
    return int(raw)


def _parse_unit(raw: str | None, endpoint: Endpoint, errors: list[str]) -> Unit | None:
    if raw is None or raw == "":
        return "day"
    unit = _UNITS.get(raw.lower())
    if unit is None:
        errors.append(f"parameter 'unit' must be 'day' or 'hour', got '{_shown(raw)}'")
        return None
    if unit == "hour" and not endpoint.supports_hour:
        errors.append("parameter 'unit' must be 'day' for this endpoint")
        return None
    return unit


def _parse_instant(
    name: str, raw: str | None, zone: tzinfo, errors: list[str], now: datetime | None = None
) -> datetime | None:
    if not raw and now is not None:
        return now  # ending_at omitted (or empty): the time of the request, as Braze does
    try:
        return parse_instant((raw or "").strip(), zone)
    except TimeFormatError:
        errors.append(
            f"parameter '{name}' must be an ISO-8601 date or date-time (e.g. 2018-06-28T23:59:59-05:00),"
            f" got '{_shown(raw or '')}'"
        )
        return None


def _shown(text: str, limit: int = 40) -> str:
    """Echo a client value safely: shortened and without control characters."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in text[:limit])
    return clean + ("..." if len(text) > limit else "")


def check_encoding(raw_query: str) -> None:
    """Raise InvalidRequest unless the percent-encoded bytes of `raw_query` are UTF-8.

    Decoding replaces invalid bytes with U+FFFD, so `%FF` and `%FE` would become one question (and go
    upstream as neither).
    """
    try:
        unquote_to_bytes(raw_query).decode("utf-8")
    except UnicodeDecodeError:
        message = "the query string must be percent-encoded UTF-8"
        raise InvalidRequest(f"Invalid request: {message}", [message]) from None
