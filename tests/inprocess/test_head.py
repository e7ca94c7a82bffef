"""HEAD goes wherever GET does (RFC 9110 §9.3.2): the real app in process against the stand-in, one test per
served route. The answer is GET's without its body: the same status and headers, the same cache behaviour, and
never more upstream calls than the GET would have made."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from proxy.core.endpoints import SERVED, Endpoint
from proxy.core.exports import EXPORTS, Export
from tests.inprocess.test_endpoints import query_of
from tests.inprocess.test_exports import path_of
from tests.inprocess.test_exports import query_of as export_query_of
from tests.support.braze_standin import StandinServer
from tests.support.harness import InProcessProxy, Reply, proxy_in_process, standin_in_process

# Headers that differ between two answers to the same question on their own (when, which request).
PER_ANSWER = {"Date", "X-Request-ID", "Age"}
OPS = ["/healthz", "/readyz", "/metrics", "/openapi.json"]


@pytest.fixture
async def standin_server() -> AsyncIterator[StandinServer]:
    async with standin_in_process() as server:
        yield server


@pytest.fixture(params=[False, True], ids=["exact", "windows"])
async def proxy_app(standin_server: StandinServer, request: pytest.FixtureRequest) -> AsyncIterator[InProcessProxy]:
    async with proxy_in_process(standin_server.url, windows=request.param) as p:
        yield p


async def head(proxy_app: InProcessProxy, path: str, query: str = "", key: str | None = "key-a") -> Reply:
    url = f"{path}?{query}" if query else path
    sent = {"Authorization": f"Bearer {key}"} if key is not None else {}
    async with proxy_app.client.head(url, headers=sent, allow_redirects=False) as response:
        return Reply(response.status, dict(response.headers), await response.read())


def same_headers(a: Reply, b: Reply) -> None:
    assert {k: v for k, v in a.headers.items() if k not in PER_ANSWER} == {
        k: v for k, v in b.headers.items() if k not in PER_ANSWER
    }


@pytest.mark.parametrize("endpoint", SERVED, ids=[e.name for e in SERVED])
async def test_head_of_a_series_is_its_get_without_the_body(
    proxy_app: InProcessProxy, standin_server: StandinServer, endpoint: Endpoint
) -> None:
    query = query_of(endpoint)
    cold = await head(proxy_app, endpoint.path, query)
    assert cold.status == 200, cold.headers
    assert cold.body == b""
    assert "fwd=miss" in cold.cache_status
    calls = standin_server.state.calls
    assert calls >= 1, "a cold HEAD asks Braze once, as the GET would"

    got = await proxy_app.get(query, path=endpoint.path)  # what HEAD kept is what GET is answered from
    assert got.status == 200
    assert got.body
    assert standin_server.state.calls == calls, "the GET is a hit on what the HEAD fetched"

    warm = await head(proxy_app, endpoint.path, query)
    assert warm.status == 200 and warm.body == b""
    same_headers(warm, got)
    assert standin_server.state.calls == calls, "a warm HEAD costs no call"


async def test_head_refusals_are_the_gets_without_a_call(
    proxy_app: InProcessProxy, standin_server: StandinServer
) -> None:
    path = SERVED[0].path
    for query, key, status in (("length=0", "key-a", 400), (query_of(SERVED[0]), None, 401)):
        got = await proxy_app.get(query, key=key, path=path)
        headed = await head(proxy_app, path, query, key=key)
        assert (headed.status, got.status) == (status, status)
        assert headed.body == b"" and got.body
        same_headers(headed, got)
    assert standin_server.state.calls == 0


@pytest.mark.parametrize("path", OPS)
async def test_head_of_an_operations_route_is_its_get_without_the_body(proxy_app: InProcessProxy, path: str) -> None:
    got = await proxy_app.get(path=path, key=None)
    headed = await head(proxy_app, path, key=None)
    assert headed.status == got.status == 200
    assert headed.body == b"" and got.body
    assert headed.headers["Content-Type"] == got.headers["Content-Type"]
    assert headed.headers["Server"] == got.headers["Server"] == "braze-proxy"


async def test_every_get_route_answers_head(proxy_app: InProcessProxy) -> None:
    """No route is left out of the tests above: the app's GET routes are the series and the operations routes."""
    routes = {r.resource.canonical for r in proxy_app.client.server.app.router.routes() if r.resource is not None}  # type: ignore[union-attr]
    methods = {
        (r.resource.canonical, r.method)
        for r in proxy_app.client.server.app.router.routes()  # type: ignore[union-attr]
        if r.resource is not None
    }
    gets = {path for path, method in methods if method == "GET"}
    assert gets == {e.path for e in SERVED} | {e.path for e in EXPORTS} | set(OPS)
    assert {path for path, method in methods if method == "HEAD"} == gets
    assert routes >= gets


@pytest.mark.parametrize("export", EXPORTS, ids=[e.name for e in EXPORTS])
async def test_head_of_an_export_is_its_get_without_the_body(
    proxy_app: InProcessProxy, standin_server: StandinServer, export: Export
) -> None:
    path, query = path_of(export), export_query_of(export)
    cold = await head(proxy_app, path, query)
    assert cold.body == b""
    calls = standin_server.state.calls
    assert calls <= 1, "a cold HEAD asks Braze at most once, as the GET would"
    got = await proxy_app.get(query, path=path)
    assert got.status == cold.status and got.body
    warm = await head(proxy_app, path, query)
    assert warm.status == got.status and warm.body == b""
    assert warm.headers.get("Content-Type") == got.headers.get("Content-Type")
