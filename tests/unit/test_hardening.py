"""Edges from the adversarial pass (issue 15) decided without I/O. The ones on the real app:
tests/inprocess/test_hardening.py."""

from __future__ import annotations

import pytest

from proxy.components import egress_proxy
from tests.support.harness import settings


@pytest.mark.parametrize(
    ("upstream", "environ", "setting", "expected"),
    [
        ("https://rest.iad-01.braze.com", {"HTTPS_PROXY": "http://p:3128"}, None, "http://p:3128"),
        ("https://rest.iad-01.braze.com", {"https_proxy": "http://low:1"}, None, "http://low:1"),
        ("https://rest.iad-01.braze.com", {"HTTP_PROXY": "http://p:3128"}, None, None),  # the wrong scheme
        ("https://rest.iad-01.braze.com", {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": ".braze.com"}, None, None),
        ("https://rest.iad-01.braze.com", {"HTTPS_PROXY": "http://p:3128", "no_proxy": "x.org, *"}, None, None),
        ("https://rest.iad-01.braze.com", {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "notbraze.com"}, None,
         "http://p:3128"),
        ("https://rest.iad-01.braze.com", {"HTTPS_PROXY": "http://p:3128"}, "http://mine:8080", "http://mine:8080"),
        ("http://10.0.0.5:8081", {}, None, None),
    ],
)  # fmt: skip
def test_the_egress_proxy_comes_from_the_setting_or_the_standard_variables(
    upstream: str, environ: dict[str, str], setting: str | None, expected: str | None
) -> None:
    s = settings(upstream, upstream_proxy=setting)
    assert egress_proxy(s, environ) == expected
