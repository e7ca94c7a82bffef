"""The proxy's error tree. Each error carries its own facts: HTTP status, Braze-style JSON body, headers
(Retry-After), whether a stale entry may answer in its place (and the metric label for it), and its
Cache-Status. Nothing outside this module asks an error what class it is.

Third-party exceptions (aiohttp, redis) are translated into these where they enter (upstream.py,
redis_conn.py); web.py turns them into responses in one place.
"""

from __future__ import annotations

import hashlib
import json
import math

from proxy.core.cache_status import BYPASS, CacheStatus

MAX_RETRY_AFTER = 3600  # Braze's window is an hour: never tell a client to wait longer


def team_tag(team: str) -> str:
    """A team as a refusal names it: a short hash (fixed alphabet, no team name or key scope in Redis)."""
    return hashlib.sha256(team.encode()).hexdigest()[:16]


def retry_after_seconds(seconds: float) -> int:
    """Whole seconds for a Retry-After header: rounded up, at least 1, at most an hour."""
    if not math.isfinite(seconds):
        return MAX_RETRY_AFTER
    return min(MAX_RETRY_AFTER, max(1, math.ceil(seconds)))


class ProxyError(Exception):
    """Base: an answer the proxy gives instead of the upstream's."""

    status = 500
    message = "Internal error"
    # The stale_served reason when a stale entry may answer instead of this error; None: it may not.
    stale_reason: str | None = None
    upstream_status: int | None = None  # what Braze answered, when the error is about its answer
    retry_after: int | None = None  # seconds, for the Retry-After header
    # The team_tag() of the team whose own budget decision this is: handed to that team's callers only (a caller
    # of another team who joined the fill decides with its own share). None: the same answer for everyone.
    team: str | None = None

    def __init__(self, message: str | None = None, errors: list[str] | None = None) -> None:
        self.message = message or self.message
        self.errors = errors or []
        super().__init__(self.message)

    def body(self) -> bytes:
        payload: dict[str, object] = {"message": self.message}
        if self.errors:
            payload["errors"] = self.errors
        return json.dumps(payload, separators=(",", ":")).encode()

    def headers(self) -> dict[str, str]:
        return {}

    def cache_status(self) -> CacheStatus:
        return CacheStatus("error", fwd="miss")


class ClientError(ProxyError):
    """The request itself is wrong: answered without looking at the cache or the upstream."""

    def cache_status(self) -> CacheStatus:
        return BYPASS


class InvalidRequest(ClientError):
    """Bad input: never reaches the upstream."""

    status = 400
    message = "Invalid request"


class Unauthorized(ClientError):
    status = 401
    message = "Invalid API key: a valid 'Authorization: Bearer <key>' header is required"


class NotFound(ClientError):
    status = 404
    message = "Not found"


class MethodNotAllowed(ClientError):
    status = 405
    message = "Method not allowed"

    def __init__(self, allowed: str = "GET") -> None:
        super().__init__(f"Method not allowed: this resource answers {allowed} only")
        self.allowed = allowed

    def headers(self) -> dict[str, str]:
        return {"Allow": self.allowed}  # RFC 9110 §15.5.6


class RateLimited(ProxyError):
    """The proxy's own budget refused the call; the client may retry after `retry_after` seconds."""

    status = 429
    message = "Rate limit exceeded: the proxy's upstream budget for this workspace is spent"
    stale_reason = "rate_limited"

    def __init__(
        self, retry_after: float, message: str | None = None, detail: str = "budget-spent", team: str | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after_seconds(retry_after)
        self.detail = detail
        self.team = None if team is None else team_tag(team)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}

    def cache_status(self) -> CacheStatus:
        return CacheStatus("error", fwd="miss", detail=self.detail)


class UpstreamError(ProxyError):
    """The upstream failed (5xx, refused, reset, malformed or oversized answer)."""

    status = 502
    message = "Bad gateway: the Braze API did not answer successfully"
    stale_reason = "upstream_error"

    def __init__(self, message: str | None = None, upstream_status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.upstream_status = upstream_status
        self.retryable = retryable  # failed before any answer arrived: another attempt may get one

    def cache_status(self) -> CacheStatus:
        if self.upstream_status is not None:
            return CacheStatus("error", fwd="miss", fwd_status=self.upstream_status)
        return CacheStatus("error", fwd="miss", detail="error")


class ManagedKeyRefused(UpstreamError):
    """Braze refused the proxy's own API key (managed-key mode): the operators' problem, never the client's, so
    not Braze's 401/403 passed on (it would read as if the client's token were wrong)."""

    def __init__(self, upstream_status: int) -> None:
        super().__init__(
            f"Bad gateway: Braze refused the proxy's own API key (HTTP {upstream_status}); your token is fine,"
            " the proxy's operators have been alerted",
            upstream_status=upstream_status,
        )


class UpstreamTimeout(UpstreamError):
    status = 504
    message = "Gateway timeout: the Braze API did not answer in time"
    stale_reason = "timeout"

    def cache_status(self) -> CacheStatus:
        return CacheStatus("error", fwd="miss", detail="timeout")


class UpstreamRateLimited(UpstreamError):
    """Braze itself answered 429: passed on as 429 with Retry-After, and said to be Braze's."""

    status = 429
    message = "Rate limit exceeded: the Braze API answered 429 (the workspace's rate limit at Braze is spent)"
    stale_reason = "rate_limited"

    def __init__(self, retry_after: float, message: str | None = None) -> None:
        super().__init__(message, upstream_status=429)
        self.retry_after = retry_after_seconds(retry_after)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}

    def cache_status(self) -> CacheStatus:
        return CacheStatus("error", fwd="miss", fwd_status=429, detail="braze-rate-limited")


class RelayedError(UpstreamError):
    """Another replica's failed fill, relayed to those who waited for it: the same status and body."""

    def __init__(self, status: int, body: bytes, retry_after: float | None, team: str = "") -> None:
        super().__init__("relayed", upstream_status=status)
        self.status = status
        self.team = team or None  # already a team_tag()
        self._body = body
        self.retry_after = None if retry_after is None else retry_after_seconds(retry_after)
        self.stale_reason = {429: "rate_limited", 503: "unavailable", 504: "timeout"}.get(status, "upstream_error")

    def body(self) -> bytes:
        return self._body

    def headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}

    def cache_status(self) -> CacheStatus:
        return CacheStatus("error", fwd="miss", fwd_status=self.status, collapsed=True)


class Unavailable(ProxyError):
    """The proxy cannot answer safely right now (Redis down with the fail-closed policy)."""

    status = 503
    message = "Service unavailable"
    stale_reason = "unavailable"

    def cache_status(self) -> CacheStatus:
        return CacheStatus("error", fwd="miss", detail="unavailable")


class StoreError(Exception):
    """A cache store failed. Internal: callers degrade, never answer it.

    `refused_write` tells a store that answers but refuses writes (Redis out of memory, or a demoted master
    answering READONLY) apart from one that cannot be reached: reads still work in the first case. `busy`: the
    call never left this process (every connection in use past the timeout): Redis's health is not in question.
    """

    def __init__(self, message: str, *, refused_write: bool = False, busy: bool = False) -> None:
        super().__init__(message)
        self.refused_write = refused_write
        self.busy = busy  # never sent: this process's own connections were all in use (Redis itself is fine)
