"""Bad input against a real proxy process: hypothesis-generated raw query strings and headers, then schemathesis
driven by the OpenAPI description the proxy serves at /openapi.json.

Every answer must be a 200, 400, 401 or 429 with a JSON body, never a 5xx or a traceback, and an answer of
400 or 401 must have cost no upstream call (checked against the stand-in's own count after every case).
"""

from __future__ import annotations

import collections
import json
import os
import string
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.external_tools import module
from tests.support.load import PATH, RawAnswer, raw_get
from tests.support.procs import ProxyProcess, StandinProcess

ALLOWED = {200, 400, 401, 429}
MAX_REQUEST_LINE = 8190  # the proxy's request-line bound (with the default BRAZE_PROXY_MAX_QUERY_BYTES)
FUZZ_KEY = "sk-fuzz-3e7a1c"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "1000"))  # raw queries; the other strategies take a share
TRIED: collections.Counter[str] = collections.Counter()


@pytest.fixture(scope="module")
def standin_for_fuzz(standin_process: StandinProcess) -> StandinProcess:
    if not standin_process.running:
        standin_process.start()
    standin_process.reset()
    return standin_process


@pytest.fixture(scope="module")
def proxy_proc(standin_for_fuzz: StandinProcess) -> Iterator[ProxyProcess]:
    env = {
        "BRAZE_PROXY_UPSTREAM_URL": standin_for_fuzz.url,
        "BRAZE_PROXY_RATE_LIMIT_BURST": "1000000",  # the valid cases must not run into the budget
    }
    with ProxyProcess(env) as process:
        yield process
        logs = process.logs()
    assert "Traceback" not in logs and "unexpected error" not in logs, logs[-3000:]


class Checker:
    """Runs one case's checks: the answer's shape, and the upstream calls it cost."""

    def __init__(self, standin: StandinProcess) -> None:
        self.standin = standin
        self.seen = self.calls()  # nothing else calls the stand-in meanwhile: one stats call per case

    def calls(self) -> int:
        return int(self.standin.stats()["calls"])

    def check(self, status: int | None, content_type: str, body: bytes, case: Any) -> None:
        assert status in ALLOWED, (case, status, body[:300])
        assert content_type.startswith("application/json"), (case, content_type)
        payload = json.loads(body)
        assert isinstance(payload, dict) and isinstance(payload.get("message"), str), (case, body[:300])
        assert b"Traceback" not in body and b'File "' not in body, (case, body[:300])
        self.no_call_unless_valid(status, case)

    def no_call_unless_valid(self, status: int | None, case: Any) -> None:
        now = self.calls()
        if status not in (200, 429):
            assert now == self.seen, (case, status)
        if now > 1000:
            self.standin.reset()  # keeps the stand-in's request log (and so each stats call) small
            now = 0
        self.seen = now


@pytest.fixture(scope="module")
def checker(standin_for_fuzz: StandinProcess) -> Checker:
    return Checker(standin_for_fuzz)


def report(capsys: pytest.CaptureFixture[str], name: str) -> None:
    with capsys.disabled():
        total = sum(n for what, n in TRIED.items() if not what.startswith("refused"))  # those are counted already
        print(f"\n[figure] fuzz {name}: {TRIED[name]} cases ({total} so far in this module)")


# --- hypothesis: raw query strings and headers -----------------------------------------------------------------

NAMES = ["length", "unit", "ending_at", "app_id", "segment_id", "api_key", "Length", "ending_at[]", ""]
# Characters a request target may carry as they are (RFC 3986 pchar and "/" "?"), '%' for escapes.
TARGET_CHARS = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/?%"


def escaped_bytes() -> st.SearchStrategy[str]:
    return st.binary(min_size=1, max_size=6).map(lambda raw: "".join(f"%{b:02X}" for b in raw))


def values() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(alphabet=TARGET_CHARS, max_size=24),
        st.integers(min_value=-(10**12), max_value=10**12).map(str),
        st.sampled_from(["day", "hour", "DAY", "week", "", "0", "1", "100", "101", "1e2", "0x10", "%205", "+5"]),
        st.sampled_from(["%D9%A3", "%EF%BC%95", "%C0%AF", "%ED%A0%80", "%F4%90%80%80", "%00", "%0D%0A"]),
        st.datetimes().map(lambda d: d.isoformat()),
        st.sampled_from(["2018-06-28T23:59:59-5:00", "2024-01-01", "2024-13-01", "2024-02-30T00:00:00Z", "9999-12-31"]),
        escaped_bytes(),
        st.lists(st.one_of(escaped_bytes(), st.text(alphabet=TARGET_CHARS, max_size=4)), max_size=4).map("".join),
    )


def pairs() -> st.SearchStrategy[str]:
    name_chars = TARGET_CHARS.replace("&", "").replace("=", "")
    name = st.one_of(st.sampled_from(NAMES), st.text(alphabet=name_chars, max_size=8))
    pair = st.tuples(name, values()).map(lambda nv: f"{nv[0]}={nv[1]}")
    bare = st.text(alphabet=TARGET_CHARS, max_size=12)  # `flag`, `a=b=c`, `&&`, a lone `%`
    return st.lists(st.one_of(pair, pair, bare), max_size=8).map("&".join)


def raw_queries() -> st.SearchStrategy[str]:
    return st.one_of(pairs(), st.text(alphabet=TARGET_CHARS, max_size=80))


def ask(proxy_proc: ProxyProcess, query: str, headers: dict[str, str | bytes]) -> RawAnswer:
    return raw_get(proxy_proc.port, f"{PATH}?{query}" if query else PATH, headers)


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=bool(os.environ.get("CI")),  # the same cases on every CI run
        suppress_health_check=list(HealthCheck),
    )


def test_raw_query_strings(proxy_proc: ProxyProcess, checker: Checker, capsys: pytest.CaptureFixture[str]) -> None:
    @fuzz_settings(EXAMPLES)
    @given(query=raw_queries(), legacy=st.booleans())
    def case(query: str, legacy: bool) -> None:
        TRIED["raw query strings"] += 1
        headers: dict[str, str | bytes] = {} if legacy else {"Authorization": f"Bearer {FUZZ_KEY}"}
        answer = ask(proxy_proc, query + (f"&api_key={FUZZ_KEY}" if legacy else ""), headers)
        checker.check(answer.status, answer.headers.get("content-type", ""), answer.body, query)

    case()
    report(capsys, "raw query strings")


# Header values as HTTP allows them: visible ASCII, space, tab and obs-text (bytes 0x80-0xFF, often not UTF-8).
HEADER_VALUE_BYTES = bytes(range(0x21, 0x7F)) + b" \t" + bytes(range(0x80, 0x100))


def header_values() -> st.SearchStrategy[bytes]:
    return st.lists(st.sampled_from(HEADER_VALUE_BYTES), max_size=40).map(bytes).map(lambda v: v.strip(b" \t"))


def authorizations() -> st.SearchStrategy[bytes | None]:
    return st.one_of(
        st.none(),
        header_values(),
        header_values().map(lambda v: b"Bearer " + v),
        st.sampled_from([b"Bearer", b"Bearer ", b"bearer  k", b"Basic a2V5", b"Bearer " + b"k" * 600]),
    )


def test_headers(proxy_proc: ProxyProcess, checker: Checker, capsys: pytest.CaptureFixture[str]) -> None:
    token_chars = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"

    @fuzz_settings(EXAMPLES // 3)
    @given(
        authorization=authorizations(),
        extra=st.dictionaries(st.text(alphabet=token_chars, min_size=1, max_size=12), header_values(), max_size=4),
        query=st.one_of(st.just("length=3&ending_at=2024-01-01"), raw_queries()),
    )
    def case(authorization: bytes | None, extra: dict[str, bytes], query: str) -> None:
        TRIED["headers"] += 1
        headers: dict[str, str | bytes] = {
            k: v for k, v in extra.items() if k.lower() not in ("host", "connection", "content-length")
        }
        headers.pop("Transfer-Encoding", None)
        if authorization is not None:
            headers["Authorization"] = authorization
        if any(k.lower() == "transfer-encoding" for k in headers):
            return  # a body framing header on a GET: aiohttp's own business, not this endpoint's
        answer = ask(proxy_proc, query, headers)
        checker.check(answer.status, answer.headers.get("content-type", ""), answer.body, (headers, query))

    case()
    report(capsys, "headers")


# --- schemathesis: the served OpenAPI description ---------------------------------------------------------------


def test_schemathesis_against_served_openapi(
    proxy_proc: ProxyProcess, checker: Checker, capsys: pytest.CaptureFixture[str]
) -> None:
    schemathesis = module("schemathesis", "`make test` installs it")
    from schemathesis import GenerationMode
    from schemathesis.checks import (
        content_type_conformance,
        negative_data_rejection,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    schema = schemathesis.openapi.from_url(f"{proxy_proc.url}/openapi.json")
    operation = schema[PATH]["GET"]
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    # Positive cases carry generated credentials (some empty: 401); negative ones a valid credential, so that
    # the schema-violating query is what the proxy must refuse.
    strategies = {
        GenerationMode.POSITIVE: (operation.as_strategy(generation_mode=GenerationMode.POSITIVE), 5),
        GenerationMode.NEGATIVE: (
            operation.as_strategy(
                generation_mode=GenerationMode.NEGATIVE, headers={"Authorization": f"Bearer {FUZZ_KEY}"}
            ),
            9,
        ),
    }
    for mode, (strategy, share) in strategies.items():
        name = f"schemathesis {mode.value}"
        extra = [negative_data_rejection] if mode is GenerationMode.NEGATIVE else []
        run_schemathesis(proxy_proc, checker, strategy, EXAMPLES * share // 20, name, checks + extra)
        report(capsys, name)
    report(capsys, "refused by the HTTP parser")


def run_schemathesis(
    proxy_proc: ProxyProcess, checker: Checker, strategy: Any, examples: int, name: str, checks: list[Any]
) -> None:
    @fuzz_settings(examples)
    @given(case=strategy)
    def run(case: Any) -> None:
        TRIED[name] += 1
        headers = dict(case.headers or {})
        response = case.call(base_url=proxy_proc.url, headers=headers, timeout=10)
        target = str(response.request.url).removeprefix(proxy_proc.url)
        if len(target) > MAX_REQUEST_LINE and response.status_code == 400:
            # Refused by the HTTP parser before any handler runs: still a Braze-style JSON 400, checked below.
            TRIED["refused by the HTTP parser"] += 1
        case.validate_response(response, checks=checks, headers=headers)
        content_type = (response.headers.get("content-type") or [""])[0]  # lower-case names, lists of values
        checker.check(response.status_code, content_type, response.content, case)

    run()
