"""Pure: a raw query -> a validated, canonical Question, and the one cache-key function.

Every spelling of one question (parameter order, `unit=day` written or omitted, any offset spelling of
the same instant, percent-encoding, any instant inside one bucket) becomes the same Question, hence the
same key and the same canonical upstream query.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from urllib.parse import quote, unquote_to_bytes

from proxy.endpoints import Endpoint
from proxy.errors import InvalidRequest
from proxy.timeline import TimeFormatError, Unit, bucket_end, bucket_start, format_instant, parse_instant

KEY_VERSION = "v1"
LEGACY_KEY_PARAM = "api_key"  # Braze's old credential parameter: a credential, never part of a question
MAX_VALUE_CHARS = 128
_UNITS: dict[str, Unit] = {"day": "day", "hour": "hour"}


@dataclass(frozen=True, slots=True)
class KeyRules:
    """How instants are normalized: the reporting zone, and whether ending_at is floored to its bucket."""

    zone: tzinfo
    floor: bool = True


@dataclass(frozen=True, slots=True)
class Question:
    """One canonical question to one endpoint."""

    endpoint: Endpoint
    length: int
    unit: Unit
    ending_at: datetime  # aware, UTC; the bucket start when flooring is on
    filters: tuple[tuple[str, str], ...]  # (name, value), in the endpoint's declared order, present only

    def cache_key(self, scope: str) -> str:
        """`v1:<scope>:<endpoint>:<length>:<unit>:<ending_at epoch>[:name=value...]`.

        `scope` identifies the upstream credential by hash, never by value.
        """
        ts = self.ending_at
        epoch = int(ts.timestamp())
        stamp = f"{epoch}.{ts.microsecond:06d}" if ts.microsecond else str(epoch)
        key = f"{KEY_VERSION}:{scope}:{self.endpoint.name}:{self.length}:{self.unit}:{stamp}"
        for name, value in self.filters:
            key += f":{name}={quote(value, safe='')}"
        return key

    def upstream_params(self, zone: tzinfo) -> list[tuple[str, str]]:
        """The canonical query sent upstream (always explicit, in a fixed order)."""
        params = [
            ("length", str(self.length)),
            ("unit", self.unit),
            ("ending_at", format_instant(self.ending_at, zone)),
        ]
        params.extend(self.filters)
        return params


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    question: Question
    legacy_api_key: str | None  # the `api_key` query parameter, if the client used it
    # Epoch seconds before which the same raw query still means this question: always, when ending_at is
    # given; the end of the current bucket when it is omitted ("now") and floored; not past `now` otherwise.
    valid_until: float = math.inf


def parse_query(pairs: Iterable[tuple[str, str]], endpoint: Endpoint, rules: KeyRules, now: datetime) -> ParsedQuery:
    """Validate decoded query pairs against `endpoint`; raises InvalidRequest naming every problem."""
    allowed = {"length", "unit", "ending_at", LEGACY_KEY_PARAM, *(f.name for f in endpoint.filters)}
    values: dict[str, str] = {}
    errors: list[str] = []
    for name, value in pairs:
        if name not in allowed:
            errors.append(f"unknown parameter '{_shown(name)}'")
        elif name in values:
            errors.append(f"parameter '{name}' given more than once")
        else:
            values[name] = value

    length = _parse_length(values.get("length"), endpoint.max_length, errors)
    unit = _parse_unit(values.get("unit"), endpoint, errors)
    ending_at = _parse_ending_at(values.get("ending_at"), rules.zone, now, errors)
    filters: list[tuple[str, str]] = []
    for spec in endpoint.filters:
        value = values.get(spec.name, "")
        if not value:
            if spec.required:
                errors.append(f"parameter '{spec.name}' is required")
            continue  # an empty optional filter means the same as an omitted one
        if len(value) > MAX_VALUE_CHARS or not value.isprintable() or value != value.strip():
            errors.append(f"parameter '{spec.name}' must be 1 to {MAX_VALUE_CHARS} printable characters")
            continue
        filters.append((spec.name, value))
    legacy_key = values.get(LEGACY_KEY_PARAM) or None

    if errors or length is None or unit is None or ending_at is None:
        raise InvalidRequest(f"Invalid request: {errors[0]}", errors)
    valid_until = math.inf
    if rules.floor:
        ending_at = bucket_start(ending_at, unit, rules.zone)
        if not values.get("ending_at"):  # "now": the question changes when the current bucket ends
            valid_until = bucket_end(ending_at, unit, rules.zone).timestamp()
    else:
        ending_at = ending_at.astimezone(UTC)
        if not values.get("ending_at"):  # "now", unfloored: every instant is its own question
            valid_until = now.timestamp()
    question = Question(endpoint, length, unit, ending_at, tuple(filters))
    return ParsedQuery(question, legacy_key, valid_until)


def _parse_length(raw: str | None, maximum: int, errors: list[str]) -> int | None:
    if raw is None or raw == "":
        errors.append("parameter 'length' is required")
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


def _parse_ending_at(raw: str | None, zone: tzinfo, now: datetime, errors: list[str]) -> datetime | None:
    if not raw:
        return now  # omitted (or empty): the time of the request, as Braze does
    try:
        return parse_instant(raw.strip(), zone)
    except TimeFormatError:
        errors.append(
            f"parameter 'ending_at' must be an ISO-8601 date or date-time (e.g. 2018-06-28T23:59:59-05:00),"
            f" got '{_shown(raw)}'"
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
