"""The core proxy end to end: real proxy processes, the stand-in upstream, a real redis-server.

Tests on the default settings share one proxy process per store (module-wide) and keep apart by their own
credentials: a test's keys are new to that process, so its entries, refusals and upstream calls are its own.
Tests that need other settings start their own process.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

import aiohttp
import pytest
import redis

from tests.support.load import metric
from tests.support.procs import ProxyFactory, ProxyProcess, RedisServer, StandinProcess

PATH = "/sessions/data_series"
KEY_A = "5f2c9a3e-1111-4a6b-9c1d-aaaaaaaaaaaa"
_test_numbers = itertools.count()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        return json.loads(self.body)  # type: ignore[no-any-return]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


async def get(
    http: aiohttp.ClientSession, proxy_proc: ProxyProcess | StandinProcess, query: str, key: str | None
) -> Reply:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    url = f"{proxy_proc.url}{PATH}?{query}" if query else f"{proxy_proc.url}{PATH}"
    async with http.get(url, headers=headers, allow_redirects=False) as response:
        return Reply(response.status, dict(response.headers), await response.read())


@pytest.fixture(scope="module", params=["memory", "redis"])
def proxy_proc(request: pytest.FixtureRequest, standin_process: StandinProcess) -> Iterator[ProxyProcess]:
    """One process per store for the module, on start_proxy's defaults (INFO logs, windows off)."""
    env = {
        "BRAZE_PROXY_UPSTREAM_URL": standin_process.url,
        "BRAZE_PROXY_LOG_LEVEL": "INFO",
        "BRAZE_PROXY_WINDOWS": "false",
    }
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        env["BRAZE_PROXY_REDIS_URL"] = server.url
        env["BRAZE_PROXY_REDIS_KEY_PREFIX"] = "test-proxy:"
    with ProxyProcess(env) as process:
        yield process


@dataclass(frozen=True)
class Keys:
    a: str
    b: str


@pytest.fixture
def keys(standin_proc: StandinProcess) -> Keys:
    """Two credentials no earlier test used (on the shared processes, this test's entries are its own)."""
    n = next(_test_numbers)
    return Keys(f"5f2c9a3e-{n:04d}-4a6b-9c1d-aaaaaaaaaaaa", f"5f2c9a3e-{n:04d}-4a6b-9c1d-bbbbbbbbbbbb")


async def test_miss_then_hit_with_one_upstream_call(
    http: aiohttp.ClientSession, proxy_proc: ProxyProcess, standin_proc: StandinProcess, keys: Keys
) -> None:
    query = "length=7&ending_at=2018-06-28T23:59:59-5:00"
    first = await get(http, proxy_proc, query, keys.a)
    assert first.status == 200
    assert first.headers["Cache-Status"] == "braze-proxy; fwd=miss; fwd-status=200; stored"
    assert "Age" not in first.headers
    asked = time.monotonic()
    second = await get(http, proxy_proc, query, keys.a)
    assert second.status == 200 and second.body == first.body
    assert second.headers["Cache-Status"].startswith("braze-proxy; hit; ttl=")
    assert int(second.headers["Age"]) <= time.monotonic() - asked + 1
    stats = standin_proc.stats()
    assert stats["calls"] == 1
    # The upstream saw the canonical query, and the client got Braze's bytes and type unchanged.
    (call,) = stats["requests"]
    assert call["query"] == "length=7&unit=day&ending_at=2018-06-29T00%3A00%3A00%2B00%3A00"
    direct = await get(http, standin_proc, call["query"], keys.a)
    assert direct.body == first.body
    assert direct.headers["Content-Type"] == first.headers["Content-Type"]
    assert first.json()["message"] == "success" and len(first.json()["data"]) == 7  # type: ignore[arg-type]


def spellings(count: int, seed: int = 7) -> list[str]:
    """`count` distinct query strings that all ask: 5 days ending on 2018-06-28 (UTC)."""
    rnd = random.Random(seed)
    day = datetime(2018, 6, 28, tzinfo=UTC)
    seen: set[str] = set()
    while len(seen) < count:
        instant = day + timedelta(seconds=rnd.randrange(86400), microseconds=rnd.choice([0, 0, 500_000]))
        offset = timezone(timedelta(minutes=rnd.randrange(-12 * 60, 14 * 60 + 1, 15)))
        text = instant.astimezone(offset).isoformat()
        text = rnd.choice([text, text.replace("+00:00", "Z")])
        if rnd.random() < 0.3 and text[-6] in "+-" and text[-5] == "0":  # Braze's own one-digit hour form
            text = text[:-5] + text[-4:]
        params = [("length", rnd.choice(["5", "05", "005"])), ("ending_at", text)]
        unit = rnd.choice([None, "day", "DAY", "Day"])
        if unit:
            params.append(("unit", unit))
        if rnd.random() < 0.3:
            params.append(("app_id", ""))
        rnd.shuffle(params)
        safe = rnd.choice(["", ":", ":+"])
        seen.add("&".join(f"{name}={quote(value, safe=safe)}" for name, value in params))
    return sorted(seen)


async def test_200_spellings_cost_one_upstream_call(
    http: aiohttp.ClientSession, proxy_proc: ProxyProcess, standin_proc: StandinProcess, keys: Keys
) -> None:
    queries = spellings(200)
    assert len(set(queries)) == 200
    bodies = set()
    for query in queries:
        reply = await get(http, proxy_proc, query, keys.a)
        assert reply.status == 200, (query, reply.body)
        bodies.add(reply.body)
    assert len(bodies) == 1
    assert standin_proc.stats()["calls"] == 1


BAD_INPUTS = [
    ("", "'length' is required"),
    ("length=0", "from 1 to 100"),
    ("length=101", "from 1 to 100"),
    ("length=seven", "from 1 to 100"),
    ("length=7&unit=week", "'day' or 'hour'"),
    ("length=7&ending_at=2018-06-31", "ISO-8601"),
    ("length=7&ending_at=28%2F06%2F2018", "ISO-8601"),
    ("length=7&ending_at=9999-12-31", "ISO-8601"),
    ("length=7&ending_at=0001-01-01T00:00:00%2B05:00", "ISO-8601"),
    ("length=7&length=8", "more than once"),
    ("length=7&unit=day&unit=hour", "more than once"),
    ("length=7&callback=x", "unknown parameter 'callback'"),
    ("length=7&app_id=" + "a" * 200, "printable"),
    ("length=7&" + "x=" + "y" * 3000, "longer than 2048 bytes"),
]


async def test_bad_input_is_a_400_and_never_reaches_braze(
    http: aiohttp.ClientSession, proxy_proc: ProxyProcess, standin_proc: StandinProcess, keys: Keys
) -> None:
    """Every kind of bad input, against one proxy process per store (a process per case took about 15 s)."""
    for query, fragment in BAD_INPUTS:
        reply = await get(http, proxy_proc, query, keys.a)
        assert reply.status == 400, (query, reply.status)
        assert reply.headers["Content-Type"].startswith("application/json")
        body = reply.json()
        assert fragment in str(body["message"]) + " ".join(body.get("errors", [])), (query, body)  # type: ignore[arg-type]
        assert standin_proc.stats()["calls"] == 0, query


async def test_no_credential_is_a_401_and_never_reaches_braze(
    http: aiohttp.ClientSession, proxy_proc: ProxyProcess, standin_proc: StandinProcess, keys: Keys
) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "}):
        async with http.get(f"{proxy_proc.url}{PATH}?length=3", headers=headers) as response:
            assert response.status == 401
            assert "message" in await response.json()
    assert standin_proc.stats()["calls"] == 0


async def test_legacy_api_key_parameter_is_a_credential(
    http: aiohttp.ClientSession, proxy_proc: ProxyProcess, standin_proc: StandinProcess, keys: Keys
) -> None:
    legacy = await get(http, proxy_proc, f"length=3&ending_at=2018-06-28&api_key={keys.a}", key=None)
    bearer = await get(http, proxy_proc, "length=3&ending_at=2018-06-28", keys.a)
    assert legacy.status == bearer.status == 200 and legacy.body == bearer.body
    assert bearer.headers["Cache-Status"].startswith("braze-proxy; hit")  # one entry for both forms
    (call,) = standin_proc.stats()["requests"]
    assert call["authorization"] == f"Bearer {keys.a}"
    assert "api_key" not in call["query"]


async def test_two_credentials_never_share_an_entry(
    http: aiohttp.ClientSession, proxy_proc: ProxyProcess, standin_proc: StandinProcess, keys: Keys
) -> None:
    query = "length=5&ending_at=2018-06-28"
    a1, b1 = await get(http, proxy_proc, query, keys.a), await get(http, proxy_proc, query, keys.b)
    a2, b2 = await get(http, proxy_proc, query, keys.a), await get(http, proxy_proc, query, keys.b)
    assert a1.body == a2.body and b1.body == b2.body and a1.body != b1.body
    assert standin_proc.stats()["calls"] == 2
    assert [call["authorization"] for call in standin_proc.stats()["requests"]] == [
        f"Bearer {keys.a}",
        f"Bearer {keys.b}",
    ]


async def test_upstream_4xx_passes_through_uncached(
    http: aiohttp.ClientSession, proxy_proc: ProxyProcess, standin_proc: StandinProcess, keys: Keys
) -> None:
    standin_proc.config(rejected_keys=[keys.b])
    for _ in range(2):
        reply = await get(http, proxy_proc, "length=2&ending_at=2018-06-28", keys.b)
        assert reply.status == 401
        assert reply.json() == {"message": "Invalid API key: key not recognized"}
        assert reply.headers["Cache-Status"] == "braze-proxy; fwd=miss; fwd-status=401"
    assert standin_proc.stats()["calls"] == 1  # never stored, but Braze's refusal of this key is remembered a while


async def test_upstream_5xx_is_a_502_and_not_stored(
    http: aiohttp.ClientSession, start_proxy: ProxyFactory, standin_proc: StandinProcess
) -> None:
    proxy_proc = start_proxy(UPSTREAM_RETRIES=0)
    standin_proc.config(fail_status=503, fail_count=1)
    failed = await get(http, proxy_proc, "length=2&ending_at=2018-06-28", KEY_A)
    assert failed.status == 502
    assert "Bad gateway" in str(failed.json()["message"])
    assert failed.headers["Cache-Status"] == "braze-proxy; fwd=miss; fwd-status=503"
    recovered = await get(http, proxy_proc, "length=2&ending_at=2018-06-28", KEY_A)
    assert recovered.status == 200 and standin_proc.stats()["calls"] == 2


async def test_upstream_timeout_is_a_504_within_the_timeout(
    http: aiohttp.ClientSession, start_proxy: ProxyFactory, standin_proc: StandinProcess
) -> None:
    proxy_proc = start_proxy(UPSTREAM_TIMEOUT=0.5, UPSTREAM_RETRIES=0)
    standin_proc.config(latency=5)
    started = time.perf_counter()
    reply = await get(http, proxy_proc, "length=2&ending_at=2018-06-28", KEY_A)
    elapsed = time.perf_counter() - started
    assert reply.status == 504 and "Gateway timeout" in str(reply.json()["message"])
    assert elapsed < 2.0


async def test_managed_key_mode_with_client_tokens(
    http: aiohttp.ClientSession, start_proxy: ProxyFactory, standin_proc: StandinProcess
) -> None:
    proxy_proc = start_proxy(API_KEY=KEY_A, CLIENT_TOKENS="growth:tok-growth-0123456789,billing:tok-billing-0123456789")
    assert (await get(http, proxy_proc, "length=2&ending_at=2018-06-28", key="tok-unknown-0123456789")).status == 401
    assert (await get(http, proxy_proc, "length=2&ending_at=2018-06-28", key=None)).status == 401
    growth = await get(http, proxy_proc, "length=2&ending_at=2018-06-28", key="tok-growth-0123456789")
    billing = await get(http, proxy_proc, "length=2&ending_at=2018-06-28", key="tok-billing-0123456789")
    assert growth.status == billing.status == 200 and growth.body == billing.body  # one workspace, one entry
    (call,) = standin_proc.stats()["requests"]
    assert call["authorization"] == f"Bearer {KEY_A}"  # the managed key, never the client's token
    assert '"team": "growth"' in proxy_proc.logs() or '"team":"growth"' in proxy_proc.logs()


async def test_counters_of_known_endpoints_start_at_zero(
    http: aiohttp.ClientSession, start_proxy: ProxyFactory
) -> None:
    """Issue 24: docs/metrics.md said so, but requests, upstream calls and retries had no series before the first."""
    proxy_proc = start_proxy()
    async with http.get(f"{proxy_proc.url}/metrics") as scraped:
        text = await scraped.text()
    for endpoint in ("sessions", "campaigns"):
        for cache in ("hit", "miss"):
            assert metric(text, "braze_proxy_requests_total", braze_endpoint=endpoint, cache=cache, code="200") == 0
        assert metric(text, "braze_proxy_upstream_retries_total", braze_endpoint=endpoint) == 0
    default = {"workspace": "default", "code": "200"}
    assert (
        metric(text, "braze_proxy_upstream_requests_total", braze_endpoint="sessions", group="default", **default) == 0
    )
    assert (
        metric(text, "braze_proxy_upstream_requests_total", braze_endpoint="campaigns", group="campaigns", **default)
        == 0
    )


async def test_a_managed_key_braze_refuses_is_a_502_an_error_line_and_a_metric(
    http: aiohttp.ClientSession, start_proxy: ProxyFactory, standin_proc: StandinProcess
) -> None:
    """Issue 24: Braze refusing the proxy's own key was passed on as a 401 that blamed the client's token."""
    proxy_proc = start_proxy(API_KEY=KEY_A, CLIENT_TOKENS="growth:tok-growth-0123456789")
    async with http.get(f"{proxy_proc.url}/metrics") as before:
        assert metric(await before.text(), "braze_proxy_managed_key_refusals_total", workspace="default") == 0
    standin_proc.config(rejected_keys=[KEY_A])
    reply = await get(http, proxy_proc, "length=2&ending_at=2018-06-28", key="tok-growth-0123456789")
    assert reply.status == 502
    message = str(reply.json()["message"])
    assert "Braze refused the proxy's own API key (HTTP 401)" in message and "your token is fine" in message
    assert KEY_A.encode() not in reply.body and b"tok-growth" not in reply.body
    async with http.get(f"{proxy_proc.url}/metrics") as after:
        text = await after.text()
    assert metric(text, "braze_proxy_managed_key_refusals_total", workspace="default") == 1
    assert metric(text, "braze_proxy_requests_total", braze_endpoint="sessions", code="502") == 1
    lines = [json.loads(line) for line in proxy_proc.logs().splitlines() if line.startswith("{")]
    errors = [line for line in lines if line.get("level") == "error"]
    assert any("refused the proxy's own API key" in line["message"] for line in errors), errors
    assert KEY_A not in proxy_proc.logs()


async def test_in_pass_through_mode_a_refused_key_is_the_clients_own_401(
    http: aiohttp.ClientSession, start_proxy: ProxyFactory, standin_proc: StandinProcess
) -> None:
    proxy_proc = start_proxy()
    standin_proc.config(rejected_keys=[KEY_A])
    reply = await get(http, proxy_proc, "length=2&ending_at=2018-06-28", KEY_A)
    assert reply.status == 401 and reply.json()["message"] == "Invalid API key: key not recognized"
    async with http.get(f"{proxy_proc.url}/metrics") as scraped:
        assert metric(await scraped.text(), "braze_proxy_managed_key_refusals_total") is None


async def test_ttl_depends_on_unit_and_phase(
    http: aiohttp.ClientSession, proxy_proc: ProxyProcess, standin_proc: StandinProcess, keys: Keys
) -> None:
    def ttl(reply: Reply) -> int:
        return int(reply.headers["Cache-Status"].split("ttl=")[1].split(";")[0])

    cases = [("length=2&unit=hour", 60), ("length=2", 300), ("length=2&ending_at=2018-06-28", 86400)]
    for query, expected in cases:
        await get(http, proxy_proc, query, keys.a)
        hit = await get(http, proxy_proc, query, keys.a)
        assert expected - 3 <= ttl(hit) <= expected, (query, hit.headers["Cache-Status"])


async def test_redis_entries_carry_their_ttl_and_no_credential(
    http: aiohttp.ClientSession, start_proxy: ProxyFactory, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    proxy_proc = start_proxy(REDIS_URL=redis_server.url, REDIS_KEY_PREFIX="bp-test:", STALE_SECONDS=100)
    assert (await get(http, proxy_proc, "length=2&ending_at=2018-06-28", KEY_A)).status == 200
    keys = [k.decode() for k in redis_client.keys("bp-test:{v1:*")]
    assert len(keys) == 1 and KEY_A not in keys[0]
    assert 86400 * 1000 < redis_client.pttl(keys[0]) <= (86400 + 100) * 1000


async def test_health_readiness_and_metrics(
    http: aiohttp.ClientSession, proxy_proc: ProxyProcess, standin_proc: StandinProcess, keys: Keys
) -> None:
    async with http.get(f"{proxy_proc.url}/healthz") as response:
        assert response.status == 200
    async with http.get(f"{proxy_proc.url}/readyz") as response:
        assert response.status == 200 and (await response.json())["status"] == "ready"

    async def scrape() -> str:
        async with http.get(f"{proxy_proc.url}/metrics") as response:
            return await response.text()

    before = await scrape()
    await get(http, proxy_proc, "length=2&ending_at=2018-06-28", keys.a)
    await get(http, proxy_proc, "length=2&ending_at=2018-06-28", keys.a)
    await get(http, proxy_proc, "length=0", keys.a)
    after = await scrape()

    def added(name: str, **labels: str) -> float:  # the process is shared: count what this test added
        return (metric(after, name, **labels) or 0) - (metric(before, name, **labels) or 0)

    requests = "braze_proxy_requests_total"
    assert added(requests, braze_endpoint="sessions", cache="miss", code="200") == 1
    assert added(requests, braze_endpoint="sessions", cache="hit", code="200") == 1
    assert added(requests, braze_endpoint="sessions", cache="bypass", code="400") == 1
    assert added("braze_proxy_upstream_requests_total", braze_endpoint="sessions", code="200") == 1
    assert added("braze_proxy_request_duration_seconds_count", braze_endpoint="sessions") == 3
    assert keys.a not in after


async def test_unknown_routes_and_methods_get_braze_style_json(
    http: aiohttp.ClientSession, proxy_proc: ProxyProcess, standin_proc: StandinProcess, keys: Keys
) -> None:
    async with http.get(f"{proxy_proc.url}/feed/nothing?length=1") as response:
        assert response.status == 404 and (await response.json())["message"].startswith("Not found")
    async with http.post(f"{proxy_proc.url}{PATH}?length=1", data=b"x") as response:
        assert response.status == 405 and "message" in await response.json()
    assert standin_proc.stats()["calls"] == 0


async def test_logs_are_json_lines(
    http: aiohttp.ClientSession, proxy_proc: ProxyProcess, standin_proc: StandinProcess, keys: Keys
) -> None:
    await get(http, proxy_proc, "length=2&ending_at=2018-06-28", keys.a)
    lines = [line for line in proxy_proc.logs().splitlines() if line.strip()]
    assert lines
    for line in lines:
        record = json.loads(line)
        assert {"time", "level", "message"} <= record.keys()
    assert keys.a not in proxy_proc.logs()
