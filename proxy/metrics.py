"""The metric objects, on a registry of their own (no module-level globals).

Recorded by the shells (web.py, service.py) from decisions' results, never from pure code.
Labels are bounded sets only: never a key, an app_id, a segment_id or a credential.
"""

from __future__ import annotations

import platform

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from proxy import __version__

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.build_info = Gauge(
            "braze_proxy_build_info", "Build of the running proxy (always 1)", ["version", "python"], registry=r
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)

        # RED
        self.requests = Counter(
            "braze_proxy_requests_total",
            "Requests answered, by endpoint, cache outcome and HTTP status code",
            ["endpoint", "cache", "code"],
            registry=r,
        )
        self.request_duration = Histogram(
            "braze_proxy_request_duration_seconds",
            "Time to answer a request, by endpoint and cache outcome",
            ["endpoint", "cache"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inflight = Gauge("braze_proxy_inflight_requests", "Requests being answered now", registry=r)

        # cache
        self.cache_ops = Counter(
            "braze_proxy_cache_operations_total",
            "Cache store operations by store (l1, memory, redis), operation and result (hit, miss, ok, error)",
            ["store", "op", "result"],
            registry=r,
        )
        self.cache_op_duration = Histogram(
            "braze_proxy_cache_operation_duration_seconds",
            "Latency of cache store operations",
            ["store", "op"],
            buckets=REDIS_BUCKETS,
            registry=r,
        )
        self.cache_entries = Gauge(
            "braze_proxy_cache_entries", "Entries held in process (l1, memory)", ["store"], registry=r
        )
        self.redis_up = Gauge(
            "braze_proxy_redis_up", "1 when Redis is configured and reachable, 0 while degraded", registry=r
        )

        # upstream
        self.upstream_requests = Counter(
            "braze_proxy_upstream_requests_total",
            "Calls to Braze by outcome: the HTTP status code, or timeout / error",
            ["endpoint", "code"],
            registry=r,
        )
        self.upstream_duration = Histogram(
            "braze_proxy_upstream_request_duration_seconds",
            "Latency of calls to Braze",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_retries = Counter(
            "braze_proxy_upstream_retries_total", "Retries of failed upstream calls", ["endpoint"], registry=r
        )
        self.upstream_rate_remaining = Gauge(
            "braze_proxy_upstream_rate_limit_remaining", "X-RateLimit-Remaining as Braze last reported it",
            registry=r,
        )  # fmt: skip
        self.upstream_rate_limit = Gauge(
            "braze_proxy_upstream_rate_limit_limit", "X-RateLimit-Limit as Braze last reported it", registry=r
        )
        self.upstream_rate_reset = Gauge(
            "braze_proxy_upstream_rate_limit_reset_timestamp_seconds",
            "X-RateLimit-Reset as Braze last reported it (epoch seconds)",
            registry=r,
        )

        # budget
        self.budget_per_hour = Gauge(
            "braze_proxy_rate_limit_budget_per_hour", "Configured upstream calls per hour", registry=r
        )
        self.tokens = Gauge(
            "braze_proxy_rate_limit_tokens", "Tokens left in the shared bucket after the last take", registry=r
        )
        self.token_waits = Counter("braze_proxy_rate_limit_waits_total", "Requests that waited for a token", registry=r)
        self.token_wait_seconds = Histogram(
            "braze_proxy_rate_limit_wait_seconds",
            "How long requests waited for a token",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0),
            registry=r,
        )
        self.token_rejections = Counter(
            "braze_proxy_rate_limit_rejections_total",
            "Upstream calls not made for want of budget, by reason (tokens, upstream_429)",
            ["reason"],
            registry=r,
        )

        # coalescing and stale
        self.coalesced = Counter(
            "braze_proxy_coalesced_requests_total",
            "Requests answered by another request's upstream call (scope: process, cluster)",
            ["scope"],
            registry=r,
        )
        self.stale_served = Counter(
            "braze_proxy_stale_served_total",
            "Stale answers served, by reason (revalidate, upstream_error, timeout, rate_limited, unavailable)",
            ["reason"],
            registry=r,
        )
        self.refreshes = Counter(
            "braze_proxy_background_refreshes_total",
            "Background refreshes (stale-while-revalidate) by result (ok, error)",
            ["result"],
            registry=r,
        )
