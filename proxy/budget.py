"""The upstream budget: a token bucket per upstream credential, shared by all replicas through Redis.

RedisBudget runs lua/token_bucket.lua (EVALSHA, Redis's clock, one hash-tagged key per budget).
MemoryBudget runs the same arithmetic (bucket.py) in process: the embedded default, and the fallback
while Redis is unreachable, at the configured rate divided by the expected replica count.
"""

from __future__ import annotations

from collections import OrderedDict
from importlib import resources
from typing import Protocol

import redis.asyncio as aioredis

from proxy.bucket import BucketParams, BucketState, Decision, fresh_state, observe, reserve
from proxy.cache import Clock
from proxy.errors import StoreError
from proxy.redis_store import translated

MAX_SCOPES = 10_000  # distinct credentials tracked in memory (pass-through mode)


class Budget(Protocol):
    name: str

    async def reserve(self, scope: str) -> Decision:
        """Take (or reserve) one token for `scope`. Raises StoreError if the shared state is unreachable."""

    async def observe(
        self, scope: str, remaining: float | None, reset: float | None, blocked_until: float | None
    ) -> None:
        """Record what Braze said (rate-limit headers, a 429's block) for every replica."""


def _lua(name: str) -> str:
    return resources.files("proxy").joinpath("lua", name).read_text()


def bucket_ttl_ms(params: BucketParams) -> int:
    # Long enough to refill the bucket and to outlive Braze's hourly window; a missing hash means full.
    return int((max(params.capacity / params.rate, 3600.0) + 60.0) * 1000)


class MemoryBudget:
    name = "memory"

    def __init__(self, params: BucketParams, clock: Clock) -> None:
        self.params = params
        self._clock = clock
        self._states: OrderedDict[str, BucketState] = OrderedDict()

    def _state(self, scope: str, now: float) -> BucketState:
        state = self._states.get(scope)
        if state is None:
            state = fresh_state(self.params, now)
            self._states[scope] = state
            if len(self._states) > MAX_SCOPES:
                self._states.popitem(last=False)
        else:
            self._states.move_to_end(scope)
        return state

    async def reserve(self, scope: str) -> Decision:
        now = self._clock()
        decision, self._states[scope] = reserve(self._state(scope, now), self.params, now)
        return decision

    async def observe(
        self, scope: str, remaining: float | None, reset: float | None, blocked_until: float | None
    ) -> None:
        now = self._clock()
        self._states[scope] = observe(self._state(scope, now), remaining, reset, blocked_until)


class RedisBudget:
    name = "redis"

    def __init__(self, client: aioredis.Redis, prefix: str, params: BucketParams, timeout: float) -> None:
        self.params = params
        self._prefix = prefix
        self._timeout = timeout
        self._take = client.register_script(_lua("token_bucket.lua"))
        self._observe = client.register_script(_lua("observe.lua"))
        self._ttl_ms = bucket_ttl_ms(params)

    def key(self, scope: str) -> str:
        # The hash tag keeps the bucket in one slot on Redis Cluster.
        return f"{self._prefix}{{budget:{scope}}}"

    async def reserve(self, scope: str) -> Decision:
        p = self.params
        async with translated(self._timeout):
            allowed, tokens, seconds, reason = await self._take(
                keys=[self.key(scope)], args=[repr(p.rate), repr(p.capacity), repr(p.max_wait), self._ttl_ms]
            )
        try:
            why = reason.decode() if isinstance(reason, bytes) else str(reason)
            return Decision(bool(int(allowed)), float(tokens), float(seconds), why)
        except (TypeError, ValueError) as exc:
            raise StoreError("redis: unexpected token bucket reply") from exc

    async def observe(
        self, scope: str, remaining: float | None, reset: float | None, blocked_until: float | None
    ) -> None:
        args = ["" if v is None else repr(float(v)) for v in (remaining, reset, blocked_until)]
        async with translated(self._timeout):
            await self._observe(keys=[self.key(scope)], args=[*args, self._ttl_ms])
