"""The in-process budget on a moved clock: a bounded number of budgets.
MemoryBudget and RedisBudget passing one suite on a real redis-server:
tests/inprocess/test_budget.py."""

from __future__ import annotations

from proxy.budget.buckets import MAX_BUDGETS, Budget, Limit, Payer
from proxy.budget.memory import MemoryBudget
from proxy.core.bucket import BucketParams, Decision


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


# --- what only the in-process budget does ------------------------------------------------------------------------


async def test_memory_budget_on_a_manual_clock_tracks_a_bounded_number_of_budgets() -> None:
    now = [1_700_000_000.0]
    budget = Bound(MemoryBudget(1, 0.0, lambda: now[0]), BucketParams(rate=1.0, capacity=1, max_wait=0.0))
    assert (await budget.reserve("first")).allowed
    assert not (await budget.reserve("first")).allowed
    for i in range(MAX_BUDGETS):
        await budget.reserve(f"s{i}")
    # The oldest scope was forgotten: it starts again with a full bucket (bounded memory, not a leak).
    assert (await budget.reserve("first")).allowed
    now[0] += 1.0
    assert (await budget.reserve("s1")).allowed
