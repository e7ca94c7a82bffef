"""The upstream gate: the one object every call to Braze passes through.

It takes a token from the shared budget (or, while Redis is out of reach and the policy is fail-open, from
this replica's share), waits what the bucket says, refuses what it must, and learns from Braze's
rate-limit headers and 429s (kept per budget, so one budget's 429s never lengthen another's backoff).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import replace

from proxy.budget.buckets import Budget, Payer
from proxy.budget.memory import MemoryBudget
from proxy.core.bucket import MAX_BLOCK, Decision, block_after_429, sane_reset
from proxy.core.errors import RateLimited, StoreError, Unavailable
from proxy.core.rate_headers import RateInfo
from proxy.obs.metrics import Metrics
from proxy.redis.health import Health

log = logging.getLogger("braze_proxy.gate")

# The bucket's refusal reason -> the rejections metric label.
REJECTION_REASONS = {
    "tokens": "tokens",
    "share": "team_share",
    "braze": "upstream_remaining",
    "blocked": "upstream_429",
    "probation": "probation",
}
# The refusal reason -> what the client is told (message, Cache-Status detail); others: the budget is spent.
REFUSALS: dict[str, tuple[str | None, str]] = {
    "share": ("Rate limit exceeded: your team is over its share of the proxy's upstream budget", "team-share"),
    "braze": (
        "Rate limit exceeded: Braze reports the workspace's rate limit spent until its reset",
        "braze-remaining-spent",
    ),
    "blocked": ("Rate limit exceeded: the Braze API answered 429, no calls until its reset", "braze-rate-limited"),
    "probation": (
        "Rate limit exceeded: keys Braze has not yet accepted share a small part of the proxy's upstream budget,"
        " and it is spent",
        "probation",
    ),
}
MAX_STREAKS = 1000  # budgets whose 429 streak is tracked


class UpstreamGate:
    def __init__(
        self,
        *,
        shared: Budget,
        local: MemoryBudget,
        health: Health,
        fail_open: bool,
        metrics: Metrics,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._shared = shared  # the same object as `local` without Redis
        self._local = local
        self._health = health
        self._fail_open = fail_open
        self._m = metrics
        self._clock = clock
        self._sleep = sleep
        self._streaks: OrderedDict[str, int] = OrderedDict()
        self._warned_reset = False

    async def admit(self, payer: Payer) -> None:
        """Return when `payer` may call Braze (after waiting for a reserved token); raise RateLimited when the
        budget refuses (a decision for `payer`'s team: only its callers are handed it), Unavailable when it
        cannot be checked and the policy is fail-closed."""
        pool = payer.probation
        if pool is None:
            await self._take(payer, payer.team)
            return
        # A key Braze has not yet accepted: a token of the probation pool, then one of the budget, where it weighs
        # the pool's small weight (probation.py).
        await self._take(pool, payer.team, pool=True)
        await self._take(replace(payer, weight=pool.weight, probation=None), payer.team)

    async def _take(self, payer: Payer, team: str, pool: bool = False) -> None:
        decision = await self._reserve(payer)
        labels = (payer.workspace, payer.group)
        if pool:
            self._m.probation_tokens.labels(*labels).set(max(0.0, decision.tokens))
            (self._m.probation_grants if decision.allowed else self._m.probation_refusals).labels(*labels).inc()
        else:
            self._m.tokens.labels(*labels).set(max(0.0, decision.tokens))
        if not decision.allowed:
            reason = "probation" if pool else decision.reason
            self._m.token_rejections.labels(REJECTION_REASONS.get(reason, "tokens")).inc()
            self._m.team_refusals.labels(payer.team_label).inc()
            message, detail = REFUSALS.get(reason, (None, "budget-spent"))
            raise RateLimited(decision.wait, message, detail=detail, team=team)
        if decision.wait > 0:
            self._m.token_waits.inc()
            self._m.token_wait_seconds.observe(decision.wait)
            await self._sleep(decision.wait)

    async def _reserve(self, payer: Payer) -> Decision:
        if self._shared is self._local or self._health.writable:
            try:
                decision = await self._shared.reserve(payer)
            except StoreError as error:
                self._health.failed(error)
            else:
                if self._shared is not self._local:
                    self._local.note(payer, decision.allowed)
                return decision
        if not self._fail_open:  # fail-closed: no upstream call while the shared budget is out of reach
            raise Unavailable("Service unavailable: the shared upstream budget cannot be checked")
        return await self._local.reserve(payer)

    async def learn(self, payer: Payer, status: int, rate: RateInfo) -> float | None:
        """Fold Braze's rate-limit headers (and a 429) into the budgets; for a 429, the seconds until Braze
        may be asked again."""
        now = self._clock()
        reset, bogus = sane_reset(rate.reset, now)
        if bogus and not self._warned_reset:
            self._warned_reset = True  # once per process: a broken header repeats on every answer
            log.warning(
                "bogus X-RateLimit-Reset from Braze",
                extra={"reset": rate.reset, "read_as": reset, "note": "more than a day ahead; read as ms or ignored"},
            )
        if reset is not None:
            reset = min(reset, now + MAX_BLOCK)  # no window outlasts Braze's hour
        rate = replace(rate, reset=reset)
        labels = (payer.workspace,)
        if rate.remaining is not None:
            self._m.upstream_rate_remaining.labels(*labels).set(rate.remaining)
        if rate.limit is not None:
            self._m.upstream_rate_limit.labels(*labels).set(rate.limit)
        if rate.reset is not None:
            self._m.upstream_rate_reset.labels(*labels).set(rate.reset)
        blocked: float | None = None
        if status == 429:
            streak = self._streaks.pop(payer.budget, 0) + 1
            self._streaks[payer.budget] = streak
            if len(self._streaks) > MAX_STREAKS:
                self._streaks.popitem(last=False)
            blocked = block_after_429(rate.reset, rate.retry_after, streak, now)
        else:
            self._streaks.pop(payer.budget, None)
        if rate.remaining is not None or blocked is not None:
            remaining = float(rate.remaining) if rate.remaining is not None else None
            if self._shared is not self._local and self._health.writable:
                try:
                    await self._shared.observe(payer, remaining, rate.reset, blocked)
                except StoreError as error:
                    self._health.failed(error)
            await self._local.observe(payer, remaining, rate.reset, blocked)
        return None if blocked is None else max(1.0, blocked - now)
