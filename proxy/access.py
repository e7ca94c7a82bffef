"""Following one request: its id (the client's `X-Request-ID` when it is a sane one, else a new one), the trace
it belongs to (W3C `traceparent`), and one JSON access-log line when it ends.

The line names the request id, trace id, team, endpoint, status, cache result, Braze's status and the duration;
never the query string (it may carry a legacy `api_key`) nor any header value but the ids.
"""

from __future__ import annotations

import itertools
import logging
import os
import re

from multidict import istr

log = logging.getLogger("braze_proxy.access")

REQUEST_ID = istr("X-Request-ID")  # case-insensitive already: no folding on every response
_SANE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")  # what a log line and a header can carry safely
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_PREFIX = os.urandom(6).hex()  # per process: ids of two replicas never collide
_COUNTER = itertools.count(1)


def request_id(given: str | None) -> str:
    """The client's id when it is a sane one (kept as is, so callers can find their request); else a new one."""
    if given is not None and _SANE_ID.fullmatch(given):
        return given
    return f"{_PREFIX}-{next(_COUNTER):x}"


def trace_id(traceparent: str | None) -> str | None:
    """The trace id of a valid W3C `traceparent` (version 00, not all zeros), else None."""
    if traceparent is None:
        return None
    m = _TRACEPARENT.fullmatch(traceparent.strip())
    if m is None or m[1] == "0" * 32 or m[2] == "0" * 16:
        return None
    return m[1]


class AccessLog:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and log.isEnabledFor(logging.INFO)

    def write(
        self,
        *,
        rid: str,
        traceparent: str | None,
        endpoint: str,
        team: str | None,
        status: int,
        cache: str,
        upstream_status: int | None,
        seconds: float,
    ) -> None:
        log.info(
            "request",
            extra={
                "request_id": rid,
                "trace_id": trace_id(traceparent),
                "team": team,
                "braze_endpoint": endpoint,
                "status": status,
                "cache": cache,
                "upstream_status": upstream_status,
                "duration_ms": round(seconds * 1000, 3),
            },
        )
