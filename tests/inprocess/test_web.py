"""The HTTP shell in process: every answer is Braze-style JSON with a Cache-Status and no version in Server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.braze_standin import StandinServer
from tests.support.harness import InProcessProxy, proxy_in_process, standin_in_process


@pytest.fixture
async def proxy_app() -> AsyncIterator[InProcessProxy]:
    async with standin_in_process() as standin_server, proxy_in_process(standin_server.url) as p:
        yield p


async def test_an_unknown_path_is_a_json_404_with_a_cache_status(proxy_app: InProcessProxy) -> None:
    reply = await proxy_app.get("length=1&api_key=secret", path="/kpi/nothing/data_series")
    assert reply.status == 404
    assert reply.json() == {
        "message": "Not found: braze-proxy does not serve GET /kpi/nothing/data_series",
        "errors": ["unserved path '/kpi/nothing/data_series'"],
    }  # the path, never the query
    assert reply.cache_status == "braze-proxy; fwd=bypass"
    assert reply.headers["Server"] == "braze-proxy"


async def test_a_wrong_method_is_a_405_that_says_what_is_allowed(proxy_app: InProcessProxy) -> None:
    async with proxy_app.client.post("/sessions/data_series?length=1", data=b"x") as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET, HEAD"
        assert response.headers["Cache-Status"] == "braze-proxy; fwd=bypass"
        assert (await response.json())["message"].startswith("Method not allowed: braze-proxy serves Braze's read-only")


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json", "/sessions/data_series"])
async def test_no_answer_names_python_or_aiohttp(proxy_app: InProcessProxy, path: str) -> None:
    reply = await proxy_app.get("length=1&ending_at=2020-01-01", path=path)
    assert reply.headers["Server"] == "braze-proxy"


async def test_readiness_of_the_memory_store(proxy_app: InProcessProxy) -> None:
    async with proxy_app.client.get("/readyz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ready", "store": "memory"}


async def test_bad_input_is_a_400_naming_the_problem_without_an_upstream_call(standin_server: None = None) -> None:
    async with standin_in_process() as server, proxy_in_process(server.url) as proxy_app:
        await _bad_inputs(proxy_app, server)


async def _bad_inputs(proxy_app: InProcessProxy, server: StandinServer) -> None:
    for query, fragment in [
        ("", "parameter 'length' is required"),
        ("length=101", "parameter 'length' must be an integer from 1 to 100"),
        ("length=1&unit=week", "parameter 'unit' must be 'day' or 'hour'"),
        ("length=1&bogus=1", "unknown parameter 'bogus'"),
        ("length=1&ending_at=yesterday", "parameter 'ending_at' must be an ISO-8601"),
    ]:
        reply = await proxy_app.get(query)
        assert reply.status == 400, query
        assert fragment in reply.json()["message"], (query, reply.body)
        assert reply.cache_status == "braze-proxy; fwd=bypass"
    assert server.state.calls == 0


async def test_a_bug_is_a_json_500_with_a_cache_status_and_no_traceback(proxy_app: InProcessProxy) -> None:
    async def bug(*args: object) -> None:
        raise RuntimeError("a bug stands in here")

    proxy_app.components.service.answer = bug  # the shell's last resort is what is under test, not the service
    reply = await proxy_app.get("length=1")
    assert reply.status == 500
    assert reply.json() == {"message": "Internal error"}
    assert reply.cache_status == "braze-proxy; detail=internal"
    assert reply.headers["X-Request-ID"]
