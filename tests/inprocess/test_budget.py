"""The upstream budget: RedisBudget and MemoryBudget pass one suite, against a real redis-server.

Both run on real clocks (Redis's TIME, time.time) so the figures below allow a little slack.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
import redis
from redis.crc import key_slot

from proxy.budget.buckets import Budget, Limit, Payer, bucket_ttl_ms
from proxy.budget.memory import MemoryBudget
from proxy.budget.redis import RedisBudget
from proxy.cache.redis import connect
from proxy.core.bucket import BucketParams, Decision
from proxy.core.errors import StoreError
from proxy.redis.connection import RedisConnection
from tests.support.procs import RedisServer, free_port

PREFIX = "test:"
SLACK = 0.1  # seconds of clock drift between deciding and checking, on a busy 2-core machine


def payer(budget: str, params: BucketParams, team: str = "t", weight: float = 1.0) -> Payer:
    limit = Limit(per_hour=params.rate * 3600, burst=int(params.capacity))
    return Payer(budget, "default", "default", limit, team=team, team_label=team, weight=weight)


class Bound:
    """A budget and the bucket parameters its payers carry: `reserve("a")` takes from budget "a"."""

    def __init__(self, budget: Budget, params: BucketParams) -> None:
        self.budget = budget
        self.params = params

    async def reserve(self, name: str, team: str = "t", weight: float = 1.0) -> Decision:
        return await self.budget.reserve(payer(name, self.params, team, weight))

    async def observe(self, name: str, remaining: float | None, reset: float | None, blocked: float | None) -> None:
        await self.budget.observe(payer(name, self.params), remaining, reset, blocked)


BudgetFactory = Callable[[BucketParams], Bound]


@pytest_asyncio.fixture
async def aclient(redis_server: RedisServer, redis_client: redis.Redis) -> AsyncIterator[RedisConnection]:
    """An asyncio client of the session's redis-server (emptied by `redis_client`)."""
    client = connect(redis_server.url, 1.0, 8)
    yield client
    await client.close()


@pytest.fixture(params=["memory", "redis"])
def make_budget(request: pytest.FixtureRequest, aclient: RedisConnection) -> BudgetFactory:
    def make(params: BucketParams) -> Bound:
        if request.param == "memory":
            return Bound(MemoryBudget(1, params.max_wait, time.time), params)
        return Bound(RedisBudget(aclient, PREFIX, params.max_wait, 1.0), params)

    return make


async def test_the_burst_is_allowed_at_once_then_reserved_ahead_then_refused(make_budget: BudgetFactory) -> None:
    budget = make_budget(BucketParams(rate=2.0, capacity=5, max_wait=1.0))
    decisions = [await budget.reserve("a") for _ in range(8)]
    assert [d.allowed for d in decisions] == [True] * 7 + [False]
    assert [d.wait for d in decisions[:5]] == [0.0] * 5
    assert decisions[5].wait == pytest.approx(0.5, abs=SLACK)
    assert decisions[6].wait == pytest.approx(1.0, abs=SLACK)
    assert decisions[7].reason == "tokens"
    assert decisions[7].wait == pytest.approx(0.5, abs=SLACK)  # retry after: when a wait of 1 s would do
    assert decisions[6].tokens == pytest.approx(-2.0, abs=SLACK * 2)


async def test_tokens_refill_with_time(make_budget: BudgetFactory) -> None:
    budget = make_budget(BucketParams(rate=10.0, capacity=2, max_wait=0.0))
    assert [(await budget.reserve("a")).allowed for _ in range(3)] == [True, True, False]
    await asyncio.sleep(0.15)
    assert (await budget.reserve("a")).allowed


async def test_each_scope_has_its_own_bucket(make_budget: BudgetFactory) -> None:
    budget = make_budget(BucketParams(rate=0.01, capacity=1, max_wait=0.0))
    assert (await budget.reserve("a")).allowed
    assert not (await budget.reserve("a")).allowed
    assert (await budget.reserve("b")).allowed


async def test_concurrent_takes_never_overspend(make_budget: BudgetFactory) -> None:
    budget = make_budget(BucketParams(rate=0.001, capacity=10, max_wait=0.0))
    decisions = await asyncio.gather(*(budget.reserve("a") for _ in range(50)))
    assert sum(d.allowed for d in decisions) == 10


async def test_a_429_block_stops_every_caller_until_it_ends(make_budget: BudgetFactory) -> None:
    budget = make_budget(BucketParams(rate=100.0, capacity=100, max_wait=2.0))
    await budget.observe("a", None, None, time.time() + 0.4)
    refused = await budget.reserve("a")
    assert (refused.allowed, refused.reason) == (False, "blocked")
    assert refused.wait == pytest.approx(0.4, abs=SLACK)
    assert (await budget.reserve("b")).allowed, "a block binds its own budget only"
    await asyncio.sleep(0.45)
    assert (await budget.reserve("a")).allowed


async def test_never_plans_past_what_braze_says_remains(make_budget: BudgetFactory) -> None:
    budget = make_budget(BucketParams(rate=100.0, capacity=100, max_wait=2.0))
    reset = time.time() + 60
    await budget.observe("a", 2, reset, None)
    assert [(await budget.reserve("a")).allowed for _ in range(2)] == [True, True]
    refused = await budget.reserve("a")
    asked = time.time()  # the wait is until Braze's reset, from whenever the refusal was decided
    assert (refused.allowed, refused.reason) == (False, "braze")
    assert reset - asked - SLACK <= refused.wait <= 60 + SLACK
    # An answer of the same window arriving late cannot raise the count; the next window can.
    await budget.observe("a", 50, reset, None)
    assert not (await budget.reserve("a")).allowed
    await budget.observe("a", 50, reset + 3600, None)
    assert (await budget.reserve("a")).allowed


async def test_braze_remaining_expires_with_its_window(make_budget: BudgetFactory) -> None:
    budget = make_budget(BucketParams(rate=100.0, capacity=100, max_wait=2.0))
    await budget.observe("a", 0, time.time() + 0.3, None)
    assert (await budget.reserve("a")).reason == "braze"
    await asyncio.sleep(0.35)
    assert (await budget.reserve("a")).allowed


# --- what only the shared (Redis) budget does ----------------------------------------------------------------------


async def test_replicas_share_one_bucket(redis_server: RedisServer, aclient: RedisConnection) -> None:
    params = BucketParams(rate=0.001, capacity=6, max_wait=0.0)
    other = connect(redis_server.url, 1.0, 8)  # another replica: its own pool and script cache
    try:
        replicas = [Bound(RedisBudget(c, PREFIX, 0.0, 1.0), params) for c in (aclient, other)]
        decisions = await asyncio.gather(*(replicas[i % 2].reserve("a") for i in range(20)))
        assert sum(d.allowed for d in decisions) == 6
        await replicas[0].observe("a", None, None, time.time() + 30)
        assert (await replicas[1].reserve("a")).reason == "blocked"
    finally:
        await other.close()


async def test_the_bucket_is_one_hash_tagged_key_that_expires_when_idle(aclient: RedisConnection) -> None:
    params = BucketParams.per_hour(3600, 5, 1.0)
    budget = RedisBudget(aclient, PREFIX, 1.0, 1.0)
    await Bound(budget, params).reserve("scope-1")
    keys = sorted(await aclient.client.keys(f"{PREFIX}*"))
    assert keys == sorted(k.encode() for k in budget.keys("scope-1"))
    assert {key_slot(k) for k in keys} == {key_slot(b"{budget:scope-1}")}, "one slot on Redis Cluster"
    for key in keys:
        assert 3600_000 < await aclient.client.pttl(key) <= bucket_ttl_ms(params)
    # A missing hash is a full bucket: expiry loses nothing but an idle bucket's history.
    assert bucket_ttl_ms(BucketParams.per_hour(36, 1000, 1.0)) >= 1000 / 0.01 * 1000


async def test_an_unreachable_redis_raises_store_error_quickly() -> None:
    client = connect(f"redis://127.0.0.1:{free_port()}/0", 0.3, 2)
    budget = Bound(RedisBudget(client, PREFIX, 1.0, 0.3), BucketParams(1.0, 5, 1.0))
    started = time.monotonic()
    try:
        with pytest.raises(StoreError):
            await budget.reserve("a")
        with pytest.raises(StoreError):
            await budget.observe("a", 1, time.time() + 5, None)
    finally:
        await client.close()
    assert time.monotonic() - started < 2
