"""Which exporter the standard OTEL_* variables ask for (no I/O). Tracing on a real proxy process:
tests/processes/test_tracing.py."""

from __future__ import annotations

import json
import time
from typing import Any

from proxy.obs import tracing
from tests.support.procs import ProxyProcess


def spans(proxy: ProxyProcess, names: set[str]) -> list[dict[str, Any]]:
    """The console exporter's spans (pretty-printed JSON objects in the output), waiting up to 5 s for `names`."""
    deadline = time.monotonic() + 5
    while True:
        found, decoder, text = [], json.JSONDecoder(), proxy.logs()
        i = text.find("{\n")
        while i >= 0:
            try:
                obj, end = decoder.raw_decode(text, i)
            except ValueError:
                end = i + 1
            else:
                if isinstance(obj, dict) and "context" in obj:
                    found.append(obj)
            i = text.find("{\n", end)
        if names <= {s["name"] for s in found} or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_which_exporter_the_variables_ask_for() -> None:
    assert tracing.wanted({}) is None
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": "console"}) == "console"
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}) is None
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}) == "otlp"
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}) is None
