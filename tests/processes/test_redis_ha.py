"""The proxy on Redis Sentinel and Redis Cluster, and through the faults a shared Redis has: a failover under load,
out of memory, a read-only (demoted) master, SCRIPT FLUSH. Real processes only: proxies, redis-servers, sentinels,
the Braze stand-in. Figures (requests lost, timings) are printed with [figure]; bench/ owns the timing targets.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import redis

from tests.support.external_tools import require_tool
from tests.support.load import PATH, bearer, data_query, get, metric, run_load, scrape, wait_for
from tests.support.procs import ProxyFactory, ProxyProcess, StandinProcess, free_port
from tests.support.redis_topologies import ClusterSetup, Node, SentinelSetup, client

KEY = "ha-key"
PREFIX = "braze-proxy:"
ENTRIES = f"{PREFIX}{{v1:*"  # the cache entries (not locks, markers, buckets or probes)


def url(proxy: ProxyProcess, i: int) -> str:
    """The i-th distinct question, asked of `proxy`."""
    query = data_query(length=1 + i % 100, ending_at=f"2023-{1 + (i // 100) % 12:02d}-{1 + (i // 1200) % 28:02d}")
    return f"{proxy.url}{PATH}?{query}"


async def readiness(session: aiohttp.ClientSession, proxy: ProxyProcess) -> tuple[int, Any]:
    async with session.get(f"{proxy.url}/readyz", timeout=aiohttp.ClientTimeout(total=5)) as response:
        return response.status, json.loads(await response.read())


async def redis_state(session: aiohttp.ClientSession, proxy: ProxyProcess) -> str | None:
    """The state braze_proxy_redis_state says is current (the one at 1)."""
    text = await scrape(session, proxy.url)
    for state in ("up", "degraded_writes", "down"):
        if metric(text, "braze_proxy_redis_state", state=state) == 1:
            return state
    return None


def entries(port: int, password: str | None = None) -> int:
    with client(port, password) as c:
        return len(list(c.scan_iter(match=ENTRIES, count=1000)))


def report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    with capsys.disabled():
        print(f"\n[figure] {line}")


# --- Sentinel -------------------------------------------------------------------------------------------------


async def test_a_sentinel_failover_under_load_from_two_proxies_loses_no_request(
    start_proxy: ProxyFactory,
    sentinels: SentinelSetup,
    standin_proc: StandinProcess,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Three fills (three upstream calls) in four requests: the budget script and the fill locks run all the time.
    pair = [start_proxy(REDIS_URL=sentinels.url(), RATE_LIMIT_BURST="100000") for _ in range(2)]
    async with aiohttp.ClientSession() as session:
        for proxy in pair:
            assert await readiness(session, proxy) == (200, {"status": "ready", "store": "redis", "redis": "up"})

        def make(i: int) -> tuple[str, dict[str, str]]:
            return url(pair[i % 2], i % 40 if i % 4 == 0 else 1000 + i), bearer(KEY)

        stop = asyncio.Event()
        load = asyncio.create_task(run_load(make, workers=6, seconds=60, max_requests=50_000, stop=stop))
        try:
            await asyncio.sleep(1.0)
            old = await asyncio.to_thread(sentinels.failover)
            new = await asyncio.to_thread(sentinels.wait_for_switch, old)
            switched = time.monotonic()
            # Within a few seconds of the switch (Sentinel demotes the old master only ~10 s later), new entries
            # reach the new master: nothing replicates from the old one any more, so they were written there.
            before = await asyncio.to_thread(entries, new)
            fresh = [await get(session, url(pair[i % 2], 5000 + i), bearer(KEY)) for i in range(10)]
            assert all(o.status == 200 for o in fresh), [o.label for o in fresh]
            landed = await wait_for(lambda: asyncio.to_thread(lambda: entries(new) >= before + 10), 5)
            landed_after = time.monotonic() - switched
            await asyncio.sleep(1.0)
        finally:
            stop.set()
            tally = await load
        ready = [await readiness(session, proxy) for proxy in pair]
    await asyncio.to_thread(sentinels.wait_settled)

    report(
        capsys,
        f"sentinel failover under load (2 proxies): {tally.failures()} of {tally.total} requests lost"
        f" {dict(tally.counts)}; new entries on the new master {landed_after:.2f} s after the switch;"
        f" p99 {tally.quantile(0.99) * 1000:.0f} ms, max {tally.max_latency() * 1000:.0f} ms",
    )
    assert tally.total > 100
    assert tally.failures() == 0, (dict(tally.counts), tally.samples)
    assert landed, "new entries did not reach the new master within 5 s of the switch"
    assert all(r == (200, {"status": "ready", "store": "redis", "redis": "up"}) for r in ready), (
        ready,
        [[line for line in p.logs().splitlines() if "redis" in line and "duration_ms" not in line] for p in pair],
    )
    with sentinels.client(new) as c:
        assert c.exists(f"{PREFIX}{{budget:default:default}}") == 1, "the bucket lives on the new master"


# --- Cluster --------------------------------------------------------------------------------------------------


@pytest.fixture
def on_cluster(cluster: ClusterSetup) -> ClusterSetup:
    """The module's cluster, emptied."""
    for port in cluster.ports:
        with client(port) as c:
            c.flushall()
    return cluster


async def test_three_proxies_on_a_cluster_coalesce_a_stampede_and_share_one_bucket(
    start_proxy: ProxyFactory,
    on_cluster: ClusterSetup,
    standin_proc: StandinProcess,
    capsys: pytest.CaptureFixture[str],
) -> None:
    trio = [
        start_proxy(
            REDIS_URL=on_cluster.url(),
            RATE_LIMIT_PER_HOUR="3600",
            RATE_LIMIT_BURST="6",
            RATE_LIMIT_MAX_WAIT_SECONDS="0",
        )
        for _ in range(3)
    ]
    async with aiohttp.ClientSession() as session:
        for proxy in trio:
            assert await readiness(session, proxy) == (200, {"status": "ready", "store": "redis", "redis": "up"})
        standin_proc.config(latency=0.3)
        started = time.perf_counter()
        stampede = await asyncio.gather(*(get(session, url(trio[i % 3], 7), bearer(KEY)) for i in range(30)))
        took = time.perf_counter() - started
        assert [o.status for o in stampede] == [200] * 30
        assert len({o.body for o in stampede}) == 1
        assert standin_proc.stats()["calls"] == 1, "one upstream call for 30 requests over three proxies"
        standin_proc.config(latency=0.0)

        # 6 tokens in the one shared bucket (1 more a second), one spent by the stampede: 30 new questions over
        # three proxies get 5 answers and what refills meanwhile, not 18 (three buckets of 6) — the rest are 429s.
        spread = [await get(session, url(trio[i % 3], 100 + i), bearer(KEY)) for i in range(30)]
        calls = standin_proc.stats()["calls"] - 1
        codes = [o.status for o in spread]
        per_node = {port: entries(port) for port in on_cluster.ports}
        states = [await redis_state(session, proxy) for proxy in trio]

    report(capsys, f"cluster stampede: 30 requests over 3 proxies, 1 upstream call, {took * 1000:.0f} ms for all")
    report(capsys, f"cluster shared bucket (burst 6): {calls} upstream calls for 30 new questions; entries {per_node}")
    assert 5 <= calls <= 8, codes
    assert codes.count(200) == calls and set(codes) == {200, 429}, codes
    assert all(n >= 1 for n in per_node.values()), f"entries on every shard: {per_node}"
    assert states == ["up"] * 3
    # The bucket's keys (bucket, teams, activity) share a hash tag: one slot, one node.
    owners = {on_cluster.owner(f"{PREFIX}{{budget:default:default}}{suffix}") for suffix in ("", ":teams", ":active")}
    assert len(owners) == 1


async def test_a_cluster_unreachable_at_start_up_leaves_the_proxy_degraded_not_dead(
    start_proxy: ProxyFactory, standin_proc: StandinProcess
) -> None:
    require_tool("redis-cli")
    late = ClusterSetup(masters=3)  # its ports are picked; nothing listens on them yet
    try:
        proxy = start_proxy(REDIS_URL=late.url(), REDIS_TIMEOUT="0.2")  # healthz answers: it did not die
        async with aiohttp.ClientSession() as session:
            answered = await get(session, url(proxy, 1), bearer(KEY))
            assert answered.status == 200, answered
            status, body = await readiness(session, proxy)
            assert body["redis"] == "down" and status == 503, (status, body)  # never seen yet: not ready
            assert "Traceback" not in proxy.logs()
            await asyncio.to_thread(late.start)
            assert await wait_for(lambda: _ready(session, proxy), 15), await readiness(session, proxy)
            again = await get(session, url(proxy, 2), bearer(KEY))
            assert again.status == 200
        assert sum(entries(port) for port in late.ports) >= 1, "entries are stored once the cluster is there"
    finally:
        late.close()


async def _ready(session: aiohttp.ClientSession, proxy: ProxyProcess) -> bool:
    return await readiness(session, proxy) == (200, {"status": "ready", "store": "redis", "redis": "up"})


# --- Out of memory, read-only, SCRIPT FLUSH -------------------------------------------------------------------


@pytest.fixture
def node() -> Iterator[Node]:
    require_tool("redis-server")
    with Node() as server:
        yield server


async def degraded_writes_under_load(
    proxy: ProxyProcess, refuse: Any, allow: Any, capsys: pytest.CaptureFixture[str], what: str
) -> None:
    """Warm, make Redis refuse writes under load, then allow them again: no request lost, /readyz and the metric
    say degraded_writes (and stay there), then up."""
    async with aiohttp.ClientSession() as session:
        for i in range(20):
            assert (await get(session, url(proxy, i), bearer(KEY))).status == 200

        def make(i: int) -> tuple[str, dict[str, str]]:
            return url(proxy, i % 20 if i % 4 else 2000 + i), bearer(KEY)

        stop = asyncio.Event()
        load = asyncio.create_task(run_load(make, workers=4, seconds=30, max_requests=20_000, stop=stop))
        seen: dict[str, Any] = {}
        try:
            await asyncio.sleep(0.5)
            refuse()
            assert await wait_for(lambda: _is_state(session, proxy, "degraded_writes"), 5)
            await asyncio.sleep(3.0)  # no flapping back to up on a PING, nor down
            seen["readyz"] = await readiness(session, proxy)
            seen["state"] = await redis_state(session, proxy)
            allow()
            assert await wait_for(lambda: _is_state(session, proxy, "up"), 10)
            seen["after"] = await readiness(session, proxy)
        finally:
            stop.set()
            tally = await load
    report(capsys, f"{what} under load: {tally.failures()} of {tally.total} requests lost {dict(tally.counts)}")
    assert tally.total > 50
    assert tally.failures() == 0, (dict(tally.counts), tally.samples)
    assert seen["readyz"] == (200, {"status": "degraded", "store": "redis", "redis": "degraded_writes"})
    assert seen["state"] == "degraded_writes"
    assert seen["after"] == (200, {"status": "ready", "store": "redis", "redis": "up"})
    logs = proxy.logs()
    assert logs.count("redis refuses writes") == 1, "one degradation, no flapping"
    assert "redis unreachable" not in logs
    assert logs.count("redis healthy again") == 1


async def _is_state(session: aiohttp.ClientSession, proxy: ProxyProcess, state: str) -> bool:
    return await redis_state(session, proxy) == state


async def test_out_of_memory_is_degraded_writes_and_clients_keep_their_answers(
    start_proxy: ProxyFactory, node: Node, standin_proc: StandinProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy = start_proxy(REDIS_URL=node.url)
    admin = redis.Redis(port=node.port)

    def refuse() -> None:
        used = int(admin.info("memory")["used_memory"])
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", min(1 << 20, used // 2))  # 1mb, or less if it holds less than 2mb

    try:
        await degraded_writes_under_load(proxy, refuse, lambda: admin.config_set("maxmemory", 0), capsys, "OOM")
    finally:
        admin.close()


async def test_a_read_only_redis_is_degraded_writes_and_clients_keep_their_answers(
    start_proxy: ProxyFactory, node: Node, standin_proc: StandinProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy = start_proxy(REDIS_URL=node.url)
    admin = redis.Redis(port=node.port)
    dummy = free_port()  # no master there: the node stays a read-only replica with its data
    try:
        await degraded_writes_under_load(
            proxy, lambda: admin.replicaof("127.0.0.1", dummy), lambda: admin.replicaof("NO", "ONE"), capsys, "READONLY"
        )
    finally:
        admin.close()


async def test_script_flush_under_load_reaches_no_client(
    start_proxy: ProxyFactory, node: Node, standin_proc: StandinProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    pair = [start_proxy(REDIS_URL=node.url, RATE_LIMIT_BURST="100000") for _ in range(2)]
    admin = redis.Redis(port=node.port)

    def make(i: int) -> tuple[str, dict[str, str]]:
        return url(pair[i % 2], 3000 + i // 2), bearer(KEY)  # each question asked of both: locks, budget, stores

    flushes = 0
    try:
        stop = asyncio.Event()
        load = asyncio.create_task(run_load(make, workers=6, seconds=30, max_requests=20_000, stop=stop))
        try:
            for _ in range(30):
                await asyncio.sleep(0.1)
                admin.script_flush()
                flushes += 1
        finally:
            stop.set()
            tally = await load
    finally:
        admin.close()
    report(capsys, f"SCRIPT FLUSH x{flushes} under load: {tally.failures()} of {tally.total} requests lost")
    assert tally.total > 100
    assert tally.failures() == 0, (dict(tally.counts), tally.samples)
    for proxy in pair:
        assert "redis unreachable" not in proxy.logs() and "redis refuses writes" not in proxy.logs()
