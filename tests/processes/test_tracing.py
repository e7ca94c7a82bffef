"""Tracing on a real proxy process, switched on by the standard OTEL_* variables: the request span is the child of
the client's traceparent and holds the Redis and Braze spans; off, nothing is traced."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from tests.support.procs import ProxyFactory, ProxyProcess, RedisServer, StandinProcess

KEY = "5f2c9a3e-9999-4a6b-9c1d-eeeeeeeeeeee"
TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"


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


async def test_a_request_is_traced_under_the_clients_trace(
    standin_proc: StandinProcess, redis_server: RedisServer
) -> None:
    env = {
        "BRAZE_PROXY_UPSTREAM_URL": standin_proc.url,
        "BRAZE_PROXY_REDIS_URL": redis_server.url,
        "BRAZE_PROXY_REDIS_KEY_PREFIX": "tracing:",  # the budgets other tests on this redis-server drained: not ours
        "BRAZE_PROXY_WINDOWS": "false",
        # The console exporter's spans and the access log's batches share the captured output: a batch written
        # while a span is being printed would cut its JSON (it did, once, on a busy machine).
        "BRAZE_PROXY_ACCESS_LOG": "false",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_SERVICE_NAME": "bp",
    }
    with ProxyProcess(env) as proxy:
        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": f"Bearer {KEY}", "traceparent": f"00-{TRACE}-{PARENT}-01"}
            url = f"{proxy.url}/sessions/data_series?length=2&ending_at=2018-06-28&app_id=traced"
            async with session.get(url, headers=headers) as reply:
                assert reply.status == 200
        found = spans(proxy, {"GET /sessions/data_series", "braze GET", "redis GET", "redis SET"})
        logs = proxy.logs()
    by_name = {s["name"]: s for s in found}
    request = by_name["GET /sessions/data_series"]
    assert request["context"]["trace_id"] == f"0x{TRACE}"
    assert request["parent_id"] == f"0x{PARENT}"
    assert request["attributes"]["http.response.status_code"] == 200
    assert request["resource"]["attributes"]["service.name"] == "bp"
    for child in ("braze GET", "redis GET", "redis SET"):
        assert by_name[child]["context"]["trace_id"] == f"0x{TRACE}", child
    assert KEY not in logs and "app_id=traced" not in logs


async def test_without_otel_variables_nothing_is_traced(start_proxy: ProxyFactory) -> None:
    proxy = start_proxy()
    async with aiohttp.ClientSession() as session:
        url = f"{proxy.url}/sessions/data_series?length=2&ending_at=2018-06-28"
        async with session.get(url, headers={"Authorization": f"Bearer {KEY}"}) as reply:
            assert reply.status == 200
    await asyncio.sleep(0.3)
    assert spans(proxy, set()) == []
