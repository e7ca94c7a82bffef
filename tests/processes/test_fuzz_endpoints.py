"""schemathesis over every operation the served OpenAPI description holds (tests/processes/test_fuzz.py covers
sessions at length, and the raw query strings and headers): each endpoint's own rules, against a real proxy process.

Every answer must be a 200, 400, 401 or 429 with a JSON body, conform to the description, and a 400 or 401
must have cost no upstream call.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from proxy.core.endpoints import SERVED
from tests.processes.test_fuzz import FUZZ_KEY, Checker, fuzz_settings
from tests.support.external_tools import module
from tests.support.procs import ProxyProcess, StandinProcess

# Per endpoint and mode. The twelve share sessions' parser and checks (fuzzed at length in
# tests/processes/test_fuzz.py); here each one's own rules are exercised. FUZZ_ENDPOINT_EXAMPLES=500 for a long run.
EXAMPLES = int(os.environ.get("FUZZ_ENDPOINT_EXAMPLES", "30"))


@pytest.fixture(scope="module")
def fuzzed(standin_process: StandinProcess) -> Iterator[tuple[ProxyProcess, Checker]]:
    if not standin_process.running:
        standin_process.start()
    standin_process.reset()
    env = {"BRAZE_PROXY_UPSTREAM_URL": standin_process.url, "BRAZE_PROXY_RATE_LIMIT_BURST": "1000000"}
    with ProxyProcess(env) as process:
        yield process, Checker(standin_process)
        logs = process.logs()
    assert "Traceback" not in logs and "unexpected error" not in logs, logs[-3000:]


@pytest.mark.parametrize("path", [e.path for e in SERVED if e.name != "sessions"])
def test_schemathesis_on_every_endpoint(fuzzed: tuple[ProxyProcess, Checker], path: str) -> None:
    schemathesis = module("schemathesis", "`make test` installs it")
    from schemathesis import GenerationMode
    from schemathesis.checks import (
        content_type_conformance,
        negative_data_rejection,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    proxy, checker = fuzzed
    operation = schemathesis.openapi.from_url(f"{proxy.url}/openapi.json")[path]["GET"]
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    bearer = {"Authorization": f"Bearer {FUZZ_KEY}"}
    for mode, extra in ((GenerationMode.POSITIVE, []), (GenerationMode.NEGATIVE, [negative_data_rejection])):
        strategy = operation.as_strategy(generation_mode=mode, headers=bearer)
        run(proxy, checker, strategy, checks + extra)


def run(proxy: ProxyProcess, checker: Checker, strategy: Any, checks: list[Any]) -> None:
    from hypothesis import given

    @fuzz_settings(EXAMPLES)
    @given(case=strategy)
    def case(case: Any) -> None:
        headers = dict(case.headers or {})
        response = case.call(base_url=proxy.url, headers=headers, timeout=10)
        case.validate_response(response, checks=checks, headers=headers)
        content_type = (response.headers.get("content-type") or [""])[0]
        checker.check(response.status_code, content_type, response.content, case)

    case()
