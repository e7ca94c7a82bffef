"""The upstream budget: a token bucket per (workspace, endpoint group), fairly divided between teams, shared by
all replicas through Redis.

RedisBudget runs lua/token_bucket.lua (EVALSHA, Redis's clock, three keys sharing one hash tag per budget).
MemoryBudget runs the same arithmetic (bucket.py, fairshare.py) in process: the embedded default, and the
fallback while Redis is unreachable, where each of `shares` processes holds its part of every budget.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Protocol

from proxy.core.bucket import BucketParams, BucketState, Decision, fresh_state, observe, reserve
from proxy.core.errors import StoreError
from proxy.core.fairshare import MAX_TEAMS, ShareParams, TeamView, decayed
from proxy.redis.connection import RedisConnection

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


class Budget(Protocol):
    async def reserve(self, payer: Payer) -> Decision:
        """Take (or reserve) one token for `payer`. Raises StoreError if the shared state is unreachable."""

    async def observe(
        self, payer: Payer, remaining: float | None, reset: float | None, blocked_until: float | None
    ) -> None:
        """Record what Braze said (rate-limit headers, a 429's block) for every replica."""


def _lua(name: str) -> str:
    return resources.files("proxy").joinpath("lua", name).read_text()


def bucket_ttl_ms(params: BucketParams) -> int:
    # Long enough to refill the bucket and to outlive Braze's hourly window; a missing hash means full.
    return int((max(params.capacity / params.rate, 3600.0) + 60.0) * 1000)


def params_of(limit: Limit, shares: int, max_wait: float) -> BucketParams:
    """The bucket of one of `shares` equal parts of a budget (1: the whole budget)."""
    return BucketParams.per_hour(limit.per_hour / shares, max(1, limit.burst // shares), max_wait)


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


class RedisBudget:
    def __init__(self, conn: RedisConnection, prefix: str, max_wait: float, timeout: float) -> None:
        self.conn = conn  # read by background.Spare (the bucket, without taking a token)
        self._conn = conn
        self._prefix = prefix
        self._max_wait = max_wait
        self._timeout = timeout
        self._take = conn.script(_lua("token_bucket.lua"))  # reloaded on NOSCRIPT (failover, SCRIPT FLUSH)
        self._observe = conn.script(_lua("observe.lua"))

    def keys(self, budget: str) -> list[str]:
        # One hash tag: the bucket, its teams and their activity sit in one slot on Redis Cluster.
        base = f"{self._prefix}{{budget:{budget}}}"
        return [base, base + ":teams", base + ":active"]

    async def reserve(self, payer: Payer) -> Decision:
        p = params_of(payer.limit, 1, self._max_wait)
        share = ShareParams.for_capacity(p.capacity)
        args: list[str | int] = [repr(p.rate), repr(p.capacity), repr(p.max_wait), bucket_ttl_ms(p)]
        args += [payer.team, repr(payer.weight), repr(share.half_life), repr(share.active_for), repr(share.headroom)]
        args.append(MAX_TEAMS)
        async with self._conn.translated(self._timeout):
            allowed, tokens, seconds, reason = await self._take(self.keys(payer.budget), args)
        try:
            why = reason.decode() if isinstance(reason, bytes) else str(reason)
            return Decision(bool(int(allowed)), float(tokens), float(seconds), why)
        except (TypeError, ValueError) as exc:
            raise StoreError("redis: unexpected token bucket reply") from exc

    async def observe(
        self, payer: Payer, remaining: float | None, reset: float | None, blocked_until: float | None
    ) -> None:
        args = ["" if v is None else repr(float(v)) for v in (remaining, reset, blocked_until)]
        ttl = bucket_ttl_ms(params_of(payer.limit, 1, self._max_wait))
        async with self._conn.translated(self._timeout):
            await self._observe(self.keys(payer.budget)[:1], [*args, ttl])
