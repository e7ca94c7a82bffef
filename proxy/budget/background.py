"""Who pays for work nobody is waiting for (warming, refreshing ahead): a team of its own with a tiny weight.

Fair sharing (fairshare.py) refuses a team over its share once the bucket is down to its headroom, and a team
of this weight is over its share as soon as any client team spends: so background calls only ever take tokens
above the headroom (budget the clients are not using) and never push a client into a 429. A refusal is a skip.
With no client team active the share alone would let it take every token, so `Spare` also reads the bucket
first (no token taken) and background work waits for tokens above the headroom.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from proxy.budget.buckets import Budget, Payer, params_of
from proxy.budget.memory import MemoryBudget
from proxy.budget.redis import RedisBudget
from proxy.core.credentials import Credential
from proxy.core.endpoints import Endpoint
from proxy.core.errors import StoreError
from proxy.core.fairshare import ShareParams

BACKGROUND = "~background"  # not a team name (names never hold '~'), nor a pass-through scope
BACKGROUND_WEIGHT = 0.001


def background(credential: Credential) -> Credential:
    """`credential` (same upstream key, same scope: same cache keys) paying as the background team."""
    return replace(credential, team=BACKGROUND, team_label=BACKGROUND, weight=BACKGROUND_WEIGHT)


class Spare:
    """Whether a budget holds tokens above its fair-share headroom now: read from the shared bucket (Redis) or
    this process's, nothing taken. Redis out of reach: no room (background work waits)."""

    def __init__(
        self,
        payer: Callable[[Credential, Endpoint], Payer],
        shared: Budget,
        local: MemoryBudget,
        clock: Callable[[], float],
    ) -> None:
        self._payer = payer
        self._shared = shared
        self._local = local
        self._clock = clock

    async def room(self, credential: Credential, endpoint: Endpoint) -> bool:
        payer = self._payer(credential, endpoint)
        if isinstance(self._shared, RedisBudget):
            try:
                tokens, capacity = await self._redis_tokens(self._shared, payer)
            except StoreError:
                return False
        else:
            tokens, capacity = self._local.tokens(payer)
        return tokens >= ShareParams.for_capacity(capacity).headroom + 1

    async def _redis_tokens(self, budget: RedisBudget, payer: Payer) -> tuple[float, float]:
        """The bucket as lua/token_bucket.lua keeps it (a missing hash is a full bucket), refilled to now."""
        params = params_of(payer.limit, 1, 0.0)
        conn = budget.conn
        async with conn.translated(conn.timeout):
            raw: Any = await conn.client.hmget(budget.keys(payer.budget)[0], ["tokens", "ts", "blocked_until"])
        now = self._clock()
        tokens, last, blocked = (float(v) if v is not None else None for v in raw)
        if blocked is not None and now < blocked:
            return 0.0, params.capacity
        if tokens is None or last is None:
            return params.capacity, params.capacity
        return min(params.capacity, tokens + max(0.0, now - last) * params.rate), params.capacity
