"""Edges from the adversarial pass (issue 15) not covered elsewhere: an egress proxy in front of Braze, and a
"stored" claim only when something was kept."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.support.braze_standin import StandinServer
from tests.support.harness import proxy_in_process, standin_in_process

QUERY = "length=100&ending_at=2020-02-01T00:00:00Z"


@pytest.fixture
async def standin_server() -> AsyncIterator[StandinServer]:
    async with standin_in_process() as server:
        yield server


class ForwardProxy:
    """A plain HTTP forward proxy on loopback: takes absolute-form requests, relays them, counts them."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _relay(self, request: web.Request) -> web.Response:
        self.seen.append(str(request.url))
        async with aiohttp.ClientSession() as session:
            headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "user-agent")}
            async with session.get(str(request.url), headers=headers) as upstream:
                body = await upstream.read()
                return web.Response(body=body, status=upstream.status, content_type="application/json")

    async def __aenter__(self) -> ForwardProxy:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._relay)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def test_calls_to_braze_go_through_the_egress_proxy_when_set(standin_server: StandinServer) -> None:
    async with ForwardProxy() as forward, proxy_in_process(standin_server.url, upstream_proxy=forward.url) as proxy:
        reply = await proxy.get(QUERY)
        assert reply.status == 200
        assert len(forward.seen) == 1 and forward.seen[0].startswith(f"{standin_server.url}/sessions/data_series?")
        assert standin_server.state.calls == 1


async def test_stored_is_claimed_only_when_an_entry_was_kept(standin_server: StandinServer) -> None:
    values: dict[str, Any] = {"memory_max_bytes": 1024}  # smaller than a 100-day answer
    async with proxy_in_process(standin_server.url, **values) as proxy:
        first = await proxy.get(QUERY)
        assert first.status == 200 and len(first.body) > 1024
        assert "stored" not in first.cache_status
        again = await proxy.get(QUERY)
        assert "stored" not in again.cache_status and "hit" not in again.cache_status
        assert standin_server.state.calls == 2
