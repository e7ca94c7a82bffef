"""The hot path in process, on a moved clock: a remembered request served from the process's own entries, never
past the entry's freshness, counted in /metrics although its counts are batched; "now" questions move to the
next bucket when the current one ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.braze_standin import StandinServer
from tests.support.harness import ManualClock, proxy_in_process, standin_in_process

QUERY = "length=3&ending_at=2020-01-01T00:00:00Z"  # settled: the TTL is BRAZE_PROXY_TTL_SETTLED


@pytest.fixture
async def standin_server() -> AsyncIterator[StandinServer]:
    async with standin_in_process() as server:
        yield server


async def test_hits_stop_when_the_entry_stops_being_fresh(
    standin_server: StandinServer, store_settings: dict[str, Any]
) -> None:
    clock = ManualClock()
    async with proxy_in_process(
        standin_server.url,
        clock,
        ttl_settled=3,
        stale_while_revalidate_seconds=0,
        api_key="k",
        allow_anonymous=True,
        **store_settings,
    ) as proxy:
        assert "fwd=miss" in (await proxy.get(QUERY)).cache_status
        for step in range(29):  # the remembered request, answered from this process until 3 s have passed
            clock.advance(0.1)
            hit = await proxy.get(QUERY)
            assert hit.cache_status == f"braze-proxy; hit; ttl={int(3 - 0.1 * (step + 1) + 1e-9)}", step
        clock.advance(0.11)  # past fresh_until: neither the process's entries nor the memo may answer
        assert (await proxy.get(QUERY)).cache_status == "braze-proxy; fwd=stale; fwd-status=200; stored"
        assert standin_server.state.calls == 2
        counted = await proxy.metric("braze_proxy_requests_total", braze_endpoint="sessions", cache="hit")
        assert counted == 29


async def test_now_moves_to_the_next_bucket_when_the_hour_ends(standin_server: StandinServer) -> None:
    hour = 3600.0
    clock = ManualClock(start=(ManualClock().now // hour) * hour + hour - 1.0)  # a second before the hour ends
    async with proxy_in_process(standin_server.url, clock, ttl_open_hour=600) as proxy:
        before = await proxy.get("length=2&unit=hour")
        assert (await proxy.get("length=2&unit=hour")).cache_status.startswith("braze-proxy; hit;")
        clock.advance(1.5)  # the next hour: a new question, though the raw request is the same
        after = await proxy.get("length=2&unit=hour")
        assert "fwd=miss" in after.cache_status
        assert before.json()["data"][1]["time"] == after.json()["data"][0]["time"]
        assert standin_server.state.calls == 2


async def test_the_series_dispatch_and_the_router_answer_a_hit_alike(standin_server: StandinServer) -> None:
    """A GET is handed to its handler before aiohttp's router (hooks.SeriesDispatch); a HEAD goes through the
    router and the middlewares to the same handler: the same headers, both counted as hits."""
    async with proxy_in_process(standin_server.url, api_key="k", allow_anonymous=True) as proxy:
        await proxy.get(QUERY)
        dispatched = await proxy.get(QUERY)
        async with proxy.client.head(f"/sessions/data_series?{QUERY}", headers={"Authorization": "Bearer key-a"}) as r:
            routed = dict(r.headers)
        assert dispatched.cache_status.startswith("braze-proxy; hit;")
        ignored = {"Date", "X-Request-ID"}
        assert {k: v for k, v in dispatched.headers.items() if k not in ignored} == {
            k: v for k, v in routed.items() if k not in ignored
        }
        assert "X-RateLimit-Limit" in routed and routed["Content-Length"] == str(len(dispatched.body))
        assert await proxy.metric("braze_proxy_requests_total", braze_endpoint="sessions", cache="hit") == 2
        assert standin_server.state.calls == 1
