"""Fair share inside one budget: the arithmetic simulated on a moved clock (the in-process budget), and the Lua
script held to it on a real redis-server."""

from __future__ import annotations

from collections import Counter

import pytest

from proxy.budget.buckets import Limit, Payer
from proxy.budget.memory import MemoryBudget
from proxy.core.fairshare import TeamView, decayed, over_share

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
