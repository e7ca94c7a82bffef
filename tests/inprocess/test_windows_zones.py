"""The wrong-window scenarios an adversarial pass found, each against the real app and stand-in in process:
zones that agree on some dates and not others, a rolling restart that changes the zone, far-future windows,
Redis down, and answers Braze should never send. Every answer is compared with the stand-in's own."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web

from tests.inprocess import test_windows
from tests.inprocess.test_windows import windows_proxy
from tests.support.braze_standin import StandinServer
from tests.support.harness import ManualClock, proxy_in_process
from tests.support.procs import RedisServer

KPI = "/kpi/dau/data_series"

# The windows tests' fixtures: the stand-in and the proxy read one moved clock.
clock = test_windows.clock
standin_server = test_windows.standin_server


async def matches(proxy: Any, standin_server: StandinServer, query: str, path: str = "/sessions/data_series") -> str:
    reply = await proxy.get(query, path=path)
    assert reply.status == 200, reply.body
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": "Bearer key-a"}
        async with session.get(f"{standin_server.url}{path}?{query}", headers=headers) as response:
            expected = await response.json()
    assert reply.json() == expected, (query, reply.cache_status)
    return str(reply.cache_status)


async def test_a_winter_check_does_not_vouch_for_july(standin_server: StandinServer, clock: ManualClock) -> None:
    """Ours UTC, Braze's London: the zones agree in January, not in July."""
    standin_server.state.configure({"zone": "Europe/London"}, clock.now)
    async with windows_proxy(standin_server, clock) as proxy:
        await matches(proxy, standin_server, "length=30&ending_at=2026-01-20T12:00:00Z")
        for day in range(1, 12):  # windows ending in the last hour of a UTC day
            await matches(proxy, standin_server, f"length=7&ending_at=2026-07-{day:02d}T23:30:00Z")
        assert await proxy.metric("braze_proxy_label_mismatches_total", unit="day") >= 1


async def test_a_fetch_across_october_keeps_only_the_checked_dates(
    standin_server: StandinServer, clock: ManualClock
) -> None:
    """Ours London, Braze's UTC: a 100-day fetch ending in November (zones agree) reaches back into summer."""
    standin_server.state.configure({"zone": "UTC"}, clock.now)
    async with windows_proxy(standin_server, clock, reporting_timezone="Europe/London") as proxy:
        for path in ("/sessions/data_series", KPI):
            await matches(proxy, standin_server, "length=100&ending_at=2026-11-15T12:00:00Z", path)
            await matches(proxy, standin_server, "length=7&ending_at=2026-10-13T23:30:00Z", path)
            await matches(proxy, standin_server, "length=7&ending_at=2026-11-10T10:00:00Z", path)


async def test_a_rolling_restart_to_the_right_zone(
    standin_server: StandinServer, clock: ManualClock, redis_server: RedisServer, redis_client: Any
) -> None:
    """Braze's London; the new replica has London (right), the old one UTC (wrong), both on one Redis."""
    standin_server.state.configure({"zone": "Europe/London"}, clock.now)
    async with AsyncExitStack() as stack:
        new = await stack.enter_async_context(
            windows_proxy(standin_server, clock, redis_url=redis_server.url, reporting_timezone="Europe/London")
        )
        old = await stack.enter_async_context(windows_proxy(standin_server, clock, redis_url=redis_server.url))
        assert "fwd=miss" in await matches(new, standin_server, "length=100&ending_at=2026-07-20T12:00:00Z")
        for day in (5, 6, 7, 8):
            await matches(old, standin_server, f"length=7&ending_at=2026-07-{day:02d}T23:30:00Z")
            await matches(new, standin_server, f"length=7&ending_at=2026-07-{day:02d}T23:30:00Z")


async def test_far_future_windows_are_asked_exactly_and_poison_nothing(
    standin_server: StandinServer, clock: ManualClock, redis_server: RedisServer, redis_client: Any
) -> None:
    ordinary = [f"length={n}&ending_at=2026-11-{d}T10:00:00Z" for n in range(1, 16) for d in (10, 15)]

    async def cost(prefix: str, poison: bool) -> int:
        async with windows_proxy(standin_server, clock, redis_url=redis_server.url, redis_key_prefix=prefix) as proxy:
            if poison:
                for year in range(2090, 2101):
                    status = await matches(proxy, standin_server, f"length=100&ending_at={year}-06-01T00:00:00Z")
                    assert "detail=buckets" not in status
            before = standin_server.state.calls
            for query in ordinary:
                await matches(proxy, standin_server, query)
            return standin_server.state.calls - before - len(ordinary)  # less the test's own exact questions

    clean = await cost("clean:", False)
    assert await cost("poisoned:", True) == clean <= 2 + 14  # two fetches and the checks of their dates
    keys = redis_client.keys("poisoned:{s2:*")
    assert keys and all(
        int(f) < datetime(2027, 1, 1, tzinfo=UTC).timestamp() for k in keys for f in redis_client.hkeys(k)
    )


async def test_an_answer_with_a_member_named_twice_is_never_assembled(clock: ManualClock) -> None:
    """A Braze answering `data` twice: the right labels last, other numbers first."""

    def series(request: web.Request, value: int) -> str:
        length = int(request.query["length"])
        last = datetime.fromisoformat(request.query["ending_at"]).astimezone(UTC).date()
        days = [last - timedelta(days=i) for i in reversed(range(length))]
        return json.dumps([{"time": d.isoformat(), "sessions": value} for d in days])

    async def answer(request: web.Request) -> web.Response:
        body = f'{{"message":"success","data":{series(request, 1)},"data":{series(request, 2)}}}'
        return web.Response(text=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/sessions/data_series", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with proxy_in_process(f"http://127.0.0.1:{port}", clock, windows=True) as proxy:
            for query in ("length=3&ending_at=2026-11-10T00:00:00Z", "length=2&ending_at=2026-11-09T00:00:00Z"):
                reply = await proxy.get(query)
                assert reply.status == 200
                assert reply.body.count(b'"data"') == 2  # Braze's own bytes, never a window of them
                assert "detail=buckets" not in reply.cache_status
    finally:
        await runner.cleanup()
