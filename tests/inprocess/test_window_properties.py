"""Windows from buckets, property-tested and at their edges, in process (real app, real stand-in, a fixed clock,
a real redis-server): any window of any flat series, day or hour, with or without filters, on the memory store,
on Redis and over two replicas sharing it, is the stand-in's own answer to the exact question; stale-if-error
and stale-while-revalidate hold per window; a refused probe or wide fetch is never handed to another question.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.braze_standin import StandinServer, StandinState
from tests.support.harness import PATH, InProcessProxy, ManualClock, proxy_in_process
from tests.support.procs import RedisServer
from tests.support.standin_endpoints import NO_ANALYTICS_SEGMENT

KEY = "key-a"
NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)  # mid-afternoon: past days settled, today's still open
_prefixes = itertools.count()


@st.composite
def windows(draw: st.DrawFn) -> dict[str, str]:
    """A window of a flat series: unit, length, where it ends (any instant, any spelling of "now"), filters."""
    unit = draw(st.sampled_from(["day", "hour"]))
    step = timedelta(days=1) if unit == "day" else timedelta(hours=1)
    query = {"length": str(draw(st.integers(1, 100))), "unit": unit}
    back = draw(st.one_of(st.none(), st.integers(0, 150)))  # None: no ending_at ("now")
    if back is not None:
        end = NOW - back * step - timedelta(minutes=draw(st.integers(0, 59)), seconds=draw(st.integers(0, 59)))
        query["ending_at"] = end.strftime("%Y-%m-%dT%H:%M:%SZ")
    query |= draw(st.sampled_from([{}, {"app_id": "app-1"}, {"app_id": "app-2", "segment_id": "seg-9"}]))
    return query


async def exact(standin_server: StandinServer, query: str, path: str = PATH) -> tuple[int, Any]:
    """The stand-in's own answer to the exact question (not counted as a call the proxy made)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{standin_server.url}{path}?{query}", headers={"Authorization": f"Bearer {KEY}"}) as response,
    ):
        return response.status, await response.json()


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[RedisServer]:
    """One redis-server for every example of this module; each example has its own key prefix."""
    with RedisServer() as server:
        yield server


async def check_windows(asked: list[dict[str, str]], topology: str, redis: RedisServer | None) -> None:
    clock = ManualClock(NOW.timestamp())
    standin_server = StandinServer(StandinState(clock=clock))
    await standin_server.start()
    try:
        async with AsyncExitStack() as stack:
            extra: dict[str, Any] = {}
            if redis is not None:
                extra = {"redis_url": redis.url, "redis_key_prefix": f"props-{next(_prefixes)}:"}
            replicas = 2 if topology == "two replicas" else 1
            proxies: list[InProcessProxy] = [
                await stack.enter_async_context(proxy_in_process(standin_server.url, clock, windows=True, **extra))
                for _ in range(replicas)
            ]
            for i, query in enumerate(asked):
                encoded = urlencode(query)
                reply = await proxies[i % replicas].get(encoded)
                status, expected = await exact(standin_server, encoded)
                assert (reply.status, reply.json()) == (status, expected), (encoded, reply.cache_status)
    finally:
        await standin_server.stop()


@pytest.mark.parametrize("topology", ["memory", "redis", "two replicas"])
def test_any_window_is_the_stand_ins_exact_answer(topology: str, request: pytest.FixtureRequest) -> None:
    redis = None if topology == "memory" else request.getfixturevalue("shared_redis")

    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(asked=st.lists(windows(), min_size=1, max_size=25))
    def run(asked: list[dict[str, str]]) -> None:
        asyncio.run(check_windows(asked, topology, redis))

    run()


# --- stale per window, and refusals that belong to one question -------------------------------------------


async def test_a_window_is_served_stale_if_error_and_stale_while_revalidate() -> None:
    clock = ManualClock(NOW.timestamp())
    async with StandinServer(StandinState(clock=clock)) as standin_server:
        settled = {"windows": True, "ttl_settled": 100, "stale_seconds": 3600}
        async with proxy_in_process(standin_server.url, clock, stale_while_revalidate_seconds=0, **settled) as p:
            week = "length=7&ending_at=2026-10-01T10:00:00Z"
            other = "length=30&ending_at=2026-09-20T00:00:00Z"  # inside the same widened fetch
            first, first_other = await p.get(week), await p.get(other)
            assert "detail=buckets" in first_other.cache_status  # assembled, no call of its own
            clock.advance(150)  # past freshness, inside the stale window
            standin_server.state.configure({"fail_status": 500, "fail_count": -1}, clock())
            for query, before in ((week, first), (other, first_other)):
                stale = await p.get(query)
                assert stale.status == 200 and stale.body == before.body
                assert "fwd=stale" in stale.cache_status and "detail=stale-if-error" in stale.cache_status
                assert "fwd-status=500" in stale.cache_status
            assert await p.metric("braze_proxy_stale_served_total", reason="upstream_error") == 2
        # Within stale-while-revalidate: served at once from the stale buckets, one refresh behind.
        standin_server.state.configure({"fail_status": None}, clock())
        async with proxy_in_process(standin_server.url, clock, stale_while_revalidate_seconds=60, **settled) as p:
            assert (await p.get(week)).status == 200
            # The dates of the refresh's widened fetch checked too (on another series: no refresh of its own)
            assert (await p.get("length=100&ending_at=2026-09-20T00:00:00Z&app_id=warm")).status == 200
            calls = standin_server.state.calls
            clock.advance(120)
            revalidated = await asyncio.gather(p.get(week), p.get(other))
            for reply in revalidated:
                assert reply.status == 200 and "detail=stale-while-revalidate" in reply.cache_status
            await p.settle()
            # One background refresh per series and last bucket (the two windows end at different buckets).
            assert standin_server.state.calls == calls + 2
            assert await p.metric("braze_proxy_background_refreshes_total", result="ok") == 2
            assert "hit" in (await p.get(week)).cache_status


async def test_a_refused_probe_is_handed_to_no_other_question() -> None:
    """Two segments of one credential ask at once; Braze refuses the one without analytics (the probe for days is
    made for whichever asks first). The other still gets its own right answer, and the refused one Braze's error."""
    clock = ManualClock(NOW.timestamp())
    async with StandinServer(StandinState(clock=clock)) as standin_server:
        standin_server.state.configure({"latency": 0.2}, clock())
        async with proxy_in_process(standin_server.url, clock, windows=True) as proxy:
            path = "/segments/data_series"
            bad = urlencode({"segment_id": NO_ANALYTICS_SEGMENT, "length": "7", "ending_at": "2026-10-01"})
            good = urlencode({"segment_id": "seg-ok", "length": "7", "ending_at": "2026-10-01"})

            async def later(query: str) -> Any:
                await asyncio.sleep(0.05)  # while the first question's probe is in flight
                return await proxy.get(query, path=path)

            refused, answered = await asyncio.gather(proxy.get(bad, path=path), later(good))
            standin_server.state.configure({"latency": 0.0}, clock())
            assert (answered.status, answered.json()) == await exact(standin_server, good, path)
            assert (refused.status, refused.json()) == await exact(standin_server, bad, path)
            assert refused.status == 400
