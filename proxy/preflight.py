"""What `braze-proxy --check` verifies beyond the settings model, so that a check that passes means a start that
works: no unknown BRAZE_PROXY_* variable (a typo silently means a default), and a Redis that answers PING with
the configured credentials within a bound. Messages are one line each and never quote a secret.
"""

from __future__ import annotations

import asyncio

from proxy.core.errors import StoreError
from proxy.redis.connection import build_connection
from proxy.redis.url import parse_redis_url, redacted
from proxy.settings.model import Settings

REDIS_CHECK_SECONDS = 5.0  # the longest --check waits for Redis
# Why a PING failed, by redis-py's error type (never its text: it may name a host a password was pasted into).
REDIS_REASONS = {
    "AuthenticationError": "refused the credentials (a wrong password or user in the URL)",
    "AuthenticationWrongNumberOfArgsError": "refused the credentials (a password where none is set?)",
    "ResponseError": "refused the connection (NOAUTH: a password is required, or a wrong database number)",
    "TimeoutError": "did not answer in time (a firewall, a wrong host or port, or TLS where none is spoken)",
    "ConnectionError": "could not be reached (nothing listens there, or a TLS mismatch)",
}


def unknown_variable_problems(unknown: list[str]) -> list[str]:
    """One line per BRAZE_PROXY_* variable that is not a setting (pure)."""
    return [
        f"{name} is not a setting (a typo?): without it the default applies; see `braze-proxy --help`"
        for name in unknown
    ]


def fill_explanation(s: Settings) -> str:
    """What the derived fill time is and where it comes from (pure)."""
    return (
        f"one fill (a miss's upstream call, its retries and backoffs) may take up to {s.fill_seconds:g} s"
        f" (BRAZE_PROXY_UPSTREAM_RETRY_BUDGET_SECONDS {s.upstream_retry_budget_seconds:g}"
        f" + BRAZE_PROXY_UPSTREAM_TIMEOUT {s.upstream_timeout:g} + 2): replicas hold a fill's lock and wait for"
        " another's fill this long"
    )


def store_description(s: Settings) -> str:
    """Where the cache and the budget live, as a newcomer reads it (pure; no credential)."""
    if not s.redis_url:
        return "cache and budget in process (no BRAZE_PROXY_REDIS_URL): each replica has its own"
    return f"cache and budget in Redis at {redacted(s.redis_url)}"


async def redis_problem(s: Settings, bound: float = REDIS_CHECK_SECONDS) -> str | None:
    """None if Redis (any topology) answers PING with the configured credentials within `bound` s, else why not."""
    if not s.redis_url:
        return None
    timeout = min(bound, max(s.redis_timeout, 2.0))
    conn = build_connection(
        parse_redis_url(s.redis_url), timeout=timeout, max_connections=2, ca_file=s.redis_tls_ca_file
    )
    reason: str | None = None
    try:
        async with asyncio.timeout(bound):
            await conn.ping()
    except TimeoutError:
        reason = REDIS_REASONS["TimeoutError"]
    except StoreError as error:
        cause = type(error.__cause__).__name__ if error.__cause__ is not None else ""
        reason = REDIS_REASONS.get(cause, f"did not answer PING ({cause or error})")
    finally:
        await conn.close()
    if reason is None:
        return None
    return f"Redis at {redacted(s.redis_url)} {reason}; BRAZE_PROXY_REDIS_URL"
