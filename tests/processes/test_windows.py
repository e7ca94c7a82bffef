"""Windows from buckets on the real app and stand-in in process, with Redis as processes of the test's own: a
redis-server stopped mid-way, and a Redis Cluster under two replicas. Every assembled answer is compared with the
stand-in's own answer to the exact question."""

from __future__ import annotations

from contextlib import AsyncExitStack

from tests.inprocess import test_windows
from tests.inprocess.test_windows import exact, windows_proxy
from tests.support.braze_standin import StandinServer
from tests.support.harness import ManualClock
from tests.support.procs import RedisServer

# The windows tests' fixtures: the stand-in and the proxy read one moved clock.
clock = test_windows.clock
standin_server = test_windows.standin_server


async def test_a_redis_outage_mid_way_still_answers_right(standin_server: StandinServer, clock: ManualClock) -> None:
    redis = RedisServer().start()
    try:
        async with windows_proxy(standin_server, clock, redis_url=redis.url, redis_timeout=0.2) as proxy:
            await proxy.get("length=7&ending_at=2026-11-10T00:00:00Z")
            redis.stop()
            for query in ("length=30&ending_at=2026-11-09T00:00:00Z", "length=3&ending_at=2026-11-10T05:00:00Z"):
                reply = await proxy.get(query)
                assert reply.status == 200, reply.body
                assert reply.json() == await exact(standin_server, query)
    finally:
        redis.close()


async def test_windows_on_a_redis_cluster_over_two_replicas(standin_server: StandinServer, clock: ManualClock) -> None:
    from tests.support.redis_topologies import ClusterSetup, client

    with ClusterSetup(masters=3) as cluster:
        async with AsyncExitStack() as stack:
            replicas = [
                await stack.enter_async_context(windows_proxy(standin_server, clock, redis_url=cluster.url()))
                for _ in range(2)
            ]
            series = [f"app_id=cluster-{i}" for i in range(6)]
            await replicas[0].get("length=100&ending_at=2026-11-10T00:00:00Z&app_id=warm")  # checks these dates
            for i, s in enumerate(series):  # one replica fetches each series...
                assert (await replicas[i % 2].get(f"length=7&ending_at=2026-11-10T00:00:00Z&{s}")).status == 200
            calls = standin_server.state.calls
            for i, s in enumerate(series):  # ...the other answers its other windows from the shared buckets
                query = f"length={30 + i}&ending_at=2026-11-09T00:00:00Z&{s}"
                reply = await replicas[(i + 1) % 2].get(query)
                assert reply.cache_status.startswith("braze-proxy; hit;"), reply.cache_status
                assert reply.json() == await exact(standin_server, query)
            assert standin_server.state.calls == calls + len(series)  # only the test's own exact questions
            holding = [len(client(port).keys("braze-proxy:{s2:*cluster-*")) for port in cluster.ports]
        assert sum(holding) == len(series) and sum(1 for n in holding if n) >= 2, holding  # spread over the shards
