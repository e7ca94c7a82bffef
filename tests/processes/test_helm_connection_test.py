"""The chart's `helm test` pod script, run for real against a proxy process: it passes on a ready proxy and
fails on one that is not ready. The chart itself: tests/artifacts/test_helm_chart.py."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.support.external_tools import module
from tests.support.procs import HOST, ProxyFactory, free_port

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "braze-proxy"
ALL_ON = CHART / "ci" / "all-on-values.yaml"
RELEASE, NAMESPACE = "bp", "analytics"
FULLNAME = f"{RELEASE}-braze-proxy"
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


@pytest.fixture(scope="module")
def helm() -> ModuleType:
    return module("helm_python", HELM_INSTALL)


@pytest.fixture(scope="module")
def chart(helm: ModuleType) -> Iterator[Any]:
    with helm.Chart.load(str(CHART)) as loaded:
        yield loaded


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


@pytest.fixture(scope="module", params=list(VALUE_SETS))
def rendered(request: pytest.FixtureRequest, chart: Any) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(chart, VALUE_SETS[request.param])


def run_test_script(objects: list[dict[str, Any]], url: str, attempts: int) -> subprocess.CompletedProcess[str]:
    """The `helm test` pod's script, run here with this Python against `url`."""
    (tester,) = only(objects, "Pod", f"{FULLNAME}-test-connection")["spec"]["containers"]
    command = [sys.executable, *tester["command"][1:3], url, str(attempts)]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def test_connection_script_passes_on_a_ready_proxy(chart: Any, start_proxy: ProxyFactory) -> None:
    proxy = start_proxy()
    result = run_test_script(render(chart, None), f"{proxy.url}/readyz", attempts=3)
    assert result.returncode == 0, result.stderr
    assert f"{proxy.url}/readyz 200" in result.stdout


def test_connection_script_fails_on_a_proxy_that_is_not_ready(chart: Any, start_proxy: ProxyFactory) -> None:
    dead_redis = f"redis://{HOST}:{free_port()}/0"  # nothing listens: /readyz answers 503 until Redis answers
    proxy = start_proxy(REDIS_URL=dead_redis, REDIS_TIMEOUT=0.2)
    result = run_test_script(render(chart, None), f"{proxy.url}/readyz", attempts=1)
    assert result.returncode == 1 and "503" in result.stderr, result.stdout + result.stderr
