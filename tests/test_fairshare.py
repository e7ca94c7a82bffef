"""Fair share inside one budget: the arithmetic simulated on a moved clock (the in-process budget), and the Lua
script held to it on a real redis-server."""

from __future__ import annotations

from collections import Counter

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.budget.buckets import Limit, Payer
from proxy.budget.memory import MemoryBudget
from proxy.core.bucket import BucketParams, BucketState, reserve
from proxy.core.fairshare import ShareParams, TeamView, decayed, over_share
from tests.test_bucket import LuaBucket

T0 = 1_700_000_000.0


class Sim:
    """One in-process budget on a moved clock."""

    def __init__(self, per_second: float, burst: int, max_wait: float = 0.0) -> None:
        self.now = T0
        self.budget = MemoryBudget(1, max_wait, lambda: self.now)
        self.limit = Limit(per_second * 3600, burst)
        self.granted: Counter[str] = Counter()
        self.asked: Counter[str] = Counter()

    async def ask(self, team: str, weight: float = 1.0) -> bool:
        decision = await self.budget.reserve(Payer("w:g", "w", "g", self.limit, team, team, weight))
        self.asked[team] += 1
        if decision.allowed:
            self.granted[team] += 1
        return decision.allowed

    async def run(self, seconds: float, schedule: dict[str, float], weights: dict[str, float] | None = None) -> None:
        """Each team asks every `schedule[team]` seconds (a flood asks every millisecond), for `seconds`."""
        weights = weights or {}
        due = dict.fromkeys(schedule, self.now)
        end = self.now + seconds
        while self.now < end:
            team = min(due, key=lambda t: due[t])
            self.now = due[team]
            await self.ask(team, weights.get(team, 1.0))
            due[team] += schedule[team]


FLOOD = 0.001


async def test_polite_teams_are_answered_while_a_flood_gets_the_rest() -> None:
    sim = Sim(per_second=10, burst=10)
    await sim.run(60, {"flood": FLOOD, "polite-1": 0.5, "polite-2": 0.5})
    for polite in ("polite-1", "polite-2"):
        assert sim.granted[polite] >= 0.95 * sim.asked[polite], (sim.granted, sim.asked)
    total = sum(sim.granted.values())
    assert total <= 10 * 60 + 10, "never past the budget"
    assert total >= 0.95 * 10 * 60, "and never leaving it idle"
    assert sim.granted["flood"] >= total - sim.asked["polite-1"] - sim.asked["polite-2"]


async def test_a_team_alone_has_the_whole_budget() -> None:
    sim = Sim(per_second=10, burst=10)
    await sim.run(60, {"alone": FLOOD})
    assert sim.granted["alone"] >= 0.99 * 10 * 60


@pytest.mark.parametrize("spacing", [FLOOD, 0.003])
async def test_weights_split_a_contended_budget(spacing: float) -> None:
    sim = Sim(per_second=10, burst=10)
    await sim.run(60, {"heavy": spacing, "light": spacing * 1.01}, {"heavy": 3.0, "light": 1.0})
    ratio = sim.granted["heavy"] / sim.granted["light"]
    assert 3 * 0.8 <= ratio <= 3 * 1.2, sim.granted


async def test_many_keys_of_one_workspace_share_its_burst() -> None:
    sim = Sim(per_second=36 / 3600, burst=2)
    granted = [await sim.ask(f"key-{i}") for i in range(20)]
    assert sum(granted) <= 3


async def test_a_team_that_goes_quiet_gives_its_share_back() -> None:
    sim = Sim(per_second=10, burst=10)
    await sim.run(20, {"a": FLOOD, "b": FLOOD})
    before = Counter(sim.granted)
    await sim.run(20, {"a": FLOOD})  # b stopped asking
    assert sim.granted["a"] - before["a"] >= 0.95 * 10 * 20


def test_over_share_compares_usage_with_the_weight_of_active_teams() -> None:
    assert over_share(TeamView(usage=0, total=0, weight=1, active_weight=3)), "sharing, no team may rush ahead"
    assert over_share(TeamView(usage=6, total=10, weight=1, active_weight=3))
    assert not over_share(TeamView(usage=2, total=10, weight=1, active_weight=3))
    assert not over_share(TeamView(usage=10, total=10, weight=1, active_weight=1)), "alone: all of it is its share"
    assert not over_share(TeamView(usage=0, total=0, weight=1, active_weight=1))
    assert decayed(8.0, T0, T0 + 10, half_life=5) == pytest.approx(2.0)


# --- the Lua script against the arithmetic ----------------------------------------------------------------------


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tokens=st.floats(min_value=0, max_value=10, allow_nan=False),
    usage=st.floats(min_value=0, max_value=50, allow_nan=False),
    others=st.floats(min_value=0, max_value=50, allow_nan=False),
    weight=st.sampled_from([1.0, 2.0, 3.0]),
    other_weight=st.sampled_from([1.0, 3.0]),
)
def test_lua_refuses_a_team_over_its_share_exactly_when_the_arithmetic_does(
    redis_client: redis.Redis, tokens: float, usage: float, others: float, weight: float, other_weight: float
) -> None:
    p = BucketParams(rate=0.001, capacity=10.0, max_wait=0.0)  # no refill to speak of during the test
    share = ShareParams.for_capacity(p.capacity)
    lua = LuaBucket(redis_client, p)
    key = "test:{budget:fair}"
    now = lua.now()
    redis_client.delete(key, key + ":teams", key + ":active")
    redis_client.hset(key, mapping={"tokens": repr(tokens), "ts": repr(now), "share_total": repr(usage + others),
                                    "share_at": repr(now), "active_weight": repr(weight + other_weight)})  # fmt: skip
    redis_client.hset(
        key + ":teams", mapping={"me": f"{usage!r} {now!r} {weight!r}", "you": f"0 {now!r} {other_weight!r}"}
    )
    redis_client.zadd(key + ":active", {"me": now, "you": now})
    t0 = lua.now()
    got = lua.reserve(key, team="me", weight=weight, headroom=share.headroom)
    t1 = lua.now()
    wants = []
    for t in (t0, t1):  # the script decided at an instant between these: usage had decayed that much
        u, total = decayed(usage, now, t, share.half_life), decayed(usage + others, now, t, share.half_life)
        view = TeamView(usage=u, total=total, weight=weight, active_weight=weight + other_weight)
        wants.append(reserve(BucketState(tokens=tokens, last=now), p, t, view, share)[0])
    assert (got.allowed, got.reason) in {(w.allowed, w.reason) for w in wants}
    if got.reason == "share":
        assert got.wait == pytest.approx(wants[0].wait, rel=1e-6)
    stored = float(redis_client.hget(key + ":teams", "me").decode().split()[0])
    spent = 1 if got.allowed else 0
    # Usage decays between `now` and the script's instant (longer on a busy machine): bound it by t0 and t1.
    low, high = (decayed(usage, now, t, share.half_life) + spent for t in (t1, t0))
    assert low - 1e-6 <= stored <= high + 1e-6, (low, stored, high)


def test_lua_forgets_teams_that_went_quiet(redis_client: redis.Redis) -> None:
    p = BucketParams(rate=1.0, capacity=10.0, max_wait=0.0)
    lua = LuaBucket(redis_client, p)
    key = "test:{budget:quiet}"
    now = lua.now()
    redis_client.delete(key, key + ":teams", key + ":active")
    redis_client.hset(key, mapping={"active_weight": "4"})
    redis_client.hset(key + ":teams", mapping={"old": f"3 {now - 60!r} 3", "me": f"0 {now!r} 1"})
    redis_client.zadd(key + ":active", {"old": now - 60, "me": now})
    assert lua.reserve(key, team="me", weight=1.0, headroom=5.0).allowed
    assert redis_client.hkeys(key + ":teams") == [b"me"]
    assert float(redis_client.hget(key, "active_weight") or 0) == pytest.approx(1.0)
    assert all(redis_client.pttl(k) > 0 for k in (key, key + ":teams", key + ":active"))
