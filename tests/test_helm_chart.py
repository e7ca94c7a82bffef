"""The Helm chart (helm/braze-proxy), checked by Helm's own code and the Kubernetes 1.30 schemas.

helm-python-sdk carries Helm's Go SDK (no helm binary here): `lint` is `helm lint --strict`, `render` is
`helm template` (values.schema.json included). kubernetes-validate checks every manifest against the 1.30
OpenAPI schemas in strict mode (unknown fields fail). The Prometheus Operator's CRDs are outside those
schemas, so their structure is checked here and their rules go through promtool.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

import proxy
from proxy.settings import ENV_PREFIX, Settings
from tests.external_tools import binary, module

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "helm" / "braze-proxy"
ALL_ON = CHART / "ci" / "all-on-values.yaml"
KUBE_VERSION = "1.30"
RELEASE, NAMESPACE = "bp", "analytics"
FULLNAME = f"{RELEASE}-braze-proxy"
MONITORING_API = "monitoring.coreos.com/v1"
HELM_INSTALL = "pip install helm-python-sdk"

VALUE_SETS = {"default": None, "all-on": yaml.safe_load(ALL_ON.read_text())}
KINDS = {
    "default": {"ConfigMap", "Deployment", "Service", "ServiceAccount", "PodDisruptionBudget"},
    "all-on": {
        "ConfigMap",  # settings, and the Grafana dashboard
        "Deployment",
        "Service",
        "ServiceAccount",
        "PodDisruptionBudget",
        "Secret",
        "HorizontalPodAutoscaler",
        "ServiceMonitor",
        "PrometheusRule",
    },
}


@pytest.fixture(scope="module")
def helm() -> ModuleType:
    return module("helm_python", HELM_INSTALL)


@pytest.fixture(scope="module")
def chart(helm: ModuleType) -> Iterator[Any]:
    with helm.Chart.load(str(CHART)) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def kubernetes_validate() -> ModuleType:
    return module("kubernetes_validate", "pip install kubernetes-validate")


def render(chart: Any, values: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every object `helm template` would print for `values` (NOTES.txt aside)."""
    rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return [
        doc
        for path, text in sorted(rendered.items())
        if path.endswith((".yaml", ".yml"))
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def only(objects: list[dict[str, Any]], kind: str, name: str = FULLNAME) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (main,) = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return main


@pytest.fixture(scope="module", params=list(VALUE_SETS))
def rendered(request: pytest.FixtureRequest, chart: Any) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(chart, VALUE_SETS[request.param])


# --- Helm's own checks ----------------------------------------------------------------------------------


@pytest.mark.parametrize("values", list(VALUE_SETS))
def test_helm_lint_strict_is_clean(helm: ModuleType, values: str) -> None:
    report = helm.lint(str(CHART), VALUE_SETS[values], strict=True, kube_version=f"v{KUBE_VERSION}.0")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], "warnings fail --strict"


def test_renders_the_expected_objects(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    values, objects = rendered
    assert {o["kind"] for o in objects} == KINDS[values]
    assert all(o["metadata"]["namespace"] in (NAMESPACE, "monitoring") for o in objects)


def test_notes_render(chart: Any) -> None:
    for values in VALUE_SETS.values():
        notes = chart.render(values, name=RELEASE, namespace=NAMESPACE)["braze-proxy/templates/NOTES.txt"]
        assert f"{FULLNAME}.{NAMESPACE}.svc" in notes


# --- Kubernetes 1.30 schemas ------------------------------------------------------------------------------


def test_every_manifest_validates_strictly_against_kubernetes_1_30(
    rendered: tuple[str, list[dict[str, Any]]], kubernetes_validate: ModuleType
) -> None:
    _, objects = rendered
    checked = 0
    for obj in objects:
        if obj["apiVersion"] == MONITORING_API:
            continue  # CRDs: see the ServiceMonitor and PrometheusRule tests
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {path}: {error.message}")
        checked += 1
    assert checked >= 5


def test_the_validator_rejects_an_unknown_field(chart: Any, kubernetes_validate: ModuleType) -> None:
    deployment = only(render(chart, None), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)


# --- values.schema.json ------------------------------------------------------------------------------------

BAD_VALUES = {
    "unknown top-level key": {"replicas": 2},
    "zero replicas": {"replicaCount": 0},
    "replicas as text": {"replicaCount": "two"},
    "pull policy": {"image": {"pullPolicy": "Sometimes"}},
    "redis url scheme": {"redis": {"url": "http://redis:6379"}},
    "outage policy": {"redis": {"outagePolicy": "maybe"}},
    "upstream url": {"braze": {"upstreamUrl": "rest.iad-01.braze.com"}},
    "client tokens": {"braze": {"clientTokens": "no-colon-here"}},
    "log level": {"config": {"logLevel": "TRACE"}},
    "extra setting without the prefix": {"config": {"extra": {"TTL_OPEN_DAY": "60"}}},
    "extra setting not a string": {"config": {"extra": {"BRAZE_PROXY_TTL_OPEN_DAY": 60}}},
    "credential in the ConfigMap": {"config": {"extra": {"BRAZE_PROXY_API_KEY": "secret"}}},
    "port the probes do not follow": {"config": {"extra": {"BRAZE_PROXY_PORT": "9000"}}},
    "metrics port equal to the main port": {"metricsPort": 8080},
    "service port": {"service": {"port": 70000}},
    "root filesystem writable": {"securityContext": {"readOnlyRootFilesystem": False}},
    "privilege escalation": {"securityContext": {"allowPrivilegeEscalation": True}},
    "root user allowed": {"podSecurityContext": {"runAsNonRoot": False}},
    "scrape interval": {"metrics": {"serviceMonitor": {"interval": "often"}}},
    "pdb percentage": {"podDisruptionBudget": {"minAvailable": "half"}},
    "hpa max": {"autoscaling": {"maxReplicas": 0}},
    "unknown nested key": {"autoscaling": {"targetCPU": 50}},
    "preStop pause": {"lifecycle": {"preStopSleepSeconds": -1}},
}


@pytest.mark.parametrize("values", list(BAD_VALUES.values()), ids=list(BAD_VALUES))
def test_bad_values_fail_the_schema(helm: ModuleType, chart: Any, values: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmValuesError):
        chart.validate_schema(values)
    with pytest.raises(helm.HelmValuesError):  # and so `helm install` refuses them
        chart.render(values, name=RELEASE, namespace=NAMESPACE)


def test_good_values_pass_the_schema(chart: Any) -> None:
    for values in VALUE_SETS.values():
        chart.validate_schema(values)


@pytest.mark.parametrize(
    "values",
    [
        {"podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": 1}},
        {"lifecycle": {"preStopSleepSeconds": 5, "shutdownGraceSeconds": 20, "terminationGracePeriodSeconds": 25}},
    ],
    ids=["both pdb bounds", "grace period too short to drain"],
)
def test_contradictory_values_fail_to_render(helm: ModuleType, chart: Any, values: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmError):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)


# --- the Deployment ------------------------------------------------------------------------------------------


def test_pod_is_restricted(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    main = container(objects)
    security = main["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] > 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {"mountPath": "/tmp", "name": "tmp"} in main["volumeMounts"], "a writable /tmp"
    assert main["resources"]["requests"] and main["resources"]["limits"]["memory"]


def test_probes_and_ports(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    values, objects = rendered
    main = container(objects)
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert ports["http"] == 8080
    settings = only(objects, "ConfigMap")["data"]
    probe_port = "http"
    if values == "all-on":
        probe_port = "metrics"
        assert ports["metrics"] == int(settings["BRAZE_PROXY_METRICS_PORT"])
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": probe_port}
    assert main["startupProbe"]["httpGet"] == {"path": "/healthz", "port": probe_port}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": probe_port}
    assert settings["BRAZE_PROXY_PORT"] == "8080"


def test_termination_grace_outlasts_pre_stop_plus_drain(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    command = container(objects)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep", "the slim image has coreutils' sleep"
    drain = float(only(objects, "ConfigMap")["data"]["BRAZE_PROXY_SHUTDOWN_GRACE_SECONDS"])
    assert pod["terminationGracePeriodSeconds"] > int(command[1]) + drain


def test_expected_replicas_follow_replica_count_or_hpa_maximum(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    values, objects = rendered
    expected = only(objects, "ConfigMap")["data"]["BRAZE_PROXY_EXPECTED_REPLICAS"]
    deployment = only(objects, "Deployment")
    if values == "all-on":
        hpa = only(objects, "HorizontalPodAutoscaler")
        assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": FULLNAME}
        assert expected == str(hpa["spec"]["maxReplicas"])  # never more pods than the budget is split for
    else:
        assert expected == str(deployment["spec"]["replicas"])


def test_extra_settings_override_the_chart_defaults(chart: Any) -> None:
    values = {"config": {"extra": {"BRAZE_PROXY_EXPECTED_REPLICAS": "4", "BRAZE_PROXY_TTL_SETTLED": "3600"}}}
    data = only(render(chart, values), "ConfigMap")["data"]
    assert data["BRAZE_PROXY_EXPECTED_REPLICAS"] == "4" and data["BRAZE_PROXY_TTL_SETTLED"] == "3600"


def test_config_map_holds_only_real_settings_that_the_proxy_accepts(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    data = only(objects, "ConfigMap")["data"]
    env_names = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    assert set(data) - env_names == set(), "ConfigMap keys the proxy does not read"
    assert not {"BRAZE_PROXY_API_KEY", "BRAZE_PROXY_CLIENT_TOKENS", "BRAZE_PROXY_REDIS_URL"} & set(data)
    secrets = {v["name"] for v in container(objects).get("env", [])}
    assert secrets - env_names == set()
    # The proxy's own validation accepts what the chart writes (secret values stand in).
    fields = {key.removeprefix(ENV_PREFIX).lower(): value for key, value in data.items()}
    if "BRAZE_PROXY_CLIENT_TOKENS" in secrets:
        fields |= {"api_key": "k", "client_tokens": "team:t"}
    Settings(_env_file=None, **fields)


def test_credentials_come_from_the_chart_secret(chart: Any) -> None:
    objects = render(chart, VALUE_SETS["all-on"])
    secret = only(objects, "Secret")
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container(objects)["env"]}
    assert set(env) == {"BRAZE_PROXY_API_KEY", "BRAZE_PROXY_CLIENT_TOKENS", "BRAZE_PROXY_REDIS_URL"}
    for ref in env.values():
        assert ref["name"] == FULLNAME and ref["key"] in secret["data"]
    annotations = only(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert {"checksum/config", "checksum/secret"} <= set(annotations), "pods roll when settings change"


def test_existing_secrets_are_referenced_not_created(chart: Any) -> None:
    values = {
        "braze": {"existingSecret": "braze-credentials", "existingSecretKeys": {"apiKey": "key", "clientTokens": "t"}},
        "redis": {"existingSecret": "redis-credentials", "existingSecretKey": "url"},
    }
    objects = render(chart, values)
    assert [o for o in objects if o["kind"] == "Secret"] == []
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container(objects)["env"]}
    assert env["BRAZE_PROXY_API_KEY"] == {"name": "braze-credentials", "key": "key"}
    assert env["BRAZE_PROXY_CLIENT_TOKENS"] == {"name": "braze-credentials", "key": "t", "optional": True}
    assert env["BRAZE_PROXY_REDIS_URL"] == {"name": "redis-credentials", "key": "url"}


def test_pass_through_mode_by_default_has_no_credentials(chart: Any) -> None:
    objects = render(chart, None)
    assert "env" not in container(objects)
    assert [o for o in objects if o["kind"] == "Secret"] == []


def test_selectors_agree(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    deployment = only(objects, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    service = only(objects, "Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    port_names = {p["name"] for p in container(objects)["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    assert only(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector
    assert container(objects)["envFrom"] == [{"configMapRef": {"name": FULLNAME}}]
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    assert only(objects, "ServiceAccount", account)["automountServiceAccountToken"] is False


def test_chart_app_version_is_the_proxy_version(chart: Any) -> None:
    assert chart.metadata["appVersion"] == proxy.__version__
    assert container(render(chart, None))["image"] == f"braze-proxy:{proxy.__version__}"


# --- monitoring: ServiceMonitor, PrometheusRule, Grafana dashboard -------------------------------------------


def test_one_source_for_rules_and_dashboard() -> None:
    for name in ("prometheus-alerts.yml", "grafana-dashboard.json"):
        chart_copy = (CHART / "files" / name).read_bytes()
        assert chart_copy == (REPO / "config" / name).read_bytes(), f"cp config/{name} helm/braze-proxy/files/"


def test_service_monitor_scrapes_the_metrics_port(chart: Any) -> None:
    objects = render(chart, VALUE_SETS["all-on"])
    monitor = only(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == MONITORING_API
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    spec = monitor["spec"]
    assert set(spec) == {"selector", "namespaceSelector", "endpoints"}
    service = only(objects, "Service")
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = spec["endpoints"]
    allowed = {"port", "path", "scheme", "interval", "scrapeTimeout", "honorLabels", "relabelings"}
    assert set(endpoint) <= allowed | {"metricRelabelings"}
    assert endpoint["port"] == "metrics" and endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics" and endpoint["scheme"] == "http"
    assert endpoint["interval"] == "15s" and endpoint["scrapeTimeout"] == "5s"
    assert isinstance(endpoint["honorLabels"], bool)
    for relabel in endpoint["relabelings"] + endpoint["metricRelabelings"]:
        assert set(relabel) <= {"sourceLabels", "separator", "targetLabel", "regex", "modulus", "replacement", "action"}


def test_service_monitor_on_the_main_port_without_a_metrics_port(chart: Any) -> None:
    values = {"metrics": {"serviceMonitor": {"enabled": True}}}
    (endpoint,) = only(render(chart, values), "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["port"] == "http"


def test_prometheus_rule_carries_the_rules_file_and_promtool_accepts_it(chart: Any, tmp_path: Path) -> None:
    rule = only(render(chart, VALUE_SETS["all-on"]), "PrometheusRule")
    assert rule["apiVersion"] == MONITORING_API and set(rule["spec"]) == {"groups"}
    source = yaml.safe_load((REPO / "config" / "prometheus-alerts.yml").read_text())
    assert rule["spec"]["groups"] == source["groups"]
    for group in rule["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and group["rules"]
        for alert in group["rules"]:
            assert set(alert) == {"alert", "expr", "for", "labels", "annotations"}
            assert "{{ $labels.job }}" in alert["annotations"]["summary"], "Helm must not eat Prometheus templates"
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    promtool = binary("promtool", "apt-get install -y --no-install-recommends prometheus")
    result = subprocess.run(
        [promtool, "check", "rules", str(rules_file)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_config_map_for_the_grafana_sidecar(chart: Any) -> None:
    objects = render(chart, VALUE_SETS["all-on"])
    dashboard = only(objects, "ConfigMap", f"{FULLNAME}-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["namespace"] == "monitoring"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "Braze"}
    (content,) = dashboard["data"].values()
    assert json.loads(content) == json.loads((REPO / "config" / "grafana-dashboard.json").read_text())
    label_override = {"grafanaDashboard": {"enabled": True, "labels": {"grafana_dashboard": "0"}}}
    overridden = only(render(chart, label_override), "ConfigMap", f"{FULLNAME}-dashboard")
    assert overridden["metadata"]["labels"]["grafana_dashboard"] == "1", "the sidecar label cannot be lost"
