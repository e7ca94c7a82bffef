"""The proxy's error tree. Each error knows its HTTP status and its Braze-style JSON body.

Third-party exceptions (aiohttp, redis) are translated into these where they enter (upstream.py,
redis_store.py); web.py turns them into responses in one place.
"""

from __future__ import annotations

import json


class ProxyError(Exception):
    """Base: an answer the proxy gives instead of the upstream's."""

    status = 500
    message = "internal error"

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


class InvalidRequest(ProxyError):
    """Bad input: never reaches the upstream."""

    status = 400
    message = "Invalid request"


class Unauthorized(ProxyError):
    status = 401
    message = "Invalid API key: a valid 'Authorization: Bearer <key>' header is required"


class NotFound(ProxyError):
    status = 404
    message = "Not found"


class MethodNotAllowed(ProxyError):
    status = 405
    message = "Method not allowed"


class RateLimited(ProxyError):
    """The shared upstream budget is spent; the client may retry after `retry_after` seconds."""

    status = 429
    message = "Rate limit exceeded: the proxy's upstream budget is spent"

    def __init__(self, retry_after: float, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after + 0.999))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class UpstreamError(ProxyError):
    """The upstream failed (5xx, refused, reset, malformed or oversized answer)."""

    status = 502
    message = "Bad gateway: the Braze API did not answer successfully"

    def __init__(self, message: str | None = None, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.upstream_status = upstream_status


class UpstreamTimeout(UpstreamError):
    status = 504
    message = "Gateway timeout: the Braze API did not answer in time"


class UpstreamRateLimited(UpstreamError):
    """Braze itself said 429 (or we know it would): passed on as 429 with Retry-After."""

    status = 429
    message = "Rate limit exceeded: the Braze API's rate limit is spent"

    def __init__(self, retry_after: float, message: str | None = None) -> None:
        super().__init__(message, upstream_status=429)
        self.retry_after = max(1, int(retry_after + 0.999))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class RelayedError(UpstreamError):
    """Another replica's failed fill, relayed to those who waited for it: the same status and body."""

    def __init__(self, status: int, body: bytes, retry_after: float | None) -> None:
        super().__init__("relayed", upstream_status=status)
        self.status = status
        self._body = body
        self.retry_after = None if retry_after is None else max(1, int(retry_after + 0.999))

    def body(self) -> bytes:
        return self._body

    def headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


class Unavailable(ProxyError):
    """The proxy cannot answer safely right now (draining, or Redis down with the fail-closed policy)."""

    status = 503
    message = "Service unavailable"


class StoreError(Exception):
    """A cache store failed (Redis unreachable or timed out). Internal: callers degrade, never answer it."""
