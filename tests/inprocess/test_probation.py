"""The probation pool for keys Braze has not yet accepted: its size and setting, the accepted keys' memory (in
process and in a real redis-server), and the gate's two takes, on an injected clock."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis
from prometheus_client import generate_latest
from pydantic import ValidationError

from proxy.budget.buckets import Limit, Payer
from proxy.budget.gate import UpstreamGate
from proxy.budget.memory import MemoryBudget
from proxy.budget.probation import (
    ACCEPTED_SECONDS,
    MAX_ACCEPTED,
    PROBATION_TEAM,
    RECHECK_SECONDS,
    Accepted,
    Probation,
    on_probation,
    pool_limit,
)
from proxy.cache.redis import connect
from proxy.core.credentials import Credential
from proxy.core.errors import RateLimited, team_tag
from proxy.obs.metrics import Metrics
from proxy.redis.connection import RedisConnection
from proxy.redis.health import AlwaysUp
from proxy.settings.model import Settings, describe_error
from tests.support.harness import ManualClock
from tests.support.load import metric
from tests.support.procs import RedisServer

PATH = "/sessions/data_series"
PREFIX = "test:"


BUDGET = Limit(36_000, 100)


def payer(team: str = "pabc", limit: Limit = BUDGET) -> Payer:
    return Payer("default:default", "default", "default", limit, team, "pass-through")


def credential(scope: str, managed: bool = False) -> Credential:
    return Credential(scope, "key", "default", scope, "pass-through", managed=managed)


# --- pure ------------------------------------------------------------------------------------------------------


def test_the_pool_is_a_share_of_the_rate_and_the_burst_with_a_few_tokens_at_least() -> None:
    assert pool_limit(Limit(36_000, 1000), 0.05) == Limit(1_800, 50)
    assert pool_limit(Limit(200, 20), 0.05) == Limit(10, 5), "a few new keys at once, even in a small group"
    assert pool_limit(Limit(36, 2), 0.05) == Limit(1.8, 2), "never more than the budget's own burst"
    assert pool_limit(Limit(3600, 10), 1.0) == Limit(3600, 10)


def test_a_payer_on_probation_takes_from_its_budgets_pool_under_its_own_team() -> None:
    base = payer("p123")
    held = on_probation(base, 0.05)
    assert held.probation is not None
    assert (held.budget, held.team, held.limit) == (base.budget, "p123", base.limit)  # the budget's own
    assert held.probation.budget == "default:default:probation"
    assert (held.probation.team, held.probation.weight, held.probation.limit) == (PROBATION_TEAM, 0.05, Limit(1_800, 5))
    assert held.probation.probation is None


@pytest.mark.parametrize("value", ["0", "-0.1", "1.5", "nan", "inf", "abc"])
def test_a_share_outside_zero_to_one_stops_start_up(value: str) -> None:
    with pytest.raises(ValidationError) as error:
        Settings(probation_share=value)
    assert describe_error(error.value).startswith("invalid setting BRAZE_PROXY_PROBATION_SHARE: ")


def test_the_share_defaults_to_five_percent() -> None:
    assert Settings().probation_share == 0.05
    assert Settings(probation_share="1").probation_share == 1.0


# --- the accepted keys' memory ---------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def aclient(redis_server: RedisServer, redis_client: redis.Redis) -> AsyncIterator[RedisConnection]:
    client = connect(redis_server.url, 1.0, 4)
    yield client
    await client.close()


def accepted(clock: ManualClock, conn: RedisConnection | None) -> Accepted:
    return Accepted(clock=clock, conn=conn, prefix=PREFIX, timeout=1.0, health=AlwaysUp() if conn else None)


async def test_a_key_braze_accepted_is_known_for_a_day_in_process() -> None:
    clock = ManualClock(1_000_000.0)
    memory = accepted(clock, None)
    assert not await memory.known("pa")
    await memory.remember("pa")
    assert await memory.known("pa") and not await memory.known("pb")
    clock.advance(ACCEPTED_SECONDS + 1)
    assert not await memory.known("pa")


async def test_the_memory_in_process_is_bounded() -> None:
    clock = ManualClock(1_000_000.0)
    memory = accepted(clock, None)
    for i in range(MAX_ACCEPTED + 1):
        await memory.remember(f"p{i}")
    assert not await memory.known("p0"), "the oldest went first"
    assert await memory.known("p1") and await memory.known(f"p{MAX_ACCEPTED}")


async def test_every_replica_knows_a_key_accepted_on_one_and_redis_forgets_it_on_its_own(
    aclient: RedisConnection, redis_client: redis.Redis
) -> None:
    clock = ManualClock(time.time())
    one, other = accepted(clock, aclient), accepted(clock, aclient)
    assert not await other.known("pa")
    await one.remember("pa")
    assert await other.known("pa"), "learned from Redis"
    ttl = redis_client.pttl(f"{PREFIX}accepted:pa")
    assert ACCEPTED_SECONDS * 1000 - 5_000 < ttl <= ACCEPTED_SECONDS * 1000
    assert [k.decode() for k in redis_client.keys("*")] == [f"{PREFIX}accepted:pa"], "the scope, never a key"
    redis_client.delete(f"{PREFIX}accepted:pa")  # as if it expired
    assert await other.known("pa"), "trusted in process for a while"
    clock.advance(RECHECK_SECONDS + 1)
    assert not await other.known("pa"), "then asked again"


async def test_a_success_rewrites_redis_at_most_once_an_hour(
    aclient: RedisConnection, redis_client: redis.Redis
) -> None:
    clock = ManualClock(time.time())
    memory = accepted(clock, aclient)
    await memory.remember("pa")
    redis_client.delete(f"{PREFIX}accepted:pa")
    await memory.remember("pa")
    assert not redis_client.exists(f"{PREFIX}accepted:pa"), "written a moment ago: not once a success"
    clock.advance(RECHECK_SECONDS + 1)
    await memory.remember("pa")
    assert redis_client.exists(f"{PREFIX}accepted:pa")


async def test_probation_is_for_pass_through_keys_braze_has_not_accepted() -> None:
    probation = Probation(0.05, accepted(ManualClock(1_000_000.0), None))
    base = payer("pa")
    assert (await probation.payer(credential("pa"), base)).probation is not None
    assert await probation.payer(credential("m1", managed=True), base) == base, "the proxy's own key: never"
    await probation.succeeded(credential("pa"))
    assert await probation.payer(credential("pa"), base) == base


# --- the gate --------------------------------------------------------------------------------------------------


async def test_the_gate_takes_from_the_pool_then_the_budget_and_refusals_name_the_key() -> None:
    clock = ManualClock(1_000_000.0)
    budget = MemoryBudget(1, 0.0, clock)
    metrics = Metrics()
    gate = UpstreamGate(
        shared=budget, local=budget, health=AlwaysUp(), fail_open=True, metrics=metrics, clock=clock, sleep=clock.sleep
    )
    for i in range(5):  # the pool's burst: 5 of the budget's 100
        await gate.admit(on_probation(payer(f"p{i}"), 0.05))
    with pytest.raises(RateLimited) as refused:
        await gate.admit(on_probation(payer("p9"), 0.05))
    assert refused.value.detail == "probation" and "not yet accepted" in refused.value.message
    assert refused.value.team == team_tag("p9"), "the key's own refusal, handed to its callers only"
    await gate.admit(payer("paccepted"))  # a key Braze accepted pays from the budget as it always did
    text = generate_latest(metrics.registry).decode()
    assert metric(text, "braze_proxy_probation_grants_total", workspace="default") == 5
    assert metric(text, "braze_proxy_probation_refusals_total", workspace="default") == 1
    assert metric(text, "braze_proxy_rate_limit_rejections_total", reason="probation") == 1
    assert metric(text, "braze_proxy_probation_tokens", workspace="default") == 0
    assert metric(text, "braze_proxy_rate_limit_tokens", workspace="default") == 94, "the budget paid all six"
    clock.advance(2.0)  # the pool refills at 0.5 a second
    await gate.admit(on_probation(payer("p9"), 0.05))


async def test_a_key_alone_stays_alone_in_the_fair_share_once_accepted() -> None:
    """A key's probation call is its own team's, with the pool's small weight: once Braze accepts it, the key is
    the budget's only team and may spend all of it (no "over its share" against its own first call)."""
    clock = ManualClock(1_000_000.0)
    budget = MemoryBudget(1, 0.0, clock)
    limit = Limit(3600, 10)
    gate = UpstreamGate(
        shared=budget, local=budget, health=AlwaysUp(), fail_open=True, metrics=Metrics(), clock=clock,
        sleep=clock.sleep,
    )  # fmt: skip
    await gate.admit(on_probation(payer("pa", limit), 0.05))
    for _ in range(9):  # the rest of the burst, far below the headroom
        await gate.admit(payer("pa", limit))
    with pytest.raises(RateLimited) as spent:
        await gate.admit(payer("pa", limit))
    assert spent.value.detail == "budget-spent", "the bucket is empty: not a share the key is over"


async def test_keys_on_probation_weigh_little_beside_an_accepted_key() -> None:
    """Invented keys through the pool are teams of the pool's weight: below the headroom an accepted key is under
    its share and takes the tokens left."""
    clock = ManualClock(1_000_000.0)
    budget = MemoryBudget(1, 0.0, clock)
    limit = Limit(3600, 10)
    gate = UpstreamGate(
        shared=budget, local=budget, health=AlwaysUp(), fail_open=True, metrics=Metrics(), clock=clock,
        sleep=clock.sleep,
    )  # fmt: skip
    for i in range(5):  # five invented keys: the pool's burst, and half the budget's
        await gate.admit(on_probation(payer(f"p{i}", limit), 0.05))
    with pytest.raises(RateLimited) as pool:
        await gate.admit(on_probation(payer("p5", limit), 0.05))
    assert pool.value.detail == "probation"
    for _ in range(5):  # the budget's other half, below its headroom: all the accepted key's
        await gate.admit(payer("preal", limit))
