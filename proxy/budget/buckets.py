"""The upstream budget: a token bucket per (workspace, endpoint group), fairly divided between teams. What every
backend shares: who pays (Payer), the budget's limit, the Budget protocol and the bucket's parameters.

Backends: budget/redis.py (shared by all replicas through Redis) and budget/memory.py (in process: the embedded
default, and the fallback while Redis is unreachable).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from proxy.core.bucket import BucketParams, Decision

Clock = Callable[[], float]
MAX_BUDGETS = 10_000  # budgets tracked in memory


@dataclass(frozen=True, slots=True)
class Limit:
    per_hour: float
    burst: int


@dataclass(frozen=True, slots=True)
class Payer:
    """Who pays for a call: a budget (workspace and endpoint group) and a team inside it."""

    budget: str  # the bucket's id: "<workspace>:<group>"
    workspace: str  # metric label (a configured name)
    group: str  # metric label (the endpoint's budget group)
    limit: Limit  # the whole budget's rate and burst
    team: str  # the team's id inside the budget (a configured name, or a credential's scope)
    team_label: str  # metric label: a configured team name, or one shared label
    weight: float = 1.0
    probation: Payer | None = None  # the pool a key Braze has not yet accepted takes from first (budget/probation.py)


class Budget(Protocol):
    async def reserve(self, payer: Payer) -> Decision:
        """Take (or reserve) one token for `payer`. Raises StoreError if the shared state is unreachable."""

    async def observe(
        self, payer: Payer, remaining: float | None, reset: float | None, blocked_until: float | None
    ) -> None:
        """Record what Braze said (rate-limit headers, a 429's block) for every replica."""


def bucket_ttl_ms(params: BucketParams) -> int:
    # Long enough to refill the bucket and to outlive Braze's hourly window; a missing hash means full.
    return int((max(params.capacity / params.rate, 3600.0) + 60.0) * 1000)


def params_of(limit: Limit, shares: int, max_wait: float) -> BucketParams:
    """The bucket of one of `shares` equal parts of a budget (1: the whole budget)."""
    return BucketParams.per_hour(limit.per_hour / shares, max(1, limit.burst // shares), max_wait)
