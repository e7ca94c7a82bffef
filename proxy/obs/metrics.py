"""The metric families, declared as data, on a registry of their own (no module-level globals).

Recorded by the shells from decisions' results, never from pure code. Labels are bounded sets only: never
a key, an app_id, a segment_id or a credential; `team` is a configured team name (or one shared label),
`workspace` a configured workspace name, `braze_endpoint` one of the routed endpoints' names.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import prometheus_client
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from proxy import __version__
from proxy.obs.procstats import GcCounters, ProxyProcesses

# Set (by `--workers N`'s supervisor) before prometheus_client is imported: values then live in files there,
# one per process, and /metrics adds them up across the workers.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)

# The batched histogram adds to prometheus_client's per-bucket values directly (no public API does bulk
# adds): fail at import, loudly, if a release moves them, rather than export zeros.
_probe = Histogram("braze_proxy_probe", "internals check", registry=None)
if not all(hasattr(_probe, name) for name in ("_upper_bounds", "_buckets", "_sum")):  # pragma: no cover
    raise ImportError("prometheus_client's Histogram internals changed: proxy.metrics.BatchedHistogram needs updating")
del _probe

# No `_created` series: they double the series count for nothing.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class Family:
    attr: str
    kind: type[Counter] | type[Gauge] | type[Histogram]
    name: str
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None
    mode: str = "all"  # a gauge's aggregation across --workers processes

    def build(self, registry: CollectorRegistry) -> Any:
        kwargs: dict[str, Any] = {"registry": registry}
        if self.kind is Histogram:
            kwargs["buckets"] = self.buckets
        if self.kind is Gauge:
            kwargs["multiprocess_mode"] = self.mode
        return self.kind(self.name, self.help, list(self.labels), **kwargs)


C, G, H = Counter, Gauge, Histogram
EP = "braze_endpoint"
FAMILIES: tuple[Family, ...] = (
    Family("build_info", G, "braze_proxy_build_info", "Build of the running proxy (always 1)", ("version",),
           mode="max"),
    # RED
    Family("requests", C, "braze_proxy_requests", "Requests answered, by endpoint, cache outcome and status code",
           (EP, "cache", "code")),
    Family("request_duration", H, "braze_proxy_request_duration_seconds",
           "Time to answer a request, by endpoint and cache outcome", (EP, "cache"), LATENCY_BUCKETS),
    Family("inflight", G, "braze_proxy_inflight_requests", "Requests being answered now", mode="livesum"),
    Family("access_log_dropped", C, "braze_proxy_access_log_dropped_lines",
           "Access-log lines dropped because stderr did not take them (blocked or closed)"),
    # cache
    Family("cache_ops", C, "braze_proxy_cache_operations",
           "Cache store operations by store (l1, memory, redis, series), operation and result",
           ("store", "op", "result")),
    Family("cache_op_duration", H, "braze_proxy_cache_operation_duration_seconds", "Latency of cache store operations",
           ("store", "op"), REDIS_BUCKETS),
    Family("cache_entries", G, "braze_proxy_cache_entries", "Entries held in process (l1, memory, series)",
           ("store",), mode="livesum"),
    Family("cache_bytes", G, "braze_proxy_cache_bytes", "Bytes held in process (l1, memory, series)", ("store",),
           mode="livesum"),
    Family("cache_evictions", C, "braze_proxy_cache_evictions",
           "Entries dropped from an in-process cache to make room (l1, memory, series)", ("store",)),
    Family("redis_up", G, "braze_proxy_redis_up",
           "1 while Redis answers (writes may still be refused: see redis_state), 0 while unreachable",
           mode="livemin"),
    Family("redis_state", G, "braze_proxy_redis_state",
           "1 for the current Redis state (up, degraded_writes, down), 0 for the others", ("state",), mode="livemax"),
    # upstream
    Family("upstream_requests", C, "braze_proxy_upstream_requests",
           "Calls to Braze by endpoint, the workspace and budget group they spent, and outcome: the HTTP status code,"
           " or timeout / error", (EP, "workspace", "group", "code")),
    Family("upstream_duration", H, "braze_proxy_upstream_request_duration_seconds", "Latency of calls to Braze",
           (EP,), LATENCY_BUCKETS),
    Family("upstream_retries", C, "braze_proxy_upstream_retries", "Retries of failed upstream calls", (EP,)),
    Family("managed_key_refusals", C, "braze_proxy_managed_key_refusals",
           "Calls Braze answered 401/403 to the proxy's own API key (managed-key mode), by workspace: clients got 502",
           ("workspace",)),
    Family("upstream_rate_remaining", G, "braze_proxy_upstream_rate_limit_remaining",
           "X-RateLimit-Remaining as Braze last reported it", ("workspace",), mode="mostrecent"),
    Family("upstream_rate_limit", G, "braze_proxy_upstream_rate_limit_limit",
           "X-RateLimit-Limit as Braze last reported it", ("workspace",), mode="mostrecent"),
    Family("upstream_rate_reset", G, "braze_proxy_upstream_rate_limit_reset_timestamp_seconds",
           "X-RateLimit-Reset as Braze last reported it (epoch seconds)", ("workspace",), mode="mostrecent"),
    # budget
    Family("budget_rate", G, "braze_proxy_budget_calls_per_second",
           "Configured upstream calls per second, by workspace and budget group", ("workspace", "group"), mode="max"),
    Family("tokens", G, "braze_proxy_rate_limit_tokens", "Tokens left in the shared bucket after the last take",
           ("workspace", "group"), mode="mostrecent"),
    Family("token_waits", C, "braze_proxy_rate_limit_waits", "Requests that waited for a token"),
    Family("token_wait_seconds", H, "braze_proxy_rate_limit_wait_seconds", "How long requests waited for a token",
           buckets=WAIT_BUCKETS),
    Family("token_rejections", C, "braze_proxy_rate_limit_rejections",
           "Upstream calls not made for want of budget, by reason (tokens, team_share, upstream_remaining, "
           "upstream_429, probation)", ("reason",)),
    # the probation pool: pass-through keys Braze has not yet accepted
    Family("probation_tokens", G, "braze_proxy_probation_tokens",
           "Tokens left in the probation pool after the last take", ("workspace", "group"), mode="mostrecent"),
    Family("probation_grants", C, "braze_proxy_probation_grants",
           "Tokens the probation pool granted to keys Braze has not yet accepted", ("workspace", "group")),
    Family("probation_refusals", C, "braze_proxy_probation_refusals",
           "Calls of keys Braze has not yet accepted refused because the probation pool was spent (429)",
           ("workspace", "group")),
    Family("probation_accepted", C, "braze_proxy_probation_accepted",
           "Calls on probation Braze answered with a success: their key leaves the pool for the fair share"),
    # teams
    Family("team_requests", C, "braze_proxy_team_requests", "Requests by team", ("team",)),
    Family("team_hits", C, "braze_proxy_team_hits", "Requests answered without an upstream call of their own, by team",
           ("team",)),
    Family("team_upstream_calls", C, "braze_proxy_team_upstream_calls", "Calls to Braze made for a team", ("team",)),
    Family("team_weight", G, "braze_proxy_team_weight",
           "A team's configured weight: its share of a contended budget is its weight over the active teams' sum",
           ("team",), mode="max"),
    Family("team_refusals", C, "braze_proxy_team_refusals", "Requests refused for want of budget (429), by team",
           ("team",)),
    Family("remembered_refusals", C, "braze_proxy_remembered_refusals",
           "Requests answered with a 401/403 Braze gave the same credential a moment ago (no upstream call)"),
    # coalescing and stale
    Family("coalesced", C, "braze_proxy_coalesced_requests",
           "Requests answered by another request's upstream call (scope: process, cluster)", ("scope",)),
    Family("stale_served", C, "braze_proxy_stale_served",
           "Stale answers served, by reason (revalidate, upstream_error, timeout, rate_limited, unavailable)",
           ("reason",)),
    Family("refreshes", C, "braze_proxy_background_refreshes",
           "Background refreshes (stale-while-revalidate) by result (ok, error)", ("result",)),
    # windows assembled from buckets
    Family("series_buckets", C, "braze_proxy_series_buckets",
           "Buckets in answers, by source (store: kept from an earlier call; fetched: by this answer's call)",
           ("source",)),
    Family("calls_avoided", C, "braze_proxy_upstream_calls_avoided",
           "Questions answered by assembling buckets kept from other questions' calls"),
    Family("widened_fetches", C, "braze_proxy_widened_fetches",
           "Upstream calls widened to the endpoint's longest window"),
    Family("label_mismatches", C, "braze_proxy_label_mismatches",
           "Answers whose time labels were not the buckets expected (a reporting time zone that differs from the "
           "workspace's): answered by an exact call instead", ("unit",)),
    # day-2 operations (docs/operations.md)
    Family("admin_actions", C, "braze_proxy_admin_actions",
           "Admin API requests by action (purge, warm, cache, teams) and result (ok, invalid, unauthorized, error)",
           ("action", "result")),
    Family("purged", C, "braze_proxy_purged_entries", "Entries and stored series dropped by admin purges"),
    Family("warm_questions", C, "braze_proxy_warm_questions",
           "Questions warmed in the background by result (ok, skipped: no spare budget, error)", ("result",)),
    Family("refresh_ahead", C, "braze_proxy_refresh_ahead",
           "Refreshes ahead of expiry by result (ok, skipped: no spare budget, peer: another replica's, error)",
           ("result",)),
    Family("team_share_remaining", G, "braze_proxy_team_share_remaining",
           "Upstream calls left this hour in a team's share (X-RateLimit-Remaining), by workspace, group and team",
           ("workspace", "group", "team"), mode="mostrecent"),
    Family("tokens_file_malformed", G, "braze_proxy_client_tokens_file_malformed",
           "1 while the client tokens file last read is malformed and ignored (the previous teams stay in force),"
           " else 0", mode="livemax"),
    Family("tokens_file_reloads", C, "braze_proxy_client_tokens_file_reloads",
           "Reads of a changed client tokens file (or on SIGHUP) by result (ok, malformed)", ("result",)),
)  # fmt: skip


class BatchedCounter:
    """A counter child for the hot path: `inc()` adds to a plain int; `flush()` hands the sum to Prometheus.

    A Prometheus `inc()` takes a lock (and, with several workers, writes a file-backed page); a hit should
    not pay that every time.
    """

    __slots__ = ("_child", "pending")

    def __init__(self, child: Counter) -> None:
        self._child = child
        self.pending = 0

    def inc(self, amount: int = 1) -> None:
        self.pending += amount

    def flush(self) -> None:
        if self.pending:
            pending, self.pending = self.pending, 0
            self._child.inc(pending)


class BatchedGauge:
    """A gauge for the hot path: `inc()`/`dec()` move a plain int; `flush()` hands the change to Prometheus, so a
    scrape (which flushes first) reads the exact value."""

    __slots__ = ("_child", "pending")

    def __init__(self, child: Gauge) -> None:
        self._child = child
        self.pending = 0

    def inc(self) -> None:
        self.pending += 1

    def dec(self) -> None:
        self.pending -= 1

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
    build_info: Gauge
    requests: Counter
    request_duration: Histogram
    inflight: Gauge
    access_log_dropped: Counter
    cache_ops: Counter
    cache_op_duration: Histogram
    cache_entries: Gauge
    cache_bytes: Gauge
    cache_evictions: Counter
    redis_up: Gauge
    redis_state: Gauge
    upstream_requests: Counter
    upstream_duration: Histogram
    upstream_retries: Counter
    managed_key_refusals: Counter
    upstream_rate_remaining: Gauge
    upstream_rate_limit: Gauge
    upstream_rate_reset: Gauge
    budget_rate: Gauge
    tokens: Gauge
    token_waits: Counter
    token_wait_seconds: Histogram
    token_rejections: Counter
    probation_tokens: Gauge
    probation_grants: Counter
    probation_refusals: Counter
    probation_accepted: Counter
    team_requests: Counter
    team_hits: Counter
    team_upstream_calls: Counter
    team_refusals: Counter
    team_weight: Gauge
    remembered_refusals: Counter
    coalesced: Counter
    stale_served: Counter
    refreshes: Counter
    series_buckets: Counter
    calls_avoided: Counter
    widened_fetches: Counter
    label_mismatches: Counter
    admin_actions: Counter
    purged: Counter
    warm_questions: Counter
    refresh_ahead: Counter
    team_share_remaining: Gauge
    tokens_file_malformed: Gauge
    tokens_file_reloads: Counter
    in_flight: BatchedGauge

    def __init__(self, registry: CollectorRegistry | None = None, multiprocess_dir: str | None = None) -> None:
        """`multiprocess_dir`: where the workers of `--workers N` keep their metrics (None: one process)."""
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._multiprocess_dir = multiprocess_dir
        self._batched: list[BatchedCounter | BatchedGauge | BatchedHistogram] = []
        for family in FAMILIES:
            setattr(self, family.attr, family.build(self.registry))
        self.build_info.labels(__version__).set(1)
        self.in_flight = self.batched_gauge(self.inflight)  # moved twice by every request that awaits: batched
        # With --workers, exposition() adds every process's own (procstats.py), and GC counts are counters here.
        self._gc = GcCounters(self.registry) if multiprocess_dir else None
        if self._gc is None:
            for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
                self.registry.register(collector)

    def initialise(self, labels: Mapping[str, Iterable[tuple[str, ...]]]) -> None:
        """Create the children of known label values at zero, so rates and alerts see them before their first
        event (`labels`: metric attribute -> label tuples)."""
        for attr, values in labels.items():
            metric = getattr(self, attr)
            for value in values:
                metric.labels(*value)

    def batched_counter(self, child: Counter) -> BatchedCounter:
        """A hot-path view of `child` (a labelled counter), folded in by `flush()`."""
        batched = BatchedCounter(child)
        self._batched.append(batched)
        return batched

    def batched_gauge(self, child: Gauge) -> BatchedGauge:
        """A hot-path view of `child` (a gauge moved by inc/dec), folded in by `flush()`."""
        batched = BatchedGauge(child)
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
        if self._gc is not None:
            self._gc.update()

    def exposition(self) -> tuple[bytes, str]:
        """(body, content type) of /metrics: this process's metrics, or with `--workers N` every worker's."""
        self.flush()
        path = self._multiprocess_dir
        if not path:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
        # Every process's own process_* (by pid), and the platform's python_info (the GC counts are in the files).
        registry.register(ProxyProcesses(path))
        registry.register(PLATFORM_COLLECTOR)
        return generate_latest(registry), CONTENT_TYPE_LATEST
