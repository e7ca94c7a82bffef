"""The chart mounts the client tokens Secret as a file the proxy re-reads (BRAZE_PROXY_CLIENT_TOKENS_FILE)."""

from __future__ import annotations

from typing import Any

from tests.artifacts.test_helm_chart import chart, container, helm, pod_spec, render  # noqa: F401 - fixtures

TOKENS_FILE = {"braze": {"existingSecret": "braze-creds", "clientTokensFileSecret": "braze-teams"}}


def test_the_tokens_secret_is_mounted_as_a_file_and_named(chart: Any) -> None:  # noqa: F811
    objects = render(chart, TOKENS_FILE)
    env = {e["name"]: e for e in container(objects)["env"]}
    assert env["BRAZE_PROXY_CLIENT_TOKENS_FILE"]["value"] == "/etc/braze-proxy/client-tokens/tokens"
    assert "BRAZE_PROXY_CLIENT_TOKENS" not in env  # one or the other: the proxy refuses both
    mount = next(m for m in container(objects)["volumeMounts"] if m["name"] == "client-tokens")
    assert mount == {"name": "client-tokens", "mountPath": "/etc/braze-proxy/client-tokens", "readOnly": True}
    volume = next(v for v in pod_spec(objects)["volumes"] if v["name"] == "client-tokens")
    assert volume["secret"] == {"secretName": "braze-teams", "items": [{"key": "tokens", "path": "tokens"}]}


def test_no_tokens_file_no_volume(chart: Any) -> None:  # noqa: F811
    objects = render(chart, {"braze": {"existingSecret": "braze-creds"}})
    assert "BRAZE_PROXY_CLIENT_TOKENS" in {e["name"] for e in container(objects)["env"]}
    assert all(v["name"] != "client-tokens" for v in pod_spec(objects)["volumes"])
