"""The alert rules (config/prometheus-alerts.yml), checked by promtool and against the proxy's metrics."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.external_tools import binary, module
from tests.support.promql_names import TARGET_LABELS, exported_series, selectors

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "config" / "prometheus-alerts.yml"
RULE_TESTS = REPO / "config" / "prometheus-alerts.test.yml"
RUNBOOKS = REPO / "docs" / "runbooks"
# The chart replaces this base by metrics.prometheusRule.runbookBaseUrl (templates/prometheusrule.yaml).
RUNBOOK_BASE = "https://braze-proxy.example/runbooks/"
PROMTOOL_INSTALL = "apt-get install -y --no-install-recommends prometheus"

# The troubles issues 4 and 14 ask an alert for, and the alert that covers each.
REQUIRED_ALERTS = {
    "errors clients see (5xx and 429)": "BrazeProxyErrorRatioHigh",
    "no proxy scraped at all": "BrazeProxyAbsent",
    "a target down": "BrazeProxyTargetDown",
    "Braze's own count nearly spent": "BrazeProxyUpstreamQuotaNearlySpent",
    "Redis refusing writes": "BrazeProxyRedisDegradedWrites",
    "a team refused": "BrazeProxyTeamRefused",
    "budget nearly spent": "BrazeProxyUpstreamBudgetNearlySpent",
    "upstream errors": "BrazeProxyUpstreamErrors",
    "upstream 429s": "BrazeProxyUpstreamRateLimited",
    "Redis unreachable": "BrazeProxyRedisDown",
    "hit ratio collapsed": "BrazeProxyHitRatioCollapsed",
    "stale serving for too long": "BrazeProxyServingStale",
    "latency high": "BrazeProxyLatencyHigh",
    # issue 24
    "Braze refusing the proxy's own key (upstream 401/403 in managed mode)": "BrazeProxyManagedKeyRefused",
    "label mismatches (a wrong reporting time zone)": "BrazeProxyLabelMismatch",
    "in-process evictions (the memory bound too small)": "BrazeProxyCacheEvicting",
}
# Only what clients feel pages: errors they see (or will see on every miss: the proxy's own key refused), or no
# proxy at all. Everything else still answers (from cache,
# stale, degraded) and is a warning; Redis down under the `closed` outage policy pages through the error ratio.
CRITICAL = {"BrazeProxyErrorRatioHigh", "BrazeProxyAbsent", "BrazeProxyManagedKeyRefused"}
# Ratios of rates need a floor of traffic (three requests at night must not page): the alerts that divide.
TRAFFIC_GUARDED = {
    "BrazeProxyErrorRatioHigh",
    "BrazeProxyLatencyHigh",
    "BrazeProxyUpstreamErrors",
    "BrazeProxyHitRatioCollapsed",
}
# Gauges set only when Braze answers, and the series that says whether they still describe the present.
STALE_GAUGES = ("braze_proxy_upstream_rate_limit_remaining", "braze_proxy_upstream_rate_limit_limit")
FRESHNESS = "braze_proxy_upstream_rate_limit_reset_timestamp_seconds > time()"
# Prometheus' own series an alert may read besides the proxy's: whether a target answered its scrape.
PROMETHEUS_SERIES = {"up": frozenset()}


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    command = [binary("promtool", PROMTOOL_INSTALL), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, cwd=REPO)


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_test_that_fires_it_and_one_that_keeps_it_quiet() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fires == set(), "alerts no unit test makes fire"
    assert names - quiet == set(), "alerts no unit test keeps quiet"
    assert (fires | quiet) - names == set(), "unit tests of alerts that do not exist"


def test_the_alerts_the_issue_asks_for_exist() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    missing = {trouble: alert for trouble, alert in REQUIRED_ALERTS.items() if alert not in names}
    assert missing == {}


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_is_documented_and_labelled(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert re.fullmatch(r"BrazeProxy[A-Za-z]+", name)
    assert rule["labels"]["severity"] == ("critical" if name in CRITICAL else "warning")
    assert rule.get("for"), "an alert without `for` pages on a single bad evaluation"
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert "{{ $labels.job }}" in annotations["summary"]
    assert "$value" in annotations["description"], "say how bad it is: $value"
    # Absolute, under the base the chart knows how to replace, and a page of the docs site at that path.
    assert annotations["runbook_url"] == f"{RUNBOOK_BASE}{name}/"
    runbook = RUNBOOKS / f"{name}.md"
    assert runbook.is_file(), f"no runbook page {runbook.relative_to(REPO)}"
    assert runbook.read_text().splitlines()[0] == f"# {name}"


def test_ratio_alerts_need_a_minimum_of_traffic() -> None:
    for rule in alert_rules():
        if rule["alert"] in TRAFFIC_GUARDED:
            assert re.search(r"\band\s+sum by \([^)]*\) \(rate\([^)]*\)\) > [0-9.]+\s*$", rule["expr"]), rule["alert"]


def test_no_alert_reads_a_stale_gauge_on_its_own() -> None:
    for rule in alert_rules():
        if any(gauge in rule["expr"] for gauge in STALE_GAUGES):
            assert FRESHNESS in rule["expr"], f"{rule['alert']} reads Braze's last report without its age"


def test_the_chart_values_name_existing_alerts() -> None:
    values = yaml.safe_load((REPO / "helm" / "braze-proxy" / "ci" / "all-on-values.yaml").read_text())
    named = set(values["metrics"]["prometheusRule"]["alerts"])
    assert named and named <= {rule["alert"] for rule in alert_rules()}


def test_every_runbook_page_belongs_to_an_alert() -> None:
    pages = {page.stem for page in RUNBOOKS.glob("*.md")} - {"index"}
    assert pages == {rule["alert"] for rule in alert_rules()}


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_reads_only_metrics_and_labels_the_proxy_exports(rule: dict[str, Any]) -> None:
    promql = module("promql_parser", "pip install promql-parser")
    series = exported_series() | PROMETHEUS_SERIES
    for name, matchers in selectors(promql, promql.parse(rule["expr"])):
        assert name in series, f"{rule['alert']} reads {name!r}, which proxy/metrics.py does not export"
        unknown = set(matchers) - series[name] - TARGET_LABELS
        assert unknown == set(), f"{rule['alert']} matches labels {name} does not have"


def test_the_budget_alert_is_tested_firing_for_the_default_group_and_another() -> None:
    """Issue 24: the alert divided all calls by every group's budget together, and its tests fed one group."""
    fired: set[tuple[str, str]] = set()
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            if check["alertname"] == "BrazeProxyUpstreamBudgetNearlySpent":
                fired |= {(a["exp_labels"]["workspace"], a["exp_labels"]["group"]) for a in check.get("exp_alerts", [])}
    assert ("default", "default") in fired
    assert any(group != "default" for _, group in fired), fired


def test_the_team_refused_runbook_points_at_what_is_true() -> None:
    """Issue 24: it said the access log shows parameters (it never does) and sent readers to BUDGET_GROUPS for
    team shares (they are the weights in CLIENT_TOKENS)."""
    page = (RUNBOOKS / "BrazeProxyTeamRefused.md").read_text()
    assert "endpoint and parameters" not in page and "never hold the parameters" in page
    assert "BRAZE_PROXY_CLIENT_TOKENS" in page and "name:token:weight" in page
