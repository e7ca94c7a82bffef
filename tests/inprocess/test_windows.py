"""Windows answered from buckets, in process: the real app and stand-in, a moved clock, a real redis-server for
the shared store and for two replicas. Every assembled answer is compared with the stand-in's own answer to the
exact question."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.support.braze_standin import StandinServer
from tests.support.harness import PATH, InProcessProxy, ManualClock, proxy_in_process, standin_in_process
from tests.support.procs import RedisServer

KEY = "key-a"
# A fixed "now" (mid-afternoon UTC) so that day buckets in the past are settled and today's is open.
NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC).timestamp()


@pytest.fixture
async def standin_server() -> AsyncIterator[StandinServer]:
    async with standin_in_process() as server:
        server.state.clock = lambda: clock_now[0]
        yield server


clock_now = [NOW]


@pytest.fixture
def clock() -> ManualClock:
    clock_now[0] = NOW
    return SharedClock(NOW)


class SharedClock(ManualClock):
    """The proxy's clock, which the stand-in reads too (so "now" and open buckets agree)."""

    def advance(self, seconds: float) -> None:
        super().advance(seconds)
        clock_now[0] = self.now

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds)
        clock_now[0] = self.now


async def exact(standin_server: StandinServer, query: str) -> Any:
    """The stand-in's own answer to the exact question."""
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {KEY}"}
        async with session.get(f"{standin_server.url}{PATH}?{query}", headers=headers) as response:
            assert response.status == 200, await response.text()
            return await response.json()


def windows_proxy(standin_server: StandinServer, clock: ManualClock, **values: Any) -> Any:
    values.setdefault("stale_while_revalidate_seconds", 0)
    # These tests count upstream calls across replicas sharing Redis: a Redis call cut at the default 0.5 s on a
    # starved CPU degrades a replica to checking and filling alone (as it should: it failed once, beside two busy
    # loops). Outage tests set their own short timeout.
    values.setdefault("redis_timeout", 5.0)
    return proxy_in_process(standin_server.url, clock, windows=True, **values)


async def test_random_windows_inside_a_fetch_equal_braze_and_cost_nothing(
    standin_server: StandinServer, clock: ManualClock, store_settings: dict[str, Any]
) -> None:
    async with windows_proxy(standin_server, clock, **store_settings) as proxy:
        await proxy.get("length=100&ending_at=2026-11-10T00:00:00Z&app_id=warm")  # checks these dates
        warm = standin_server.state.calls
        first = await proxy.get("length=7&ending_at=2026-11-10T12:00:00Z&app_id=app-1")
        assert first.status == 200 and "fwd=miss" in first.cache_status
        calls = standin_server.state.calls
        assert calls == warm + 1  # one widened fetch: its dates were checked for the other series
        rng = random.Random(7)
        for _ in range(40):
            length = rng.randint(1, 100)
            last = datetime(2026, 11, 10, tzinfo=UTC) - timedelta(days=rng.randint(0, 100 - length))
            query = f"length={length}&ending_at={last.date().isoformat()}T{rng.randint(0, 23):02d}:17:00Z&app_id=app-1"
            reply = await proxy.get(query)
            assert reply.status == 200, reply.body
            assert reply.cache_status.startswith("braze-proxy; hit;"), (query, reply.cache_status)
            assert reply.json() == await exact(standin_server, query), query
        assert standin_server.state.calls == calls + 40  # only the test's own exact questions reached the stand-in
        assert await proxy.metric("braze_proxy_widened_fetches_total") == 1
        assert await proxy.metric("braze_proxy_series_buckets_total", source="fetched") == 200


async def test_hour_windows_with_filters(
    standin_server: StandinServer, clock: ManualClock, store_settings: dict[str, Any]
) -> None:
    async with windows_proxy(standin_server, clock, **store_settings) as proxy:
        base = "unit=hour&app_id=a&segment_id=s%2F1"
        for length, back in ((24, 0), (48, 3), (72, 20), (1, 99), (100, 0)):
            end = datetime(2026, 11, 19, 6, tzinfo=UTC) - timedelta(hours=back)
            query = f"{base}&length={length}&ending_at={end:%Y-%m-%dT%H:%M:%SZ}"
            reply = await proxy.get(query)
            assert reply.json() == await exact(standin_server, query), query
        assert await proxy.metric("braze_proxy_widened_fetches_total") == 1


async def test_a_window_ending_now_refetches_after_the_open_buckets_ttl_and_settled_windows_do_not(
    standin_server: StandinServer, clock: ManualClock
) -> None:
    async with windows_proxy(standin_server, clock, ttl_open_day=60, ttl_recent_day=600, ttl_settled=86_400) as proxy:
        now_window = await proxy.get("length=7")
        assert now_window.status == 200
        past = "length=7&ending_at=2026-11-12T00:00:00Z"
        assert (await proxy.get(past)).cache_status.startswith("braze-proxy; hit;")  # inside the fetched 100 days
        calls = standin_server.state.calls
        clock.advance(61)
        standin_server.state.configure({"revision": 1}, clock.now)  # today's counts grew
        refreshed = await proxy.get("length=7")
        assert "fwd=stale" in refreshed.cache_status, refreshed.cache_status
        assert refreshed.json() == await exact(standin_server, "length=7")
        assert refreshed.json()["data"][-1] != now_window.json()["data"][-1]
        assert (await proxy.get(past)).cache_status.startswith("braze-proxy; hit;")
        assert standin_server.state.calls == calls + 2  # the refetch, and the test's own exact question


async def test_sixteen_windows_of_one_series_over_two_replicas_make_one_call(
    standin_server: StandinServer, clock: ManualClock, redis_server: RedisServer, redis_client: Any
) -> None:
    async with AsyncExitStack() as stack:
        replicas = [
            await stack.enter_async_context(windows_proxy(standin_server, clock, redis_url=redis_server.url))
            for _ in range(2)
        ]
        # One replica checks the credential's time zone (on another series); its verdict serves both.
        await replicas[0].get("length=100&ending_at=2026-11-15T00:00:00Z&app_id=warm")
        calls = standin_server.state.calls
        standin_server.state.configure({"latency": 0.05}, clock.now)
        lengths = [7, 14, 30, 60, 90, 100, 3, 1] * 2
        replies = await asyncio.gather(
            *(
                replicas[i % 2].get(f"length={n}&ending_at=2026-11-15T10:00:00Z&app_id=herd")
                for i, n in enumerate(lengths)
            )
        )
        assert {r.status for r in replies} == {200}
        assert standin_server.state.calls == calls + 1
        for n, reply in zip(lengths, replies, strict=True):
            assert reply.json() == await exact(standin_server, f"length={n}&ending_at=2026-11-15T10:00:00Z&app_id=herd")


@pytest.mark.parametrize("braze_zone", ["America/New_York", "Asia/Tokyo"])
async def test_a_workspace_in_another_time_zone_gets_exact_answers(
    standin_server: StandinServer, clock: ManualClock, braze_zone: str
) -> None:
    standin_server.state.configure({"zone": braze_zone}, clock.now)
    async with windows_proxy(standin_server, clock) as proxy:
        queries = [
            "length=7&ending_at=2026-11-10T00:00:00Z",  # a bucket's start: its exact answer is not the bucket's
            "length=7&ending_at=2026-11-10T03:00:00Z",
            "length=7&ending_at=2026-11-10T20:00:00Z",
            "length=30&ending_at=2026-11-10T12:00:00Z",
            "length=7",
        ]
        for query in queries * 2:  # and each again: a repeat is served what was kept for its own instant
            reply = await proxy.get(query)
            assert reply.status == 200
            assert reply.json() == await exact(standin_server, query), (braze_zone, query, reply.cache_status)
        assert await proxy.metric("braze_proxy_label_mismatches_total", unit="day") >= 1
        ready = await proxy.client.get("/readyz")
        details = (await ready.json())["windows"]
        assert details["label_mismatches"] >= 1
        assert details["examples"][0]["zone"] == "UTC" and details["examples"][0]["unit"] == "day"
        assert "key-a" not in json.dumps(details)


async def test_the_reporting_zone_set_to_the_workspaces_zone_assembles(
    standin_server: StandinServer, clock: ManualClock
) -> None:
    standin_server.state.configure({"zone": "America/New_York"}, clock.now)
    async with windows_proxy(standin_server, clock, reporting_timezone="America/New_York") as proxy:
        await proxy.get("length=7&ending_at=2026-11-10T20:00:00-05:00")
        query = "length=30&ending_at=2026-11-08T23:00:00-05:00"
        reply = await proxy.get(query)
        assert reply.cache_status.startswith("braze-proxy; hit;")
        assert reply.json() == await exact(standin_server, query)
        assert await proxy.metric("braze_proxy_label_mismatches_total", unit="day") == 0


def hostile(points: list[dict[str, Any]]) -> web.Application:
    """A Braze that answers every question with the same `points`."""

    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"message": "success", "data": points})

    app = web.Application()
    app.router.add_get(PATH, answer)
    return app


@pytest.mark.parametrize(
    "points",
    [
        [{"time": "2026-11-09", "sessions": 1}],  # short
        [{"time": "yesterday", "sessions": 1}] * 100,  # unreadable labels
    ],
    ids=["short", "unreadable"],
)
async def test_an_answer_that_is_not_the_expected_buckets_is_answered_exactly(
    clock: ManualClock, points: list[dict[str, Any]]
) -> None:
    app = hostile(points)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with proxy_in_process(f"http://127.0.0.1:{port}", clock, windows=True) as proxy:
            reply = await proxy.get("length=7&ending_at=2026-11-10T00:00:00Z")
            assert reply.status == 200
            assert reply.json() == {"message": "success", "data": points}  # Braze's own answer, not a window
            assert await proxy.metric("braze_proxy_label_mismatches_total", unit="day") >= 1
    finally:
        await runner.cleanup()


async def test_without_widening_each_length_is_its_own_fetch(standin_server: StandinServer, clock: ManualClock) -> None:
    async with windows_proxy(standin_server, clock, widen_fetches=False) as proxy:
        await proxy.get("length=100&ending_at=2026-11-10T00:00:00Z&app_id=warm")  # checks these dates
        await proxy.get("length=30&ending_at=2026-11-10T00:00:00Z")
        calls = standin_server.state.calls
        shorter = await proxy.get("length=7&ending_at=2026-11-08T00:00:00Z")  # inside the 30 fetched
        assert shorter.cache_status.startswith("braze-proxy; hit;")
        longer = await proxy.get("length=40&ending_at=2026-11-10T00:00:00Z")
        assert "fwd=miss" in longer.cache_status
        assert standin_server.state.calls == calls + 1
        assert await proxy.metric("braze_proxy_widened_fetches_total") == 0


async def test_canvas_is_never_assembled(standin_server: StandinServer, clock: ManualClock) -> None:
    async with windows_proxy(standin_server, clock) as proxy:
        query = "canvas_id=c1&length=7&ending_at=2026-11-10T00:00:00Z"
        first = await proxy.get(query, path="/canvas/data_series")
        assert first.status == 200, first.body
        assert (await proxy.get(query, path="/canvas/data_series")).cache_status.startswith("braze-proxy; hit;")
        assert await proxy.metric("braze_proxy_widened_fetches_total") == 0


async def test_repeats_are_answered_from_the_process_without_the_store(
    standin_server: StandinServer, clock: ManualClock, redis_server: RedisServer, redis_client: Any
) -> None:
    async with windows_proxy(standin_server, clock, redis_url=redis_server.url) as proxy:
        query = "length=14&ending_at=2026-11-10T00:00:00Z"
        await proxy.get(query)
        reads = await proxy.metric("braze_proxy_series_buckets_total", source="store")
        for _ in range(5):
            assert (await proxy.get(query)).cache_status.startswith("braze-proxy; hit;")
        assert await proxy.metric("braze_proxy_series_buckets_total", source="store") == reads
        assert isinstance(proxy, InProcessProxy)
