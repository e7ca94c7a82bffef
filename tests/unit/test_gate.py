"""The upstream gate (proxy/gate.py) in process, on a controlled clock: Braze's 429s block the budget they were
answered for, and their backoff streak is that budget's own (one workspace's 429s never lengthen another's)."""

from __future__ import annotations

import pytest

from proxy.budget.buckets import Limit, Payer
from proxy.budget.gate import UpstreamGate
from proxy.budget.memory import MemoryBudget
from proxy.core.errors import RateLimited
from proxy.core.rate_headers import RateInfo
from proxy.obs.metrics import Metrics
from proxy.redis.health import AlwaysUp
from tests.support.harness import ManualClock


def payer(workspace: str) -> Payer:
    return Payer(f"{workspace}:default", workspace, "default", Limit(36_000, 100), "team", "team")


def gate(clock: ManualClock) -> UpstreamGate:
    budget = MemoryBudget(1, 2.0, clock)
    return UpstreamGate(
        shared=budget,
        local=budget,
        health=AlwaysUp(),
        fail_open=True,
        metrics=Metrics(),
        clock=clock,
        sleep=clock.sleep,
    )


async def test_429_backoff_streaks_are_per_budget() -> None:
    clock = ManualClock(1_000_000.0)
    g = gate(clock)
    eu, us = payer("eu"), payer("us")
    bare = RateInfo()  # a 429 without Reset or Retry-After: the exponential backoff decides
    waits = []
    for _ in range(4):  # eu's streak: 1, 2, 4, 8 s
        waits.append(await g.learn(eu, 429, bare))
        clock.advance(waits[-1] or 0)
    assert waits == [1.0, 2.0, 4.0, 8.0]
    assert await g.learn(us, 429, bare) == 1.0  # us starts its own streak: eu's 429s do not lengthen it
    with pytest.raises(RateLimited) as refused:
        await g.admit(us)
    assert refused.value.detail == "braze-rate-limited"
    await g.admit(eu)  # eu's last block is over: it may call again
    assert await g.learn(eu, 200, bare) is None  # a success ends eu's streak...
    assert await g.learn(eu, 429, bare) == 1.0  # ...so the next 429 starts again from 1 s


async def test_a_429_with_a_bogus_reset_blocks_at_most_an_hour() -> None:
    clock = ManualClock(1_000_000.0)
    g = gate(clock)
    ten_years = clock() + 10 * 365 * 86400
    assert await g.learn(payer("eu"), 429, RateInfo(reset=ten_years)) <= 3600
    milliseconds = (clock() + 30) * 1000  # read as milliseconds: 30 s ahead
    assert await g.learn(payer("us"), 429, RateInfo(reset=milliseconds)) == pytest.approx(30, abs=1)
