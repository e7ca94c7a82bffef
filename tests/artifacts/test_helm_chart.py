"""The Helm chart (helm/braze-proxy), checked by Helm's own code and the Kubernetes 1.30 schemas.

helm-python-sdk carries Helm's Go SDK (no helm binary here): `lint` is `helm lint --strict`, `render` is
`helm template` (values.schema.json included). kubernetes-validate checks every manifest against the 1.30
OpenAPI schemas in strict mode (unknown fields fail). The Prometheus Operator's CRDs are outside those
schemas, so their structure is checked here and their rules go through promtool. The `helm test` pod's
script runs for real against a proxy process.
"""

from __future__ import annotations

import base64
import copy
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

import proxy
from proxy.settings.model import ENV_PREFIX, Settings
from tests.support.external_tools import binary, module
from tests.support.procs import HOST, free_port

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "braze-proxy"
ALL_ON = CHART / "ci" / "all-on-values.yaml"
KUBE_VERSION = "1.30"
RELEASE, NAMESPACE = "bp", "analytics"
FULLNAME = f"{RELEASE}-braze-proxy"
MONITORING_API = "monitoring.coreos.com/v1"
HELM_INSTALL = "pip install helm-python-sdk"

# Redis and credentials from Secrets the user manages, a CA from a ConfigMap, an image by digest, and the
# NetworkPolicy and Ingress on their defaults.
EXISTING_SECRETS = {
    "replicaCount": 2,
    "image": {"digest": "sha256:" + "ab" * 32},
    "braze": {"existingSecret": "braze-credentials"},
    "redis": {
        "existingSecret": "redis-credentials",
        "existingSecretKey": "url",
        "tls": {"caConfigMap": "corporate-ca", "caKey": "bundle.pem"},
    },
    "networkPolicy": {"enabled": True},
    "ingress": {"enabled": True},
}
VALUE_SETS = {
    "default": None,
    "all-on": yaml.safe_load(ALL_ON.read_text()),
    "existing-secrets": EXISTING_SECRETS,
}
KINDS = {
    # One replica: no PodDisruptionBudget (it could only block a node drain).
    "default": {"ConfigMap", "Deployment", "Service", "ServiceAccount", "Pod"},
    "existing-secrets": {
        "ConfigMap",
        "Deployment",
        "Service",
        "ServiceAccount",
        "PodDisruptionBudget",
        "Pod",  # the `helm test` hook
        "NetworkPolicy",
        "Ingress",
    },
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
        "Pod",
        "NetworkPolicy",
        "Ingress",
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


def pod_spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = only(objects, "Deployment")["spec"]["template"]["spec"]
    return spec


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The proxy's container (sidecars may stand beside it)."""
    (main,) = [c for c in pod_spec(objects)["containers"] if c["name"] == "braze-proxy"]
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


# --- Kubernetes 1.30 schemas ----------------------------------------------------------------------------


def test_every_manifest_validates_strictly_against_kubernetes_1_30(
    rendered: tuple[str, list[dict[str, Any]]], kubernetes_validate: ModuleType
) -> None:
    values, objects = rendered
    checked = set()
    for obj in objects:
        if obj["apiVersion"] == MONITORING_API:
            continue  # CRDs: see the ServiceMonitor and PrometheusRule tests
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {path}: {error.message}")
        checked.add(obj["kind"])
    assert checked == KINDS[values] - {"ServiceMonitor", "PrometheusRule"}
    if values != "default":
        assert {"NetworkPolicy", "Ingress", "Pod"} <= checked


def test_the_validator_rejects_an_unknown_field(chart: Any, kubernetes_validate: ModuleType) -> None:
    deployment = only(render(chart, None), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)


# --- values.schema.json ---------------------------------------------------------------------------------

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
    # issue 14: the extension points take what Kubernetes takes, and nothing else
    "image digest not a sha256": {"image": {"digest": "latest"}},
    "image digest short": {"image": {"digest": "sha256:abc"}},
    "image registry with a scheme": {"image": {"registry": "https://registry.example.internal"}},
    "common label value not a string": {"commonLabels": {"team": 5}},
    "common label key with a space": {"commonLabels": {"cost center": "42"}},
    "common label value too long": {"commonLabels": {"team": "x" * 64}},
    "common annotation not a string": {"commonAnnotations": {"example.com/owner": ["a"]}},
    "extraEnv as a map": {"extraEnv": {"OTEL_SERVICE_NAME": "braze-proxy"}},
    "extraEnv without a name": {"extraEnv": [{"value": "braze-proxy"}]},
    "extraEnv value not a string": {"extraEnv": [{"name": "OTEL_BSP_MAX_QUEUE_SIZE", "value": 2048}]},
    "extraEnv unknown field": {"extraEnv": [{"name": "A", "valu": "b"}]},
    "extraEnv value and valueFrom": {"extraEnv": [{"name": "A", "value": "b", "valueFrom": {"secretKeyRef": {}}}]},
    "extraEnvFrom without a source": {"extraEnvFrom": [{"prefix": "OTEL_"}]},
    "extraEnvFrom with two sources": {"extraEnvFrom": [{"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}}]},
    "extraEnvFrom bad name": {"extraEnvFrom": [{"secretRef": {"name": "Not_A_Name"}}]},
    "extraVolumes as a map": {"extraVolumes": {"ca": {"configMap": {"name": "ca"}}}},
    "extraVolumes without a source": {"extraVolumes": [{"name": "ca"}]},
    "extraVolumeMounts relative path": {"extraVolumeMounts": [{"name": "ca", "mountPath": "etc/ca"}]},
    "extraVolumeMounts without a path": {"extraVolumeMounts": [{"name": "ca"}]},
    "sidecar without an image": {"sidecars": [{"name": "vault-agent"}]},
    "sidecar named like the proxy": {"sidecars": [{"name": "braze-proxy", "image": "busybox:1.36"}]},
    "sidecar not an object": {"sidecars": ["vault-agent"]},
    "init container as a map": {"initContainers": {"name": "wait", "image": "busybox:1.36"}},
    "pod annotation not a string": {"podAnnotations": {"rotated-at": 20261201}},
    "redis sentinel scheme misspelt": {"redis": {"url": "redis+sentinal://h:26379/mymaster"}},
    "redis tls unknown key": {"redis": {"tls": {"ca": "redis-ca"}}},
    "redis tls secret name": {"redis": {"tls": {"caSecret": "Redis_CA"}}},
    "network policy enabled as text": {"networkPolicy": {"enabled": "yes"}},
    "network policy peer unknown key": {"networkPolicy": {"clients": [{"namespace": "growth"}]}},
    "network policy peer empty": {"networkPolicy": {"clients": [{}]}},
    "network policy ipBlock with a selector": {
        "networkPolicy": {"clients": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}
    },
    "network policy selector operator": {
        "networkPolicy": {"clients": [{"podSelector": {"matchExpressions": [{"key": "a", "operator": "Like"}]}}]}
    },
    "network policy braze cidr": {"networkPolicy": {"braze": {"port": 443, "cidrs": ["everywhere"]}}},
    "network policy redis port": {"networkPolicy": {"redis": {"ports": [0]}}},
    "network policy redis no port": {"networkPolicy": {"redis": {"ports": []}}},
    "network policy extra rule unknown key": {"networkPolicy": {"extraEgress": [{"destination": []}]}},
    "ingress path type": {"ingress": {"hosts": [{"host": "a.example", "paths": [{"path": "/", "pathType": "Regex"}]}]}},
    "ingress relative path": {"ingress": {"hosts": [{"paths": [{"path": "sessions", "pathType": "Prefix"}]}]}},
    "ingress host with a scheme": {"ingress": {"hosts": [{"host": "https://a.example", "paths": []}]}},
    "ingress tls as a map": {"ingress": {"tls": {"secretName": "tls"}}},
    "honorLabels as text": {"metrics": {"serviceMonitor": {"honorLabels": "false"}}},
    "alert enabled as text": {"metrics": {"prometheusRule": {"alerts": {"BrazeProxyLatencyHigh": {"enabled": "no"}}}}},
    "alert label not a string": {"metrics": {"prometheusRule": {"alerts": {"A": {"labels": {"severity": 1}}}}}},
    "alert unknown field": {"metrics": {"prometheusRule": {"alerts": {"A": {"disabled": True}}}}},
    "additional label name": {"metrics": {"prometheusRule": {"additionalLabels": {"team-name": "a"}}}},
    "additional label reserved": {"metrics": {"prometheusRule": {"additionalLabels": {"__name__": "a"}}}},
    "runbook base not a url": {"metrics": {"prometheusRule": {"runbookBaseUrl": "wiki/runbooks"}}},
    "dashboard uid too long": {"grafanaDashboard": {"uid": "x" * 41}},
    "dashboard uid with a slash": {"grafanaDashboard": {"uid": "braze/proxy"}},
    # issue 24: the conventions, typed
    "workers zero": {"workers": 0},
    "workers as text": {"workers": "4"},
    "allowAnonymous as text": {"braze": {"allowAnonymous": "yes"}},
    "node port out of range": {"service": {"type": "NodePort", "nodePort": 8080}},
    "update strategy type": {"updateStrategy": {"type": "BlueGreen"}},
    "host alias without hostnames": {"hostAliases": [{"ip": "10.0.0.1"}]},
    "extraDeploy object without a kind": {"extraDeploy": [{"apiVersion": "v1"}]},
    "global registry with a scheme": {"global": {"imageRegistry": "https://mirror.example.internal"}},
    "service monitor namespace": {"metrics": {"serviceMonitor": {"namespace": "Monitoring"}}},
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
    "url",
    [
        "redis://:secret@redis-master.data.svc:6379/0",
        "rediss://default:secret@master.cache.example.internal:6379/0",
        "unix:///var/run/redis/redis.sock",
        "redis+sentinel://:secret@redis-0.data.svc:26379,redis-1.data.svc:26379/mymaster/0",
        "rediss+sentinel://redis-0.data.svc:26379/mymaster",
        "redis+cluster://:secret@redis-cluster.data.svc:6379",
        "rediss+cluster://user:secret@clustercfg.cache.example.internal:6379",
    ],
)
def test_every_redis_scheme_is_accepted_and_kept_in_the_secret(chart: Any, url: str) -> None:
    objects = render(chart, {"replicaCount": 2, "redis": {"url": url}})
    secret = only(objects, "Secret")
    assert base64.b64decode(secret["data"]["redis-url"]).decode() == url
    assert url not in json.dumps(only(objects, "ConfigMap")), "the URL may hold a password"


@pytest.mark.parametrize(
    "values",
    [
        {
            "replicaCount": 2,
            "redis": {"url": "redis://r:6379"},
            "podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": 1},
        },
        {"lifecycle": {"preStopSleepSeconds": 5, "shutdownGraceSeconds": 20, "terminationGracePeriodSeconds": 25}},
        {"redis": {"url": "rediss://r:6379", "tls": {"caSecret": "ca", "caConfigMap": "ca"}}},
        {"redis": {"tls": {"caSecret": "redis-ca"}}},
        {"redis": {"url": "redis://r:6379", "tls": {"caConfigMap": "redis-ca"}}},
        {"metrics": {"prometheusRule": {"enabled": True, "alerts": {"BrazeProxyNoSuchAlert": {"enabled": False}}}}},
    ],
    ids=[
        "both pdb bounds",
        "grace period too short to drain",
        "CA from a Secret and a ConfigMap",
        "CA without Redis",
        "CA for a plain redis url",
        "an alert the rules file does not have",
    ],
)
def test_contradictory_values_fail_to_render(helm: ModuleType, chart: Any, values: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmError):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"replicaCount": 2}, "replicaCount is 2"),
        ({"autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 4}}, "autoscaling.maxReplicas is 4"),
        ({"replicaCount": 1, "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 2}}, "maxReplicas"),
    ],
    ids=["replicas", "hpa maximum", "hpa over one replica"],
)
def test_several_replicas_without_redis_are_refused_in_one_line(
    helm: ModuleType, chart: Any, values: dict[str, Any], named: str
) -> None:
    with pytest.raises(helm.HelmRenderError) as refused:
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
    message = str(refused.value)
    assert "\n" not in message.strip() and named in message
    assert "redis.url or redis.existingSecret" in message and "budget" in message


@pytest.mark.parametrize(
    "values",
    [
        {"replicaCount": 1},
        {"replicaCount": 3, "redis": {"existingSecret": "redis-credentials"}},
        {"replicaCount": 3, "redis": {"url": "redis+cluster://redis-cluster.data.svc:6379"}},
        {"replicaCount": 5, "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 1}},
        {"autoscaling": {"enabled": False, "minReplicas": 2, "maxReplicas": 6}},
    ],
    ids=["one replica", "existing secret", "url", "hpa of one (replicaCount unused)", "hpa off"],
)
def test_one_replica_or_redis_renders(chart: Any, values: dict[str, Any]) -> None:
    assert only(render(chart, values), "Deployment")


# --- the Deployment -------------------------------------------------------------------------------------


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
    rendered: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    _, objects = rendered
    data = only(objects, "ConfigMap")["data"]
    env_names = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    assert set(data) - env_names == set(), "ConfigMap keys the proxy does not read"
    assert not {"BRAZE_PROXY_API_KEY", "BRAZE_PROXY_CLIENT_TOKENS", "BRAZE_PROXY_REDIS_URL"} & set(data)
    # The chart's own variables (extraEnv adds others, e.g. OTEL_*).
    secrets = {v["name"] for v in container(objects).get("env", []) if v["name"].startswith(ENV_PREFIX)}
    assert secrets - env_names == set()
    # The proxy's own validation accepts what the chart writes (secret values stand in).
    fields = {key.removeprefix(ENV_PREFIX).lower(): value for key, value in data.items()}
    if "BRAZE_PROXY_CLIENT_TOKENS" in secrets:
        fields |= {"api_key": "k", "client_tokens": "team:0123456789abcdef"}
    ca_file = fields.get("redis_tls_ca_file")
    if ca_file is not None:  # a file the pod mounts: it must be the mounted volume's, and stands in here
        mounts = {m["mountPath"] for m in container(objects).get("volumeMounts", [])}
        assert str(Path(ca_file).parent) in mounts, (ca_file, mounts)
        fields["redis_tls_ca_file"] = str(tmp_path / "ca.crt")
        (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    if "BRAZE_PROXY_REDIS_URL" in secrets:  # from a Secret: a TLS URL when a CA is mounted
        fields["redis_url"] = "rediss://redis:6380/0" if ca_file is not None else "redis://redis:6379/0"
    Settings(_env_file=None, **fields)


def test_credentials_come_from_the_chart_secret(chart: Any) -> None:
    objects = render(chart, VALUE_SETS["all-on"])
    secret = only(objects, "Secret")
    env = {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in container(objects)["env"] if e["name"].startswith(ENV_PREFIX)
    }
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
    # Not optional: without tokens (and without allowAnonymous) the proxy would refuse to start anyway.
    assert env["BRAZE_PROXY_CLIENT_TOKENS"] == {"name": "braze-credentials", "key": "t", "optional": False}
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
    for pdb in [o for o in objects if o["kind"] == "PodDisruptionBudget"]:  # none for one replica
        assert pdb["spec"]["selector"]["matchLabels"] == selector
    assert container(objects)["envFrom"][0] == {"configMapRef": {"name": FULLNAME}}, "extraEnvFrom comes after"
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    assert only(objects, "ServiceAccount", account)["automountServiceAccountToken"] is False


def test_chart_app_version_is_the_proxy_version(chart: Any) -> None:
    assert chart.metadata["appVersion"] == proxy.__version__
    assert container(render(chart, None))["image"] == f"braze-proxy:{proxy.__version__}"


# --- monitoring: ServiceMonitor, PrometheusRule, Grafana dashboard --------------------------------------


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
    # Prometheus's target labels (endpoint among them) win; the proxy's route label is braze_endpoint.
    assert endpoint["honorLabels"] is False
    for relabel in endpoint["relabelings"] + endpoint["metricRelabelings"]:
        assert set(relabel) <= {"sourceLabels", "separator", "targetLabel", "regex", "modulus", "replacement", "action"}


def test_service_monitor_on_the_main_port_without_a_metrics_port(chart: Any) -> None:
    values = {"metrics": {"serviceMonitor": {"enabled": True}}}
    (endpoint,) = only(render(chart, values), "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["port"] == "http"


DEFAULT_RUNBOOK_BASE = "https://braze-proxy.example/runbooks/"


LOOSE_JOB = 'job=~".*braze-proxy.*"'


def expected_rules(source: dict[str, Any], values: dict[str, Any]) -> list[dict[str, Any]]:
    """The groups the chart should emit for the prometheusRule `values`: the rule file, filtered and relabelled,
    its loose job matcher narrowed to the release's own job and namespace."""
    alerts = values.get("alerts", {})
    base = values.get("runbookBaseUrl", "")
    groups = []
    for group in copy.deepcopy(source["groups"]):
        rules = []
        for rule in group["rules"]:
            if "alert" in rule:
                rule["expr"] = rule["expr"].replace(LOOSE_JOB, f'job="{FULLNAME}", namespace="{NAMESPACE}"')
                own = alerts.get(rule["alert"], {})
                if not own.get("enabled", True):
                    continue
                labels = {**rule.get("labels", {}), **values.get("additionalLabels", {}), **own.get("labels", {})}
                if labels:
                    rule["labels"] = labels
                url = rule.get("annotations", {}).get("runbook_url", "")
                if base and url.startswith(DEFAULT_RUNBOOK_BASE):
                    rule["annotations"]["runbook_url"] = base.rstrip("/") + "/" + url.removeprefix(DEFAULT_RUNBOOK_BASE)
            rules.append(rule)
        if rules:
            groups.append({**group, "rules": rules})
    return groups


def promtool_accepts(groups: list[dict[str, Any]], tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": groups}))
    promtool = binary("promtool", "apt-get install -y --no-install-recommends prometheus")
    result = subprocess.run(
        [promtool, "check", "rules", str(rules_file)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_rule_carries_the_rules_file_and_promtool_accepts_it(chart: Any, tmp_path: Path) -> None:
    values = {"metrics": {"prometheusRule": {"enabled": True}}}
    rule = only(render(chart, values), "PrometheusRule")
    assert rule["apiVersion"] == MONITORING_API and set(rule["spec"]) == {"groups"}
    source = yaml.safe_load((REPO / "config" / "prometheus-alerts.yml").read_text())
    assert rule["spec"]["groups"] == expected_rules(source, {}), "no value set: the file as it is (its job narrowed)"
    for group in rule["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and group["rules"]
        for alert in group["rules"]:
            assert set(alert) == {"alert", "expr", "for", "labels", "annotations"}
            assert "{{ $labels.job }}" in alert["annotations"]["summary"], "Helm must not eat Prometheus templates"
    promtool_accepts(rule["spec"]["groups"], tmp_path)


def test_prometheus_rule_per_alert_enable_and_labels(chart: Any, tmp_path: Path) -> None:
    values = VALUE_SETS["all-on"]["metrics"]["prometheusRule"]
    rule = only(render(chart, VALUE_SETS["all-on"]), "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    source = yaml.safe_load((REPO / "config" / "prometheus-alerts.yml").read_text())
    groups = rule["spec"]["groups"]
    assert groups == expected_rules(source, values)
    emitted = {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}
    assert "BrazeProxyLatencyHigh" not in emitted, "alerts.BrazeProxyLatencyHigh.enabled: false drops it"
    errors = emitted["BrazeProxyUpstreamErrors"]["labels"]
    assert errors["severity"] == "critical" and errors["team"] == "braze-oncall", "per-alert labels win"
    assert all(r["labels"]["team"] for r in emitted.values())
    others = [r for name, r in emitted.items() if name != "BrazeProxyUpstreamErrors"]
    assert others and all(r["labels"]["team"] == "analytics" for r in others), "additionalLabels on every alert"
    promtool_accepts(groups, tmp_path)


def test_prometheus_rule_every_alert_disabled_renders_no_object(chart: Any) -> None:
    source = yaml.safe_load((REPO / "config" / "prometheus-alerts.yml").read_text())
    names = [r["alert"] for g in source["groups"] for r in g["rules"] if "alert" in r]
    off = {"enabled": True, "alerts": {name: {"enabled": False} for name in names}}
    assert [o for o in render(chart, {"metrics": {"prometheusRule": off}}) if o["kind"] == "PrometheusRule"] == []


def chart_with_rules(tmp_path: Path, rules: str) -> Path:
    """A copy of the chart whose files/prometheus-alerts.yml is `rules`."""
    copied = tmp_path / "braze-proxy"
    shutil.copytree(CHART, copied)
    (copied / "files" / "prometheus-alerts.yml").write_text(rules)
    return copied


RULES_WITH_RUNBOOK_URLS = """
groups:
  - name: braze-proxy
    rules:
      - alert: BrazeProxyA
        expr: vector(1) > 0
        for: 1m
        labels: {severity: warning}
        annotations:
          summary: "A on {{ $labels.job }}"
          runbook_url: "https://braze-proxy.example/runbooks/#brazeproxya"
      - alert: BrazeProxyB
        expr: vector(1) > 0
        annotations:
          summary: "B"
          runbook_url: "https://elsewhere.example/runbooks/#b"
      - record: braze_proxy:requests:rate5m
        expr: sum(rate(braze_proxy_requests_total[5m]))
"""


@pytest.mark.parametrize("base", ["https://wiki.example.internal/ops/braze-proxy", "https://wiki.example.internal/x/"])
def test_runbook_base_url_replaces_the_documented_base(
    helm: ModuleType, tmp_path: Path, base: str, kubernetes_validate: ModuleType
) -> None:
    values = {"enabled": True, "runbookBaseUrl": base, "additionalLabels": {"team": "analytics"}}
    with helm.Chart.load(str(chart_with_rules(tmp_path, RULES_WITH_RUNBOOK_URLS))) as copied:
        rule = only(render(copied, {"metrics": {"prometheusRule": values}}), "PrometheusRule")
    (group,) = rule["spec"]["groups"]
    a, b, record = group["rules"]
    assert a["annotations"]["runbook_url"] == base.rstrip("/") + "/#brazeproxya"
    assert a["annotations"]["summary"] == "A on {{ $labels.job }}"
    assert a["labels"] == {"severity": "warning", "team": "analytics"}
    assert b["annotations"]["runbook_url"] == "https://elsewhere.example/runbooks/#b", "another base is kept"
    assert b["labels"] == {"team": "analytics"}
    assert record == {"record": "braze_proxy:requests:rate5m", "expr": "sum(rate(braze_proxy_requests_total[5m]))"}
    source = yaml.safe_load(RULES_WITH_RUNBOOK_URLS)
    assert rule["spec"]["groups"] == expected_rules(source, values)


def test_runbook_base_url_on_the_real_rules_file(chart: Any) -> None:
    base = "https://wiki.example.internal/braze-proxy/runbooks/"
    rule = only(
        render(chart, {"metrics": {"prometheusRule": {"enabled": True, "runbookBaseUrl": base}}}), "PrometheusRule"
    )
    source = yaml.safe_load((REPO / "config" / "prometheus-alerts.yml").read_text())
    for emitted, original in zip(
        (r for g in rule["spec"]["groups"] for r in g["rules"]),
        (r for g in source["groups"] for r in g["rules"]),
        strict=True,
    ):
        url = original.get("annotations", {}).get("runbook_url")
        if url is not None and url.startswith(DEFAULT_RUNBOOK_BASE):
            assert emitted["annotations"]["runbook_url"] == base + url.removeprefix(DEFAULT_RUNBOOK_BASE)
        else:
            assert emitted == original


def test_dashboard_config_map_for_the_grafana_sidecar(chart: Any) -> None:
    objects = render(chart, VALUE_SETS["all-on"])
    dashboard = only(objects, "ConfigMap", f"{FULLNAME}-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["namespace"] == "monitoring"
    assert dashboard["metadata"]["annotations"]["grafana_folder"] == "Braze"
    (content,) = dashboard["data"].values()
    source = json.loads((REPO / "config" / "grafana-dashboard.json").read_text())
    assert json.loads(content) == {**source, "uid": "braze-proxy-analytics"}, "the same dashboard, its uid set"
    label_override = {"grafanaDashboard": {"enabled": True, "labels": {"grafana_dashboard": "0"}}}
    overridden = only(render(chart, label_override), "ConfigMap", f"{FULLNAME}-dashboard")
    assert overridden["metadata"]["labels"]["grafana_dashboard"] == "1", "the sidecar label cannot be lost"
    (untouched,) = overridden["data"].values()
    assert untouched == (REPO / "config" / "grafana-dashboard.json").read_text().rstrip("\n"), "no uid: the file"
    assert json.loads(untouched)["uid"] == source["uid"]


# --- extension points (issue 14): env, volumes, containers, image, common labels ------------------------


def test_extra_env_volumes_and_containers_reach_the_pod(chart: Any) -> None:
    values = VALUE_SETS["all-on"]
    objects = render(chart, values)
    spec, main = pod_spec(objects), container(objects)
    chart_env = [e for e in main["env"] if e["name"].startswith(ENV_PREFIX)]
    assert main["env"] == chart_env + values["extraEnv"], "the chart's variables, then extraEnv as given"
    assert main["envFrom"] == [{"configMapRef": {"name": FULLNAME}}, *values["extraEnvFrom"]]
    assert main["volumeMounts"][-len(values["extraVolumeMounts"]) :] == values["extraVolumeMounts"]
    assert spec["volumes"][-len(values["extraVolumes"]) :] == values["extraVolumes"]
    assert spec["containers"] == [main, *values["sidecars"]]
    assert spec["initContainers"] == values["initContainers"]
    mounted = {m["name"] for c in spec["containers"] + spec["initContainers"] for m in c.get("volumeMounts", [])}
    assert mounted <= {v["name"] for v in spec["volumes"]}, "every mount has its volume"


def test_extension_points_are_absent_by_default(chart: Any) -> None:
    objects = render(chart, None)
    spec, main = pod_spec(objects), container(objects)
    assert [c["name"] for c in spec["containers"]] == ["braze-proxy"] and "initContainers" not in spec
    assert [v["name"] for v in spec["volumes"]] == ["tmp"] and [m["name"] for m in main["volumeMounts"]] == ["tmp"]


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ({}, "braze-proxy:0.1.0"),
        ({"tag": "0.2.0-rc.1"}, "braze-proxy:0.2.0-rc.1"),
        ({"registry": "registry.example.internal/"}, "registry.example.internal/braze-proxy:0.1.0"),
        ({"digest": "sha256:" + "ab" * 32}, "braze-proxy@sha256:" + "ab" * 32),
        ({"tag": "0.1.0", "digest": "sha256:" + "cd" * 32}, "braze-proxy:0.1.0@sha256:" + "cd" * 32),
        (
            {"registry": "mirror.example:5000/team", "repository": "bp", "digest": "sha256:" + "ef" * 32},
            "mirror.example:5000/team/bp@sha256:" + "ef" * 32,
        ),
    ],
    ids=["default", "tag", "registry", "digest", "tag and digest", "registry and digest"],
)
def test_image_reference(chart: Any, image: dict[str, str], expected: str) -> None:
    objects = render(chart, {"image": image})
    assert container(objects)["image"] == expected
    (tester,) = only(objects, "Pod", f"{FULLNAME}-test-connection")["spec"]["containers"]
    assert tester["image"] == expected, "the test pod runs the proxy's own image"


def test_common_labels_and_annotations_on_every_object(chart: Any) -> None:
    values = VALUE_SETS["all-on"]
    objects = render(chart, values)
    assert len(objects) == len(KINDS["all-on"]) + 1  # two ConfigMaps
    mine = {k: v for k, v in values["commonLabels"].items() if not k.startswith("app.kubernetes.io/")}
    for obj in objects:
        metadata = obj["metadata"]
        assert mine.items() <= metadata["labels"].items(), obj["kind"]
        assert values["commonAnnotations"].items() <= metadata["annotations"].items(), obj["kind"]
        assert metadata["labels"].get("app.kubernetes.io/name", "braze-proxy") == "braze-proxy", "the chart's wins"
    template = only(objects, "Deployment")["spec"]["template"]["metadata"]
    assert mine.items() <= template["labels"].items() and template["labels"]["team"] == "analytics"
    assert only(objects, "Deployment")["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "braze-proxy",
        "app.kubernetes.io/instance": RELEASE,
    }
    service = only(objects, "Service")["metadata"]["annotations"]
    assert service["example.com/team"] == "analytics", "an object's own annotations stay"


def test_pod_annotations_roll_the_pods(chart: Any) -> None:
    def template(rotated: str) -> dict[str, Any]:
        values = {"redis": {"existingSecret": "redis-credentials"}, "podAnnotations": {"rotated-at": rotated}}
        spec: dict[str, Any] = only(render(chart, values), "Deployment")["spec"]["template"]
        return spec

    before, after = template("2026-11-30"), template("2026-12-01")
    assert before["metadata"]["annotations"]["rotated-at"] == "2026-11-30"
    assert before != after, "a new annotation is a new pod template: Kubernetes rolls the pods"
    assert before["metadata"]["annotations"]["checksum/secret"] == after["metadata"]["annotations"]["checksum/secret"]


# --- Redis from an existing Secret, TLS with a CA (issue 13) --------------------------------------------

CA_FILE = "/etc/braze-proxy/redis-tls/ca.crt"


def ca_mount(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    (volume,) = [v for v in pod_spec(objects)["volumes"] if v["name"] == "redis-ca"]
    (mount,) = [m for m in container(objects)["volumeMounts"] if m["name"] == "redis-ca"]
    return volume, mount


def test_redis_ca_from_a_secret_is_mounted_and_named(chart: Any) -> None:
    objects = render(chart, VALUE_SETS["all-on"])
    volume, mount = ca_mount(objects)
    assert volume["secret"] == {"secretName": "redis-ca", "items": [{"key": "ca.pem", "path": "ca.crt"}]}
    assert mount == {"name": "redis-ca", "mountPath": "/etc/braze-proxy/redis-tls", "readOnly": True}
    assert only(objects, "ConfigMap")["data"]["BRAZE_PROXY_REDIS_TLS_CA_FILE"] == CA_FILE
    assert f"{mount['mountPath']}/{volume['secret']['items'][0]['path']}" == CA_FILE


def test_redis_url_from_an_existing_secret_with_a_ca_from_a_config_map(chart: Any) -> None:
    objects = render(chart, EXISTING_SECRETS)
    assert [o for o in objects if o["kind"] == "Secret"] == [], "nothing of the user's is copied"
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container(objects)["env"]}
    assert env["BRAZE_PROXY_REDIS_URL"] == {"name": "redis-credentials", "key": "url"}
    volume, mount = ca_mount(objects)
    assert volume["configMap"] == {"name": "corporate-ca", "items": [{"key": "bundle.pem", "path": "ca.crt"}]}
    assert mount["readOnly"] is True
    data = only(objects, "ConfigMap")["data"]
    assert data["BRAZE_PROXY_REDIS_TLS_CA_FILE"] == CA_FILE
    assert only(objects, "Deployment")["spec"]["replicas"] == 2, "Redis from a Secret allows several replicas"


@pytest.mark.parametrize("values", [None, {"redis": {"url": "rediss://cache.example.internal:6379/0"}}])
def test_no_ca_no_setting_and_no_volume(chart: Any, values: dict[str, Any] | None) -> None:
    objects = render(chart, values)
    assert "BRAZE_PROXY_REDIS_TLS_CA_FILE" not in only(objects, "ConfigMap")["data"]
    assert "redis-ca" not in {v["name"] for v in pod_spec(objects)["volumes"]}


# --- NetworkPolicy --------------------------------------------------------------------------------------


def policy_rules(objects: list[dict[str, Any]]) -> tuple[dict[int, list[Any]], dict[int, list[Any]]]:
    """(port -> peers allowed in, port -> peers allowed out); a rule without peers allows everyone ([None])."""
    spec = only(objects, "NetworkPolicy")["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    inbound: dict[int, list[Any]] = {}
    outbound: dict[int, list[Any]] = {}
    for rules, key, table in ((spec["ingress"], "from", inbound), (spec["egress"], "to", outbound)):
        for rule in rules:
            for port in rule["ports"]:
                table.setdefault(port["port"], []).extend(rule.get(key) or [None])
    return inbound, outbound


def test_network_policy_allows_only_what_the_values_name(chart: Any) -> None:
    values = VALUE_SETS["all-on"]["networkPolicy"]
    objects = render(chart, VALUE_SETS["all-on"])
    policy = only(objects, "NetworkPolicy")
    assert policy["spec"]["podSelector"] == only(objects, "Deployment")["spec"]["selector"]
    inbound, outbound = policy_rules(objects)
    metrics_port = VALUE_SETS["all-on"]["metricsPort"]
    assert set(inbound) == {8080, metrics_port}
    assert inbound[8080] == values["clients"]
    tester = only(objects, "Pod", f"{FULLNAME}-test-connection")["metadata"]["labels"]
    prometheus, test_peer = inbound[metrics_port][:-1], inbound[metrics_port][-1]
    assert prometheus == values["prometheus"]
    assert test_peer["podSelector"]["matchLabels"].items() <= tester.items(), "helm test may ask /readyz"
    egress = policy["spec"]["egress"]
    dns = egress[0]
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    assert dns["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert outbound[26379] == outbound[6379] == values["redis"]["to"]
    assert outbound[443] == [{"ipBlock": {"cidr": cidr}} for cidr in values["braze"]["cidrs"]]
    assert outbound[8200] == values["extraEgress"][0]["to"]
    assert set(outbound) == {53, 26379, 6379, 443, 8200}


def test_network_policy_defaults(chart: Any, kubernetes_validate: ModuleType) -> None:
    objects = render(chart, EXISTING_SECRETS)
    inbound, outbound = policy_rules(objects)
    assert set(inbound) == {8080}, "no metricsPort: Prometheus and the probes use the proxy port"
    peers = inbound[8080]
    assert {"podSelector": {}} in peers, "clients: every pod of the release's namespace"
    assert {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}} in peers
    assert None not in peers, "no rule lets everyone in"
    assert outbound[6379] == [None], "Redis: its port, anywhere, until `to` narrows it"
    assert outbound[443] == [{"ipBlock": {"cidr": "0.0.0.0/0"}}]
    assert set(outbound) == {53, 6379, 443}


def test_network_policy_without_redis_clients_or_braze_cidrs(chart: Any, kubernetes_validate: ModuleType) -> None:
    values = {"networkPolicy": {"enabled": True, "clients": [], "braze": {"port": 443, "cidrs": []}}}
    objects = render(chart, values)
    kubernetes_validate.validate(only(objects, "NetworkPolicy"), KUBE_VERSION, strict=True)
    inbound, outbound = policy_rules(objects)
    assert None not in inbound[8080] and {"podSelector": {}} not in inbound[8080], "an empty list lets no client in"
    assert set(outbound) == {53}, "no Redis configured, no CIDR for Braze: only DNS"


def test_network_policy_is_off_by_default(chart: Any) -> None:
    assert [o for o in render(chart, None) if o["kind"] == "NetworkPolicy"] == []


# --- Ingress --------------------------------------------------------------------------------------------


def test_ingress_routes_to_the_service_port(chart: Any) -> None:
    values = VALUE_SETS["all-on"]["ingress"]
    objects = render(chart, VALUE_SETS["all-on"])
    ingress = only(objects, "Ingress")
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx" and spec["tls"] == values["tls"]
    assert values["annotations"].items() <= ingress["metadata"]["annotations"].items()
    (rule,) = spec["rules"]
    assert rule["host"] == "braze-proxy.example.internal"
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/sessions", "Prefix")
    backend = path["backend"]["service"]
    service = only(objects, "Service")
    assert backend == {"name": service["metadata"]["name"], "port": {"name": "http"}}
    assert "http" in {p["name"] for p in service["spec"]["ports"]}


def test_ingress_defaults(chart: Any) -> None:
    spec = only(render(chart, EXISTING_SECRETS), "Ingress")["spec"]
    assert "ingressClassName" not in spec and "tls" not in spec, "the cluster's default class, no TLS"
    (rule,) = spec["rules"]
    assert rule["host"] == "braze-proxy.example.internal" and rule["http"]["paths"][0]["path"] == "/"


# --- `helm test` ----------------------------------------------------------------------------------------


def test_connection_pod_is_a_restricted_helm_test_hook(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    values, objects = rendered
    pod = only(objects, "Pod", f"{FULLNAME}-test-connection")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never" and 0 < spec["activeDeadlineSeconds"] <= 120
    assert spec["automountServiceAccountToken"] is False
    deployment = pod_spec(objects)
    assert spec["securityContext"] == deployment["securityContext"]
    assert spec.get("imagePullSecrets") == deployment.get("imagePullSecrets")
    (tester,) = spec["containers"]
    main = container(objects)
    assert tester["image"] == main["image"] and tester["securityContext"] == main["securityContext"]
    assert tester["resources"]["limits"]["memory"]
    command = tester["command"]
    assert command[:2] == ["python", "-c"], "the image's own python, no other image"
    compile(command[2], "<test-connection>", "exec")
    url, attempts = command[3:]
    service = only(objects, "Service")
    port = (VALUE_SETS[values] or {}).get("metricsPort") or service["spec"]["ports"][0]["port"]
    assert url == f"http://{FULLNAME}.{NAMESPACE}.svc:{port}/readyz"
    assert port in {p["port"] for p in service["spec"]["ports"]} and 1 <= int(attempts) <= 20
    selector = service["spec"]["selector"]
    assert not selector.items() <= pod["metadata"]["labels"].items(), "the Service must never route to it"


def run_test_script(objects: list[dict[str, Any]], url: str, attempts: int) -> subprocess.CompletedProcess[str]:
    """The `helm test` pod's script, run here with this Python against `url`."""
    (tester,) = only(objects, "Pod", f"{FULLNAME}-test-connection")["spec"]["containers"]
    command = [sys.executable, *tester["command"][1:3], url, str(attempts)]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def test_connection_script_fails_when_nothing_answers(chart: Any) -> None:
    result = run_test_script(render(chart, None), f"http://{HOST}:{free_port()}/readyz", attempts=2)
    assert result.returncode == 1 and result.stderr.count("attempt") == 2


# --- issue 24: the conventions platform teams install by -------------------------------------------------------


def test_the_bitnami_and_prometheus_conventions_render(chart: Any, kubernetes_validate: ModuleType) -> None:
    values = {
        "replicaCount": 2,
        "redis": {"url": "redis://redis:6379/0"},
        "global": {"imageRegistry": "mirror.example.internal"},
        "image": {"registry": "ignored.example.internal"},
        "workers": 4,
        "service": {"type": "NodePort", "nodePort": 30080},
        "updateStrategy": {"type": "Recreate"},
        "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["rest.iad-01.braze.com"]}],
        "extraDeploy": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "{{ .Release.Name }}-extra"}, "data": {}},
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}-extra-secret\n",
        ],
        "metrics": {"serviceMonitor": {"enabled": True, "namespace": "monitoring"}},
    }
    objects = render(chart, values)
    main = container(objects)
    assert main["image"] == "mirror.example.internal/braze-proxy:" + str(
        yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    )
    assert main["args"] == ["--workers", "4"]
    deployment = only(objects, "Deployment")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert deployment["spec"]["template"]["spec"]["hostAliases"] == values["hostAliases"]
    assert only(objects, "Service")["spec"]["ports"][0]["nodePort"] == 30080
    assert only(objects, "ConfigMap", f"{RELEASE}-extra")["kind"] == "ConfigMap"
    assert only(objects, "Secret", f"{RELEASE}-extra-secret")["kind"] == "Secret"
    monitor = only(objects, "ServiceMonitor")
    assert monitor["metadata"]["namespace"] == "monitoring"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    for obj in objects:
        if obj["apiVersion"] != MONITORING_API:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    assert "args" not in container(render(chart, None)), "one worker: the image's plain entrypoint"


def test_allow_anonymous_is_a_value_and_tokens_are_optional_only_with_it(chart: Any) -> None:
    settings = only(render(chart, {"braze": {"apiKey": "k", "allowAnonymous": True}}), "ConfigMap")["data"]
    assert settings["BRAZE_PROXY_ALLOW_ANONYMOUS"] == "true"
    Settings(_env_file=None, api_key="k", allow_anonymous=settings["BRAZE_PROXY_ALLOW_ANONYMOUS"])  # type: ignore[call-arg]
    strict = {"braze": {"existingSecret": "braze-credentials"}}
    lenient = {"braze": {"existingSecret": "braze-credentials", "allowAnonymous": True}}
    tokens = {"BRAZE_PROXY_CLIENT_TOKENS"}
    assert [
        e["valueFrom"]["secretKeyRef"]["optional"] for e in env_of(render(chart, strict)) if e["name"] in tokens
    ] == [False]
    assert [
        e["valueFrom"]["secretKeyRef"]["optional"] for e in env_of(render(chart, lenient)) if e["name"] in tokens
    ] == [True]
    assert "then any client may call" not in (CHART / "templates" / "deployment.yaml").read_text()
    assert "weight" in (CHART / "values.yaml").read_text().split("clientTokens:")[0].rsplit("# --", 1)[1]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"extraEnv": [{"name": "OTEL_SERVICE_NAME", "value": "x"}, {"name": "BRAZE_PROXY_API_KEY", "value": "k"}]},
            "extraEnv[1].name: BRAZE_PROXY_API_KEY is set by the chart from braze.apiKey or braze.existingSecret",
        ),
        (
            {"extraEnv": [{"name": "BRAZE_PROXY_REDIS_URL", "value": "redis://x"}]},
            "extraEnv[0].name: BRAZE_PROXY_REDIS_URL is set by the chart from redis.url or redis.existingSecret",
        ),
        (
            {"config": {"extra": {"BRAZE_PROXY_API_KEY": "secret"}}},
            "config.extra.BRAZE_PROXY_API_KEY is set by the chart from braze.apiKey or braze.existingSecret",
        ),
        ({"config": {"extra": {"BRAZE_PROXY_PORT": "9000"}}}, "config.extra.BRAZE_PROXY_PORT is set by the chart"),
        (
            {"config": {"extra": {"BRAZE_PROXY_TTL_SETLED": "60"}}},
            "config.extra.BRAZE_PROXY_TTL_SETLED is not a setting of the proxy (a typo?)",
        ),
        (
            {"replicaCount": 2, "redis": {"url": "redis://r:6379"}, "podDisruptionBudget": {"minAvailable": 2}},
            "podDisruptionBudget.minAvailable (2) with 2 pods leaves none to evict",
        ),
        (
            {"replicaCount": 3, "redis": {"url": "redis://r:6379"}, "podDisruptionBudget": {"maxUnavailable": 0}},
            "podDisruptionBudget.maxUnavailable 0 leaves no pod to evict",
        ),
    ],
    ids=["extraEnv api key", "extraEnv redis url", "extra api key", "extra port", "extra typo", "pdb min", "pdb max 0"],
)
def test_refusals_say_which_key_is_wrong(helm: ModuleType, chart: Any, values: dict[str, Any], message: str) -> None:
    """Issue 24: a schema `not` said only "'not' failed"; a typo in config.extra landed in the ConfigMap."""
    with pytest.raises(helm.HelmError) as refused:
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
    assert message in str(refused.value)
    assert "'not' failed" not in str(refused.value)


def test_the_chart_knows_every_setting_and_nothing_else() -> None:
    text = (CHART / "templates" / "_helpers.tpl").read_text()
    names = text.split('define "braze-proxy.settingNames" -}}')[1].split("{{-")[0].split()
    assert names == [f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields]


@pytest.mark.parametrize(
    ("values", "pdb"),
    [
        (None, False),  # one replica: a PDB could only block a drain
        ({"podDisruptionBudget": {"minAvailable": 1}}, False),  # the issue's case
        ({"replicaCount": 2, "redis": {"url": "redis://r:6379"}}, True),
        ({"autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 1}}, False),
        ({"redis": {"url": "redis://r:6379"}, "autoscaling": {"enabled": True, "minReplicas": 2}}, True),
    ],
    ids=["default", "min available 1 of 1", "two replicas", "hpa of one", "hpa from two"],
)
def test_a_pdb_only_where_it_cannot_block_a_drain(chart: Any, values: dict[str, Any] | None, pdb: bool) -> None:
    kinds = {o["kind"] for o in render(chart, values)}
    assert ("PodDisruptionBudget" in kinds) == pdb


@pytest.mark.parametrize("override", [{}, {"fullnameOverride": "analytics-cache"}, {"nameOverride": "cache"}])
def test_alerts_match_the_releases_own_job_whatever_its_name(
    chart: Any, tmp_path: Path, override: dict[str, str]
) -> None:
    values = {**override, "metrics": {"prometheusRule": {"enabled": True}}}
    objects = render(chart, values)
    job = objects_named(objects, "Service")  # the ServiceMonitor's job: the Service's name
    rule = only(objects, "PrometheusRule", name=job)
    exprs = {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert exprs["BrazeProxyAbsent"] == f'absent(up{{job="{job}", namespace="{NAMESPACE}"}} == 1)'
    assert exprs["BrazeProxyTargetDown"] == f'up{{job="{job}", namespace="{NAMESPACE}"}} == 0'
    assert not any("braze-proxy.*" in expr for expr in exprs.values())
    # promtool: the rendered rules fire on this release's job, under any release name.
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    (tmp_path / "test.yml").write_text(
        yaml.safe_dump(
            {
                "rule_files": ["rules.yml"],
                "evaluation_interval": "1m",
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": [
                            {
                                "series": f'up{{job="{job}", namespace="{NAMESPACE}", instance="a:8080"}}',
                                "values": "0x20",
                            }
                        ],
                        "alert_rule_test": [
                            {
                                "eval_time": "10m",
                                "alertname": "BrazeProxyTargetDown",
                                "exp_alerts": [
                                    {
                                        "exp_labels": {
                                            "severity": "warning",
                                            "job": job,
                                            "namespace": NAMESPACE,
                                            "instance": "a:8080",
                                        },
                                        "exp_annotations": {
                                            "summary": f"braze-proxy target a:8080 down (job {job})",
                                            "description": "Prometheus cannot scrape a:8080 (up = 0) for 5 minutes;"
                                            " the other replicas keep serving.",
                                            "runbook_url": "https://braze-proxy.example/runbooks/BrazeProxyTargetDown/",
                                        },
                                    }
                                ],
                            }
                        ],
                    }
                ],
            }
        )
    )
    promtool = binary("promtool", "apt-get install -y --no-install-recommends prometheus")
    result = subprocess.run(
        [promtool, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def env_of(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = container(objects).get("env", [])
    return env


def objects_named(objects: list[dict[str, Any]], kind: str) -> str:
    (name,) = [o["metadata"]["name"] for o in objects if o["kind"] == kind]
    return str(name)
