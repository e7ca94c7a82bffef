"""The alert rules (config/prometheus-alerts.yml), checked by promtool and against the proxy's metrics."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.external_tools import binary, module
from tests.promql_names import TARGET_LABELS, exported_series, selectors

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "config" / "prometheus-alerts.yml"
RULE_TESTS = REPO / "config" / "prometheus-alerts.test.yml"
MONITORING_DOC = REPO / "docs" / "monitoring.md"
PROMTOOL_INSTALL = "apt-get install -y --no-install-recommends prometheus"

# The troubles issue 4 asks an alert for, and the alert that covers each.
REQUIRED_ALERTS = {
    "budget nearly spent": "BrazeProxyUpstreamBudgetNearlySpent",
    "upstream errors": "BrazeProxyUpstreamErrors",
    "upstream 429s": "BrazeProxyUpstreamRateLimited",
    "Redis unreachable": "BrazeProxyRedisDown",
    "hit ratio collapsed": "BrazeProxyHitRatioCollapsed",
    "stale serving for too long": "BrazeProxyServingStale",
    "latency high": "BrazeProxyLatencyHigh",
}


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
    assert re.fullmatch(r"BrazeProxy[A-Za-z]+", rule["alert"])
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule.get("for"), "an alert without `for` pages on a single bad evaluation"
    annotations = rule["annotations"]
    assert set(annotations) >= {"summary", "description", "runbook"}
    anchor = rule["alert"].lower()
    assert annotations["runbook"] == f"docs/monitoring.md#{anchor}"
    headings = {
        line.lstrip("#").strip().lower() for line in MONITORING_DOC.read_text().splitlines() if line.startswith("#")
    }
    assert anchor in headings, f"docs/monitoring.md has no runbook section '### {rule['alert']}'"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_reads_only_metrics_and_labels_the_proxy_exports(rule: dict[str, Any]) -> None:
    promql = module("promql_parser", "pip install promql-parser")
    series = exported_series()
    for name, matchers in selectors(promql, promql.parse(rule["expr"])):
        assert name in series, f"{rule['alert']} reads {name!r}, which proxy/metrics.py does not export"
        unknown = set(matchers) - series[name] - TARGET_LABELS
        assert unknown == set(), f"{rule['alert']} matches labels {name} does not have"
