"""Pure: Braze's rate-limit headers (X-RateLimit-Limit/Remaining/Reset, Retry-After) as values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateInfo:
    """Braze's X-RateLimit-* headers (and Retry-After), as far as they were sent and parse."""

    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None  # epoch seconds
    retry_after: float | None = None  # seconds


def parse_rate_headers(headers: Mapping[str, str]) -> RateInfo:
    """Read rate-limit headers; `headers` must be case-insensitive (HTTP/2 sends them lower-case)."""
    return RateInfo(
        limit=_int(headers.get("X-RateLimit-Limit")),
        remaining=_int(headers.get("X-RateLimit-Remaining")),
        reset=_float(headers.get("X-RateLimit-Reset")),
        retry_after=_float(headers.get("Retry-After")),
    )


def _int(raw: str | None) -> int | None:
    value = _float(raw)
    return int(value) if value is not None else None


def _float(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if value >= 0 and value == value and value != float("inf") else None
