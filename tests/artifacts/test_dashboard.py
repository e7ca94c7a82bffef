"""The Grafana dashboard (config/grafana-dashboard.json): every query parses and reads what the proxy exports.

That the queries return data against a real Prometheus is tests/processes/test_prometheus_scrape.py's job.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.external_tools import module
from tests.support.promql_names import GRAFANA_INTERVALS, TARGET_LABELS, exported_series, selectors, substitute

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "config" / "grafana-dashboard.json"
METRICS_DOC = REPO / "docs" / "metrics.md"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# What a query looks like in a test: the "All" value of each variable, and a plausible interval.
VARIABLES = ("namespace", "job", "pod", "instance")
TEST_VALUES = dict.fromkeys(VARIABLES, ".*") | dict.fromkeys(GRAFANA_INTERVALS, "1m")
# Series the dashboard may leave out, and why.
NOT_ON_THE_DASHBOARD = {
    "braze_proxy_upstream_rate_limit_reset_timestamp_seconds": "diagnostic: when Braze's window resets",
    "braze_proxy_access_log_dropped_lines_total": "diagnostic: above zero only while stderr is blocked or closed",
    "braze_proxy_probation_tokens": "diagnostic: the pool's grants and refusals are on the dashboard; its tokens exist"
    " only once a key on probation asked (pass-through mode)",
}
# The views issue 4 asks for, and a word each panel title covering it must contain.
REQUIRED_VIEWS = {
    "request rate by cache status": "by cache status",
    "hit ratio": "hit ratio",
    "stale rate": "stale",
    "collapsed rate": "collapsed",
    "latency quantiles": "latency quantiles",
    "upstream calls against the budget": "against the budget",
    "upstream 429s and errors": "429s and errors",
    "tokens left": "tokens left",
    "Redis errors": "errors (redis)",
    # issue 14: what clients see, who asks, and how full the processes are
    "error ratio": "error ratio",
    "teams": "by team",
    "Redis state": "redis state",
    "calls and hits per endpoint": "by endpoint (braze_endpoint)",
    "CPU": "cpu",
    "memory": "memory",
    "restarts": "restarts",
    "open file descriptors": "open file descriptors",
    # issue 24: for on-call
    "errors per endpoint": "errors by endpoint",
    "percent of budget used per group": "budget used by group (%)",
    "per-team headroom": "team headroom",
    "the managed key refused": "managed key refused",
}
# The rows each panel sits under (a panel belongs to the last row above it).
REQUIRED_ROWS = ("summary", "teams", "cache and redis", "windows assembled from buckets", "saturation (processes)")


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def query_panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def panel_queries() -> list[tuple[str, str]]:
    """(panel title / refId, expr) of every query on the dashboard."""
    return [
        (f"{panel['title']} / {target['refId']}", target["expr"])
        for panel in query_panels()
        for target in panel["targets"]
    ]


def test_variables_datasource_namespace_job_pod_and_instance() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert set(variables) == {"datasource", *VARIABLES}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    series = exported_series()
    for name in VARIABLES:
        variable = variables[name]
        assert variable["type"] == "query" and variable["datasource"] == DATASOURCE
        # "All" must also match series without the label (Prometheus outside Kubernetes has no namespace).
        assert variable["includeAll"] and variable["allValue"] == ".*"
        match = re.fullmatch(r"label_values\((\w+)(\{.*\})?, (\w+)\)", variable["query"]["query"])
        assert match is not None and match[3] == name
        assert match[1] in series


def test_layout_ids_unique_and_panels_inside_the_grid_without_overlap() -> None:
    panels = dashboard()["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_the_rows_the_issue_asks_for_are_there() -> None:
    rows = {panel["title"].lower() for panel in dashboard()["panels"] if panel["type"] == "row"}
    assert set(REQUIRED_ROWS) - rows == set()


def test_every_panel_uses_the_datasource_variable() -> None:
    for panel in query_panels():
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]


def test_the_views_the_issue_asks_for_are_there() -> None:
    titles = [panel["title"].lower() for panel in query_panels()]
    missing = [view for view, word in REQUIRED_VIEWS.items() if not any(word in title for title in titles)]
    assert missing == []


@pytest.mark.parametrize(("where", "expr"), panel_queries(), ids=[where for where, _ in panel_queries()])
def test_query_parses_and_reads_only_exported_metrics(where: str, expr: str) -> None:
    promql = module("promql_parser", "pip install promql-parser")
    parsed = promql.parse(substitute(expr, TEST_VALUES))  # raises on a syntax error
    series = exported_series()
    found = selectors(promql, parsed)
    assert found
    for name, matchers in found:
        assert name in series, f"{where} reads {name!r}, which proxy/metrics.py does not export"
        assert set(matchers) - series[name] - TARGET_LABELS == set(), f"{where}: unknown labels on {name}"
    # Every selector narrows to the chosen namespace, job, pod and instance (checked before substitution).
    for variable in VARIABLES:
        chosen = promql.parse(substitute(expr, {**TEST_VALUES, variable: "CHOSEN"}))
        for name, matchers in selectors(promql, chosen):
            assert matchers.get(variable) == "CHOSEN", f"{where}: {name} ignores ${variable}"


def test_grouping_labels_exist_on_the_metrics_grouped() -> None:
    promql = module("promql_parser", "pip install promql-parser")
    series = exported_series()
    for where, expr in panel_queries():
        parsed = promql.parse(substitute(expr, TEST_VALUES))
        names = {name for name, _ in selectors(promql, parsed)}
        available = set().union(*(series[name] for name in names)) | TARGET_LABELS
        for grouped in re.findall(r"\bby \(([^)]*)\)", str(parsed)):
            labels = {label.strip() for label in grouped.split(",") if label.strip()}
            assert labels <= available, f"{where} groups by {labels - available}, which its metrics lack"


def test_every_exported_metric_is_on_the_dashboard() -> None:
    promql = module("promql_parser", "pip install promql-parser")
    read = set()
    for _, expr in panel_queries():
        read |= {name for name, _ in selectors(promql, promql.parse(substitute(expr, TEST_VALUES)))}
    # A histogram shows through its _bucket series; its _sum, _count and _created need no panel.
    wanted = {name for name in exported_series() if not name.endswith(("_created", "_sum", "_count"))}
    unshown = wanted - read - set(NOT_ON_THE_DASHBOARD)
    assert unshown == set(), "metrics the dashboard does not show (add a panel or a reason)"


def test_every_metric_is_documented_in_the_metrics_table() -> None:
    doc = METRICS_DOC.read_text()
    rows = set(re.findall(r"^\| `((?:braze_proxy|process|python)_\w+)` \| (counter|gauge|histogram) \|", doc, re.M))
    documented = {name for name, _ in rows}
    families = set()
    for name in exported_series():
        if name.endswith("_bucket"):
            families.add(name.removesuffix("_bucket"))
        elif not name.endswith(("_created", "_sum", "_count")):
            families.add(name)
    assert families - documented == set(), "metrics missing from docs/metrics.md's table"
    assert documented - families == set(), "docs/metrics.md lists metrics the proxy does not export"
    kinds, series = {name: kind for name, kind in rows}, exported_series()
    for name in families:  # the type column tells the truth (counters are listed by their _total name)
        exported = "histogram" if name + "_bucket" in series else "gauge"
        assert kinds[name] == ("counter" if name.endswith("_total") else exported), name


def test_a_summary_row_opens_the_dashboard() -> None:
    """Issue 24: on-call sees request rate, hit ratio, errors and budget used before scrolling."""
    panels = sorted(dashboard()["panels"], key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"]))
    assert panels[0]["type"] == "row" and panels[0]["title"] == "Summary"
    summary = []
    for panel in panels[1:]:
        if panel["type"] == "row":
            break
        summary.append(panel["title"].lower())
    for word in ("request rate", "hit ratio", "errors", "budget used"):
        assert any(word in title for title in summary), (word, summary)


def test_calls_are_set_against_the_budget_they_spend() -> None:
    """Issue 24: the panel summed every call against each group's budget (two different things)."""
    for panel in query_panels():
        for target in panel["targets"]:
            if "braze_proxy_upstream_requests_total" in target["expr"] and "budget" in panel["title"].lower():
                assert "by (workspace, group)" in target["expr"], panel["title"]
