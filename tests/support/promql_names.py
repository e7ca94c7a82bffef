"""What the monitoring artifacts may name: the series proxy.metrics exports, and those PromQL reads.

Used by the dashboard, alert and chart tests to prove that every metric a query names is one the proxy
actually exports (a renamed metric must break a test, not silently blank a panel or mute an alert).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from prometheus_client.metrics import MetricWrapperBase

from proxy.obs.metrics import Metrics

# Grafana's built-in interval variables, and what they stand for in a test.
GRAFANA_INTERVALS = ("__rate_interval", "__interval", "__range", "__range_s")
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


# Labels Prometheus adds to every scraped series (target labels) and those a query may always use.
TARGET_LABELS = frozenset({"__name__", "job", "instance", "namespace", "pod", "service", "container", "endpoint"})


def exported_series() -> dict[str, frozenset[str]]:
    """Every series name a fresh Metrics can export (counters' _total, histograms' parts, ...) -> its labels.
    (No `_created` series: the proxy turns them off.)

    The label names come from the metric objects themselves (prometheus_client keeps them in
    `_labelnames`; no public accessor exists), so a query grouping by a label the proxy never sets fails.
    """
    metrics = Metrics()
    labels = {
        metric._name: frozenset(metric._labelnames)
        for metric in vars(metrics).values()
        if isinstance(metric, MetricWrapperBase)
    }
    series: dict[str, frozenset[str]] = {}
    for family in metrics.registry.collect():
        # The process, platform and GC collectors are not wrappers: their labels are those of their samples.
        own = labels.get(family.name) or frozenset(k for sample in family.samples for k in sample.labels)
        if family.type == "counter":
            series |= {family.name + "_total": own}
        elif family.type == "histogram":
            series |= {family.name + "_bucket": own | {"le"}}
            series |= {family.name + "_sum": own, family.name + "_count": own}
        elif family.type == "gauge":
            series[family.name] = own
        else:  # summaries are not used here (histograms only); anything else is new to this helper
            raise AssertionError(f"unexpected metric type {family.type} for {family.name}")
    return series


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """`expr` with Grafana's $var, ${var}, ${var:fmt} and [[var]] replaced from `values` (KeyError if unknown)."""

    def one(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group is not None)
        return values[name]

    return _VARIABLE.sub(one, expr)


def selectors(promql: Any, parsed: Any) -> list[tuple[str | None, dict[str, str]]]:
    """(metric name, {label: matched value}) of every vector selector in `parsed` (a promql_parser Expr)."""
    found: list[tuple[str | None, dict[str, str]]] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql.VectorSelector):
            matchers = {m.name: m.value for m in node.matchers.matchers}
            found.append((node.name or matchers.get("__name__"), matchers))

    promql.walk(parsed, visit)
    return found
