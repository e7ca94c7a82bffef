"""Repeats in any spelling and for any team are hits while the test's own redis-server is down (the real app and
stand-in in process). The other wrong-window scenarios: tests/inprocess/test_windows_zones.py."""

from __future__ import annotations

from tests.inprocess import test_windows
from tests.inprocess.test_windows import windows_proxy
from tests.support.braze_standin import StandinServer
from tests.support.harness import ManualClock
from tests.support.procs import RedisServer

# The windows tests' fixtures: the stand-in and the proxy read one moved clock.
clock = test_windows.clock
standin_server = test_windows.standin_server


async def test_redis_down_repeats_in_any_spelling_and_team_are_hits(
    standin_server: StandinServer, clock: ManualClock
) -> None:
    redis = RedisServer().start()
    redis.stop()  # down from the start
    try:
        settings = {
            "redis_url": redis.url,
            "redis_timeout": 0.2,
            "api_key": "key-a",
            "client_tokens": "a:tok-a-1234567890,b:tok-b-1234567890",
        }
        async with windows_proxy(standin_server, clock, **settings) as proxy:
            spellings = [
                "length=30&ending_at=2026-11-10T10:00:00Z",
                "ending_at=2026-11-10T11:30:00%2B01:00&length=30",
                "unit=DAY&length=30&ending_at=2026-11-10T23:59:59Z",
                "length=30&unit=day&ending_at=2026-11-10T00:00:00Z",
            ]
            first = await proxy.get(spellings[0], key="tok-a-1234567890")
            assert first.status == 200, first.body
            calls = standin_server.state.calls
            for spelling in spellings:
                for team in ("tok-a-1234567890", "tok-b-1234567890"):
                    reply = await proxy.get(spelling, key=team)
                    assert reply.status == 200 and reply.body == first.body
                    assert reply.cache_status.startswith("braze-proxy; hit"), (spelling, reply.cache_status)
            assert standin_server.state.calls == calls
    finally:
        redis.close()
