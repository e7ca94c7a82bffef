"""Forty invented keys a second beside a real key, on three real proxy processes, one redis-server and the
stand-in: the real key is answered, within the workspace's budget."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import aiohttp
import pytest

from proxy.budget.buckets import Limit, Payer
from proxy.budget.probation import (
    pool_limit,
)
from proxy.core.credentials import Credential
from tests.processes.test_fair_budget import question, report, start_replicas
from tests.support.load import Outcome, bearer, get, metric, scrape
from tests.support.procs import ProxyFactory, ProxyProcess, RedisServer, StandinProcess

PATH = "/sessions/data_series"
PREFIX = "test:"


BUDGET = Limit(36_000, 100)


def payer(team: str = "pabc", limit: Limit = BUDGET) -> Payer:
    return Payer("default:default", "default", "default", limit, team, "pass-through")


def credential(scope: str, managed: bool = False) -> Credential:
    return Credential(scope, "key", "default", scope, "pass-through", managed=managed)


# --- real processes --------------------------------------------------------------------------------------------

PER_SECOND = 5.0  # the workspace's budget
BURST = 5
FLOOD_PER_SECOND = 40
SECONDS = 10.0  # of the real key's questions: 20, one every half second


async def flood(session: aiohttp.ClientSession, replicas: list[ProxyProcess], keys: list[str]) -> list[Outcome]:
    """One request per invented key, FLOOD_PER_SECOND a second (each on its own task: paced, not answer-bound)."""
    started = time.monotonic()
    tasks = []
    for i, key in enumerate(keys):
        await asyncio.sleep(max(0.0, started + i / FLOOD_PER_SECOND - time.monotonic()))
        url = f"{replicas[i % len(replicas)].url}{PATH}?{question()}"
        tasks.append(asyncio.ensure_future(get(session, url, bearer(key))))
    return list(await asyncio.gather(*tasks))


async def test_forty_invented_keys_a_second_leave_a_real_key_answered(
    start_proxy: ProxyFactory,
    standin_proc: StandinProcess,
    redis_server: RedisServer,
    redis_client: object,
    capsys: pytest.CaptureFixture[str],
) -> None:
    invented = [f"invented-{i:04d}-0123456789" for i in range(int(FLOOD_PER_SECOND * (SECONDS + 1.5)))]
    standin_proc.config(rejected_keys=invented)  # Braze answers them 401
    # A key prefix of its own: the flood drains the probation pool, which later tests on this redis-server (new
    # keys in pass-through mode) would otherwise find empty.
    replicas = start_replicas(
        start_proxy,
        redis_server.url,
        RATE_LIMIT_PER_HOUR=PER_SECOND * 3600,
        RATE_LIMIT_BURST=BURST,
        REDIS_KEY_PREFIX="probation-flood:",
    )
    real = bearer("real-key-0123456789")
    answered: list[Outcome] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as session:
        first = await get(session, f"{replicas[0].url}{PATH}?{question()}", real)
        assert first.status == 200, "the real key is accepted before the flood"
        standin_proc.reset()
        standin_proc.config(rejected_keys=invented)
        started = time.monotonic()
        flooding = asyncio.ensure_future(flood(session, replicas, invented))
        await asyncio.sleep(1.0)  # the flood is on
        for i in range(20):  # on every replica: accepted on one, known to all through Redis
            answered.append(await get(session, f"{replicas[i % 3].url}{PATH}?{question()}", real))
            await asyncio.sleep(max(0.0, started + 1.0 + (i + 1) * SECONDS / 20 - time.monotonic()))
        flooded = await flooding
        elapsed = time.monotonic() - started
        text = "".join([await scrape(session, p.url) for p in replicas])
    stats = standin_proc.stats()
    ok = sum(o.status == 200 for o in answered)
    statuses = {s: sum(o.status == s for o in flooded) for s in {o.status for o in flooded}}
    assert ok >= 18, [o.body for o in answered if o.status != 200]
    assert stats["calls"] <= BURST + PER_SECOND * elapsed + 1, "within the workspace's budget"
    pool = pool_limit(Limit(PER_SECOND * 3600, BURST), 0.05)
    assert stats["calls_by_status"].get("401", 0) <= pool.burst + pool.per_hour / 3600 * elapsed + 1, "the pool's"
    assert set(statuses) <= {401, 429} and statuses.get(429, 0) > 0, statuses
    details = Counter(o.cache_status.rpartition("detail=")[2] for o in flooded if o.status == 429)
    # Refused by the pool; the few the pool let through may still be over their (small) share of the budget.
    assert set(details) <= {"probation", "team-share"} and details["probation"] > 0.9 * statuses[429], details
    assert any(b"not yet accepted" in o.body for o in flooded)
    assert metric(text, "braze_proxy_probation_refusals_total") == details["probation"]
    assert (metric(text, "braze_proxy_probation_grants_total") or 0) >= statuses.get(401, 0) + details["team-share"]
    report(
        capsys,
        f"probation pool, budget {PER_SECOND:g}/s (pool {pool.per_hour / 3600:g}/s), {len(flooded)} invented keys at"
        f" {FLOOD_PER_SECOND}/s over 3 replicas: real key answered {ok}/20; upstream calls {stats['calls']} in"
        f" {elapsed:.1f} s ({stats['calls_by_status']}); flood answers {statuses}, 429s by detail {dict(details)}",
    )
