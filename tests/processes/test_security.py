"""Security properties, against real processes: credentials never share data nor leak (Redis keys and values,
logs, /metrics, error bodies), client tokens gate managed mode, the upstream host and path are fixed,
request lines and headers are bounded, and /metrics can live on a port of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
import redis
from aiohttp import web

from tests.support.load import HOST, PATH, Outcome, RawAnswer, bearer, data_query, get, raw_get, scrape
from tests.support.procs import ProxyFactory, ProxyProcess, RedisServer, StandinProcess, free_port

KEY_A = "sk-alpha-7f3c9e21d4b8a6f0"
KEY_B = "sk-bravo-0a6f8b4d12e9c3f7"
PREFIX = "sec-test:"


@pytest.fixture(scope="module")
def shared_proxy(redis_server: RedisServer, standin_process: StandinProcess) -> Iterator[ProxyProcess]:
    """Pass-through mode on Redis, logging at DEBUG so the log holds as much as it ever would."""
    env = {
        "BRAZE_PROXY_UPSTREAM_URL": standin_process.url,
        "BRAZE_PROXY_REDIS_URL": redis_server.url,
        "BRAZE_PROXY_REDIS_KEY_PREFIX": PREFIX,
        "BRAZE_PROXY_LOG_LEVEL": "DEBUG",
    }
    with ProxyProcess(env) as process:
        yield process


async def raw(port: int, target: str, headers: dict[str, str] | None = None) -> RawAnswer:
    """`raw_get` in a thread: the event loop stays free to serve this module's in-process listeners."""
    return await asyncio.to_thread(raw_get, port, target, headers)


async def ask(proxy: ProxyProcess, query: str, headers: dict[str, str] | None = None) -> Outcome:
    async with aiohttp.ClientSession() as session:
        return await get(session, f"{proxy.url}{PATH}?{query}", headers)


async def direct(standin_proc: StandinProcess, query: str, key: str) -> bytes:
    """What the stand-in itself answers `key` (deterministic per key)."""
    async with aiohttp.ClientSession() as session:
        outcome = await get(session, f"{standin_proc.url}{PATH}?{query}", bearer(key))
    assert outcome.status == 200
    return outcome.body


async def test_two_keys_asking_the_same_question_never_share_data(
    shared_proxy: ProxyProcess, standin_proc: StandinProcess
) -> None:
    query = data_query(length=5, ending_at="2024-02-10")
    a1, b1, a2, b2 = [await ask(shared_proxy, query, bearer(k)) for k in (KEY_A, KEY_B, KEY_A, KEY_B)]
    assert [o.status for o in (a1, b1, a2, b2)] == [200] * 4
    assert "fwd=miss" in a1.cache_status and "fwd=miss" in b1.cache_status  # B did not get A's entry
    assert "hit" in a2.cache_status and "hit" in b2.cache_status
    assert a1.body == a2.body and b1.body == b2.body and a1.body != b1.body
    # Each key's misses went upstream with that key alone (a widened fetch, and a one-bucket label probe the
    # first time a key asks for days), A's calls all before B's.
    auth = [r["authorization"] for r in standin_proc.stats()["requests"]]
    assert auth and auth == sorted(auth) and set(auth) == {f"Bearer {KEY_A}", f"Bearer {KEY_B}"}, auth
    # And each got exactly what Braze answers that key for this very question.
    assert a1.body == await direct(standin_proc, query, KEY_A)
    assert b1.body == await direct(standin_proc, query, KEY_B)


async def test_concurrent_misses_of_two_keys_are_not_coalesced_together(
    shared_proxy: ProxyProcess, standin_proc: StandinProcess
) -> None:
    query = data_query(length=6, ending_at="2024-02-11")
    async with aiohttp.ClientSession() as session:
        keys = [KEY_A, KEY_B] * 10
        answers = await asyncio.gather(*(get(session, f"{shared_proxy.url}{PATH}?{query}", bearer(k)) for k in keys))
    expected = {key: await direct(standin_proc, query, key) for key in (KEY_A, KEY_B)}
    assert expected[KEY_A] != expected[KEY_B]
    for key, outcome in zip(keys, answers, strict=True):
        assert outcome.status == 200 and outcome.body == expected[key]


async def test_legacy_api_key_parameter_goes_upstream_as_a_header_only(
    shared_proxy: ProxyProcess, standin_proc: StandinProcess
) -> None:
    query = data_query(length=4, ending_at="2024-02-12")
    legacy = await ask(shared_proxy, f"{query}&api_key={KEY_B}")
    header = await ask(shared_proxy, query, bearer(KEY_B))
    assert legacy.status == 200 and "hit" in header.cache_status  # the same credential, the same entry
    (request,) = standin_proc.stats()["requests"]
    assert request["authorization"] == f"Bearer {KEY_B}"
    assert KEY_B not in request["query"] and "api_key" not in request["query"]


async def test_credentials_appear_in_no_key_value_log_metric_or_error_body(
    shared_proxy: ProxyProcess, standin_proc: StandinProcess, redis_server: RedisServer
) -> None:
    secrets = [KEY_A, KEY_B, "sk-rejected-5e5e5e5e5e5e", "sk-legacy-9d9d9d9d9d9d"]
    standin_proc.config(rejected_keys=[secrets[2]])
    answers = [
        await ask(shared_proxy, data_query(length=9), bearer(KEY_A)),  # stored under A's scope
        await ask(shared_proxy, data_query(length=9), bearer(KEY_B)),
        await ask(shared_proxy, data_query(length=9), bearer(secrets[2])),  # Braze's 401, passed on
        await ask(shared_proxy, f"length=0&api_key={secrets[3]}"),  # 400 with the credential in the query
        await ask(shared_proxy, f"length=9&api_key={secrets[3]}&bogus=1"),
        await ask(shared_proxy, f"api_key={secrets[3]}&api_key={secrets[3]}&length=3"),  # repeated
        await ask(shared_proxy, "length=3", {"Authorization": f"Basic {KEY_A}"}),  # 401
        await ask(shared_proxy, "length=3", {"Authorization": f"Bearer {KEY_A}\u00e9"}),  # 401, not ASCII
    ]
    standin_proc.config(fail_status=500, fail_count=-1)
    # A window no earlier fetch covered (the first ones brought 100 days ending today): a 502.
    answers.append(await ask(shared_proxy, data_query(length=10, ending_at="2019-01-01"), bearer(KEY_A)))
    assert [o.status for o in answers] == [200, 200, 401, 400, 400, 400, 401, 401, 502]

    client = redis.Redis.from_url(redis_server.url)
    try:
        # DUMP: every kind of value (entries are strings, budgets are hashes), serialized with its bytes.
        stored = {k: client.dump(k) for k in client.scan_iter(match=f"{PREFIX}*", count=1000)}
    finally:
        client.close()
    assert len([k for k in stored if b":lock" not in k and b":fail" not in k]) >= 2
    async with aiohttp.ClientSession() as session:
        metrics = await scrape(session, shared_proxy.url)
    logs = shared_proxy.logs()
    assert '"upstream call"' in logs  # the log did record these requests
    for secret in secrets:
        raw = secret.encode()
        assert not any(raw in key or raw in (value or b"") for key, value in stored.items()), secret
        assert secret not in logs and secret not in metrics
        # Nor its full hash: the scope is a truncated SHA-256, never something to look a key up by.
        assert hashlib.sha256(raw).hexdigest() not in logs
        for outcome in answers[2:]:
            assert raw not in outcome.body, (secret, outcome.body)


async def test_malformed_requests_are_logged_without_their_bytes(
    shared_proxy: ProxyProcess, standin_proc: StandinProcess
) -> None:
    """What the HTTP parser refuses gets a JSON 400 that quotes nothing of the request (aiohttp's own plain-text
    answer would echo the offending line back); the log keeps only the kind of error."""
    secret = "sk-malformed-4c4c4c4c4c4c"
    port = shared_proxy.port
    answers = [
        await raw(port, f"{PATH}?length=1", {"Authorization": f"Bearer {secret}" + "x" * 9000}),
        await raw(port, f"{PATH}?length=1", {"Authorization": f"Bearer {secret}\x01"}),
        await raw(port, f"{PATH}?api_key={secret}&x=\x7f"),
        await raw(port, f"{PATH}?api_key={secret}&" + "y" * 70_000),
    ]  # fmt: skip
    for answer in answers:
        assert answer.status in (400, 414, 431), answer
        assert json.loads(answer.body)["message"].startswith("Bad request: the HTTP request could not be parsed")
        assert secret.encode() not in answer.body and b"xxxxxxxx" not in answer.body
        cache_status = {k.lower(): v for k, v in answer.headers.items()}.get("cache-status")
        assert cache_status == "braze-proxy; fwd=bypass; detail=unparsable-request", answer.headers
    await asyncio.sleep(0.2)  # the log line is written after the answer
    logs = shared_proxy.logs()
    assert "refused a malformed request" in logs
    assert secret not in logs and "Traceback" not in logs
    assert standin_proc.stats()["calls"] == 0
    assert shared_proxy.healthy()


async def test_managed_mode_gates_on_client_tokens(start_proxy: ProxyFactory, standin_proc: StandinProcess) -> None:
    managed_key = "sk-managed-upstream-1b2b3b4b"
    proxy = start_proxy(API_KEY=managed_key, CLIENT_TOKENS="alpha:tok-alpha-abcdef123,beta:tok-beta-abcdef456")
    query = data_query(length=2, ending_at="2024-03-01")
    refused = [
        await ask(proxy, query),
        await ask(proxy, query, bearer("wrong")),
        await ask(proxy, query, bearer("tok-alpha-abcdef12")),  # a prefix
        await ask(proxy, query, bearer("tok-alpha-abcdef1234")),  # an extension
        await ask(proxy, query, bearer("TOK-ALPHA-123")),
        await ask(proxy, query, bearer(managed_key)),  # the upstream key is not a client token
        await ask(proxy, query, {"Authorization": "Basic tok-alpha-abcdef123"}),
        await ask(proxy, f"{query}&api_key=tok-alpha-abcdef123"),
    ]
    for outcome in refused:
        assert outcome.status == 401, outcome
        assert json.loads(outcome.body)["message"].startswith("Unauthorized")
    assert standin_proc.stats()["calls"] == 0
    alpha = await ask(proxy, query, bearer("tok-alpha-abcdef123"))
    beta = await ask(proxy, query, bearer("tok-beta-abcdef456"))
    assert alpha.status == beta.status == 200
    assert "hit" in beta.cache_status  # one upstream credential: the teams share its entries
    assert [r["authorization"] for r in standin_proc.stats()["requests"]] == [f"Bearer {managed_key}"]
    logs = proxy.logs()
    assert '"team":"alpha"' in logs
    for secret in (managed_key, "tok-alpha-abcdef123", "tok-beta-abcdef456"):
        assert secret not in logs
        for outcome in [*refused, alpha, beta]:
            assert secret.encode() not in outcome.body


# --- the upstream host and path are fixed ----------------------------------------------------------------------


@asynccontextmanager
async def recording_upstream() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """An upstream that records every request (any method, any path) and answers a success."""
    seen: list[dict[str, Any]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append({"method": request.method, "path": request.raw_path, "host": request.headers.get("Host")})
        return web.json_response({"message": "success", "data": []})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, HOST, port).start()
    try:
        yield f"http://{HOST}:{port}", seen
    finally:
        await runner.cleanup()


@asynccontextmanager
async def trap() -> AsyncIterator[tuple[int, list[bytes]]]:
    """A listener that must never be reached: it records whatever connects to it."""
    reached: list[bytes] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reached.append(await reader.read(200))
        writer.close()

    server = await asyncio.start_server(on_connect, HOST, 0)
    try:
        yield server.sockets[0].getsockname()[1], reached
    finally:
        server.close()
        await server.wait_closed()


async def test_no_request_chooses_the_upstream_host_or_path(start_proxy: ProxyFactory) -> None:
    async with recording_upstream() as (upstream_url, seen), trap() as (evil, reached):
        proxy = start_proxy(UPSTREAM_URL=upstream_url)
        evil_host = f"{HOST}:{evil}"
        q = data_query(length=1)
        attempts: list[tuple[str, dict[str, str]]] = [
            (f"http://{evil_host}{PATH}?{q}", {}),  # absolute-form request target
            (f"http://{evil_host}/elsewhere?{q}", {}),
            (f"{PATH}?{q}", {"Host": evil_host}),
            (f"{PATH}?{q}", {"X-Forwarded-Host": evil_host, "Forwarded": f"host={evil_host}"}),
            (f"{PATH}?{q}", {"X-Original-URL": "/elsewhere", "X-Rewrite-URL": "/elsewhere"}),
            (f"//{evil_host}{PATH}?{q}", {}),
            (f"{PATH}/../../elsewhere?{q}", {}),
            (f"{PATH}/..%2f..%2felsewhere?{q}", {}),
            (f"/sessions/%2e%2e/elsewhere?{q}", {}),
            (f"{PATH}%2f..%2f..%2felsewhere?{q}", {}),
            (f"{PATH}?{q}&app_id=..%2F..%2Felsewhere", {}),
            (f"{PATH}?{q}&app_id=x%26segment_id%3Dy%23frag", {}),
            (f"{PATH}?{q}&url=http://{evil_host}/", {}),
            (f"{PATH}?{q}&ending_at=http://{evil_host}", {}),
        ]
        answers: list[RawAnswer] = []
        for target, headers in attempts:
            answers.append(await raw(proxy.port, target, {**bearer(KEY_A), **headers}))
        connect = await raw(proxy.port, evil_host, bearer(KEY_A))  # authority form
        await asyncio.sleep(0.2)
    for (target, _), answer in zip(attempts, answers, strict=True):
        assert answer.status in (200, 400, 404), (target, answer)
    assert connect.status in (400, 404), connect
    assert reached == []
    assert seen, "the valid attempts did reach the configured upstream"
    for request in seen:
        assert request == {"method": "GET", "path": request["path"], "host": upstream_url.removeprefix("http://")}
        assert request["path"].startswith(f"{PATH}?length=1&unit=day&ending_at="), request
    assert any("app_id=..%2F..%2Felsewhere" in r["path"] for r in seen)
    assert any("app_id=x%26segment_id%3Dy%23frag" in r["path"] for r in seen)


async def test_oversized_request_lines_and_headers_are_refused(
    shared_proxy: ProxyProcess, standin_proc: StandinProcess
) -> None:
    port = shared_proxy.port
    q = data_query(length=1)
    long_query = await ask(shared_proxy, f"{q}&app_id={'a' * 3000}", bearer(KEY_A))
    assert long_query.status == 400 and json.loads(long_query.body)["message"].startswith("Invalid request")
    refused = [
        await raw(port, f"{PATH}?{q}&app_id={'a' * 70_000}", bearer(KEY_A)),
        await raw(port, f"{PATH}?{q}", {**bearer(KEY_A), "X-Big": "b" * 20_000}),
        await raw(port, f"{PATH}?{q}", {**bearer(KEY_A), **{f"X-H{i}": "v" for i in range(200)}}),  # 200 headers
    ]  # fmt: skip
    for answer in refused:
        assert answer.status in (400, 413, 414, 431), answer
    assert standin_proc.stats()["calls"] == 0
    assert shared_proxy.healthy()
    after = await ask(shared_proxy, data_query(length=11), bearer(KEY_A))
    assert after.status == 200


async def test_metrics_and_health_can_live_on_their_own_port(
    start_proxy: ProxyFactory, standin_proc: StandinProcess
) -> None:
    ops = free_port()
    proxy = start_proxy(METRICS_PORT=ops, health_port=ops)
    async with aiohttp.ClientSession() as session:
        routes = ("/metrics", "/healthz", "/readyz")
        main = {route: await get(session, f"{proxy.url}{route}") for route in routes}
        side = {route: await get(session, f"http://{HOST}:{ops}{route}") for route in routes}
        proxied_on_ops = await get(session, f"http://{HOST}:{ops}{PATH}?{data_query()}", bearer(KEY_A))
        proxied = await get(session, f"{proxy.url}{PATH}?{data_query()}", bearer(KEY_A))
    for route, outcome in main.items():
        assert outcome.status == 404, route
        assert json.loads(outcome.body)["message"] == f"Not found: braze-proxy does not serve GET {route}"
    assert all(outcome.status == 200 for outcome in side.values())
    assert b"braze_proxy_requests_total" in side["/metrics"].body
    assert proxied_on_ops.status == 404
    assert proxied.status == 200
