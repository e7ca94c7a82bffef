"""The metric objects, on a registry of their own (no module-level globals).

Recorded by the shells (web.py, service.py) from decisions' results, never from pure code.
Labels are bounded sets only: never a key, an app_id, a segment_id or a credential.
"""

from __future__ import annotations

import os
import platform
from bisect import bisect_left

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from proxy import __version__

# Set (by `--workers N`'s supervisor) before prometheus_client is imported: values then live in files there,
# one per process, and /metrics adds them up across the workers.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class BatchedCounter:
    """A counter child for the hot path: `inc()` adds to a plain int; `flush()` hands the sum to Prometheus.

    A Prometheus `inc()` takes a lock (and, with several workers, writes a file-backed page); a hit should
    not pay that every time.
    """

    __slots__ = ("_child", "pending")

    def __init__(self, child: Counter) -> None:
        self._child = child
        self.pending = 0

    def inc(self) -> None:
        self.pending += 1

    def flush(self) -> None:
        if self.pending:
            pending, self.pending = self.pending, 0
            self._child.inc(pending)


class BatchedHistogram:
    """A histogram child for the hot path: `observe()` counts into a plain list; `flush()` adds the counts."""

    __slots__ = ("_bounds", "_child", "_counts", "_sum")

    def __init__(self, child: Histogram) -> None:
        self._child = child
        self._bounds: list[float] = list(child._upper_bounds)  # ends with +Inf
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0

    def observe(self, seconds: float) -> None:
        self._counts[bisect_left(self._bounds, seconds)] += 1  # the first bucket with seconds <= bound
        self._sum += seconds

    def flush(self) -> None:
        # prometheus_client keeps one (non-cumulative) value per bucket, and their sum: add to them in bulk.
        for i, count in enumerate(self._counts):
            if count:
                self._child._buckets[i].inc(count)
                self._counts[i] = 0
        if self._sum:
            self._child._sum.inc(self._sum)
            self._sum = 0.0


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._batched: list[BatchedCounter | BatchedHistogram] = []
        r = self.registry
        self.build_info = Gauge(
            "braze_proxy_build_info", "Build of the running proxy (always 1)", ["version", "python"], registry=r,
            multiprocess_mode="max",
        )  # fmt: skip
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
        self.inflight = Gauge(
            "braze_proxy_inflight_requests", "Requests being answered now", registry=r, multiprocess_mode="livesum"
        )

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
            "braze_proxy_cache_entries", "Entries held in process (l1, memory)", ["store"], registry=r,
            multiprocess_mode="livesum",
        )  # fmt: skip
        self.redis_up = Gauge(
            "braze_proxy_redis_up", "1 when Redis is configured and reachable, 0 while degraded", registry=r,
            multiprocess_mode="livemin",  # with several workers: 0 if any of them cannot reach Redis
        )  # fmt: skip

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
            registry=r, multiprocess_mode="mostrecent",
        )  # fmt: skip
        self.upstream_rate_limit = Gauge(
            "braze_proxy_upstream_rate_limit_limit", "X-RateLimit-Limit as Braze last reported it", registry=r,
            multiprocess_mode="mostrecent",
        )  # fmt: skip
        self.upstream_rate_reset = Gauge(
            "braze_proxy_upstream_rate_limit_reset_timestamp_seconds",
            "X-RateLimit-Reset as Braze last reported it (epoch seconds)",
            registry=r,
            multiprocess_mode="mostrecent",
        )

        # budget
        self.budget_per_hour = Gauge(
            "braze_proxy_rate_limit_budget_per_hour", "Configured upstream calls per hour", registry=r,
            multiprocess_mode="max",
        )  # fmt: skip
        self.tokens = Gauge(
            "braze_proxy_rate_limit_tokens", "Tokens left in the shared bucket after the last take", registry=r,
            multiprocess_mode="mostrecent",
        )  # fmt: skip
        self.token_waits = Counter("braze_proxy_rate_limit_waits_total", "Requests that waited for a token", registry=r)
        self.token_wait_seconds = Histogram(
            "braze_proxy_rate_limit_wait_seconds",
            "How long requests waited for a token",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0),
            registry=r,
        )
        self.token_rejections = Counter(
            "braze_proxy_rate_limit_rejections_total",
            "Upstream calls not made for want of budget, by reason (tokens, upstream_remaining, upstream_429)",
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

    def batched_counter(self, child: Counter) -> BatchedCounter:
        """A hot-path view of `child` (a labelled counter), folded in by `flush()`."""
        batched = BatchedCounter(child)
        self._batched.append(batched)
        return batched

    def batched_histogram(self, child: Histogram) -> BatchedHistogram:
        """A hot-path view of `child` (a labelled histogram), folded in by `flush()`."""
        batched = BatchedHistogram(child)
        self._batched.append(batched)
        return batched

    def flush(self) -> None:
        """Fold what the hot path counted into the Prometheus metrics (before a scrape; every second)."""
        for batched in self._batched:
            batched.flush()

    def exposition(self) -> tuple[bytes, str]:
        """(body, content type) of /metrics: this process's metrics, or with `--workers N` every worker's."""
        self.flush()
        path = os.environ.get(MULTIPROC_ENV)
        if not path:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
