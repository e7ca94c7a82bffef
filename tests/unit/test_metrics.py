"""The metric families: declared as data, exported without `_created`, and batched views that record exactly what
direct recording would."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from proxy.obs.metrics import FAMILIES, LATENCY_BUCKETS, Metrics
from tests.support.load import metric


def test_a_batched_histogram_records_exactly_what_direct_recording_would() -> None:
    rnd = random.Random(5)
    values = [rnd.choice([0.0, 0.0005, 0.001, 30.0, 31.0]) if i % 7 == 0 else rnd.expovariate(50) for i in range(5000)]
    direct_registry, batched_registry = CollectorRegistry(), CollectorRegistry()
    direct = Histogram("h", "help", buckets=LATENCY_BUCKETS, registry=direct_registry)
    batched_metrics = Metrics(CollectorRegistry())
    batched = batched_metrics.batched_histogram(Histogram("h", "help", buckets=LATENCY_BUCKETS, registry=None))
    child = batched._child  # the histogram the batch folds into
    batched_registry.register(child)
    for i, value in enumerate(values):
        direct.observe(value)
        batched.observe(value)
        if i % 997 == 0:
            batched_metrics.flush()
    batched_metrics.flush()
    want, got = _samples(direct_registry), _samples(batched_registry)
    assert {k: v for k, v in got.items() if k[0] != "h_sum"} == {k: v for k, v in want.items() if k[0] != "h_sum"}
    assert got[("h_sum", "")] == pytest.approx(want[("h_sum", "")], rel=1e-12)  # added in another order
    assert got[("h_count", "")] == len(values)


def _samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    families = text_string_to_metric_families(generate_latest(registry).decode())
    return {(s.name, s.labels.get("le", "")): s.value for family in families for s in family.samples}


def test_a_batched_counter_adds_up_when_flushed() -> None:
    metrics = Metrics()
    batched = metrics.batched_counter(metrics.requests.labels("sessions", "hit", "200"))
    for _ in range(1234):
        batched.inc()
    text = generate_latest(metrics.registry).decode()
    assert metric(text, "braze_proxy_requests_total", cache="hit") in (None, 0.0)
    metrics.flush()
    assert metric(generate_latest(metrics.registry).decode(), "braze_proxy_requests_total", cache="hit") == 1234


def test_a_batched_counter_adds_amounts_and_the_in_flight_gauge_reads_exactly_after_a_flush() -> None:
    metrics = Metrics()
    buckets = metrics.batched_counter(metrics.series_buckets.labels("store"))
    buckets.inc(14)
    buckets.inc()
    for _ in range(5):
        metrics.in_flight.inc()
    metrics.in_flight.dec()
    assert metric(generate_latest(metrics.registry).decode(), "braze_proxy_inflight_requests") in (None, 0.0)
    metrics.flush()
    text = generate_latest(metrics.registry).decode()
    assert metric(text, "braze_proxy_inflight_requests") == 4
    assert metric(text, "braze_proxy_series_buckets_total", source="store") == 15
    for _ in range(4):
        metrics.in_flight.dec()
    metrics.flush()
    assert metric(generate_latest(metrics.registry).decode(), "braze_proxy_inflight_requests") == 0


def test_families_are_unique_and_exported_without_created_series() -> None:
    assert len({f.name for f in FAMILIES}) == len(FAMILIES) == len({f.attr for f in FAMILIES})
    metrics = Metrics()
    metrics.requests.labels("sessions", "hit", "200").inc()
    text = generate_latest(metrics.registry).decode()
    assert "_created" not in text
    assert "process_cpu_seconds_total" in text and "python_info" in text
    for family in FAMILIES:
        assert isinstance(getattr(metrics, family.attr), family.kind)


def test_known_label_values_start_at_zero() -> None:
    metrics = Metrics()
    metrics.initialise({"team_refusals": [("alpha",), ("beta",)]})
    text = generate_latest(metrics.registry).decode()
    assert metric(text, "braze_proxy_team_refusals_total", team="alpha") == 0.0
    assert metric(text, "braze_proxy_team_refusals_total", team="beta") == 0.0
