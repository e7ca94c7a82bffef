"""The budget in process: the same arithmetic as lua/token_bucket.lua (core/bucket.py, core/fairshare.py), the
embedded default and the fallback while Redis is unreachable, where each of `shares` processes holds its part of
every budget."""

from __future__ import annotations

from collections import OrderedDict

from proxy.budget.buckets import MAX_BUDGETS, Clock, Payer, params_of
from proxy.core.bucket import BucketParams, BucketState, Decision, fresh_state, observe, reserve
from proxy.core.fairshare import MAX_TEAMS, ShareParams, TeamView, decayed


class Ledger:
    """One budget's teams in process: the twin of the teams hash and activity zset of token_bucket.lua."""

    def __init__(self) -> None:
        self.teams: OrderedDict[str, tuple[float, float, float]] = OrderedDict()  # usage, at, weight; by last seen
        self.seen: dict[str, float] = {}
        self.total, self.total_at, self.active_weight = 0.0, 0.0, 0.0

    def view(self, team: str, weight: float, now: float, share: ShareParams) -> TeamView:
        """Register `team`'s request at `now` (dropping teams that went quiet) and its standing."""
        while self.teams:
            oldest = next(iter(self.teams))
            if self.seen[oldest] >= now - share.active_for and len(self.teams) < MAX_TEAMS:
                break
            self._forget(oldest)
        usage, at, known = self.teams.pop(team, (0.0, now, 0.0))
        self.active_weight += weight - known
        self.active_weight = max(self.active_weight, weight)
        usage = decayed(usage, at, now, share.half_life)
        self.teams[team], self.seen[team] = (usage, now, weight), now
        total = decayed(self.total, self.total_at or now, now, share.half_life)
        return TeamView(usage=usage, total=total, weight=weight, active_weight=self.active_weight)

    def granted(self, team: str, view: TeamView, now: float) -> None:
        self.teams[team] = (view.usage + 1, now, view.weight)
        self.total, self.total_at = view.total + 1, now

    def _forget(self, team: str) -> None:
        _, _, weight = self.teams.pop(team)
        del self.seen[team]
        self.active_weight -= weight


class MemoryBudget:
    def __init__(self, shares: int, max_wait: float, clock: Clock) -> None:
        self._shares = shares
        self._max_wait = max_wait
        self._clock = clock
        self._states: OrderedDict[str, tuple[BucketState, Ledger]] = OrderedDict()

    def _state(self, payer: Payer, params: BucketParams, now: float) -> tuple[BucketState, Ledger]:
        held = self._states.get(payer.budget)
        if held is None:
            held = self._states[payer.budget] = (fresh_state(params, now), Ledger())
            if len(self._states) > MAX_BUDGETS:
                self._states.popitem(last=False)
        else:
            self._states.move_to_end(payer.budget)
        return held

    async def reserve(self, payer: Payer) -> Decision:
        now = self._clock()
        params = params_of(payer.limit, self._shares, self._max_wait)
        share = ShareParams.for_capacity(params.capacity)
        state, ledger = self._state(payer, params, now)
        view = ledger.view(payer.team, payer.weight, now, share)
        decision, state = reserve(state, params, now, view, share)
        self._states[payer.budget] = (state, ledger)
        if decision.allowed:
            ledger.granted(payer.team, view, now)
        return decision

    def tokens(self, payer: Payer) -> tuple[float, float]:
        """(tokens held now, capacity) of `payer`'s bucket: a read, nothing taken (background work's room)."""
        now = self._clock()
        params = params_of(payer.limit, self._shares, self._max_wait)
        state, _ = self._state(payer, params, now)
        held = min(params.capacity, state.tokens + max(0.0, now - state.last) * params.rate)
        return (held if now >= state.blocked_until else 0.0), params.capacity

    def note(self, payer: Payer, granted: bool) -> None:
        """Record a call the shared budget decided, without spending here: when Redis goes away, this fallback
        already knows which teams are active and what they used (fairness holds from the first request on)."""
        now = self._clock()
        params = params_of(payer.limit, self._shares, self._max_wait)
        _, ledger = self._state(payer, params, now)
        view = ledger.view(payer.team, payer.weight, now, ShareParams.for_capacity(params.capacity))
        if granted:
            ledger.granted(payer.team, view, now)

    async def observe(
        self, payer: Payer, remaining: float | None, reset: float | None, blocked_until: float | None
    ) -> None:
        now = self._clock()
        state, ledger = self._state(payer, params_of(payer.limit, self._shares, self._max_wait), now)
        self._states[payer.budget] = (observe(state, remaining, reset, blocked_until), ledger)
