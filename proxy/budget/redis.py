"""The budget in Redis, shared by all replicas: lua/token_bucket.lua (EVALSHA, Redis's clock, three keys sharing
one hash tag per budget) and lua/observe.lua (what Braze's headers and 429s said)."""

from __future__ import annotations

from importlib import resources

from proxy.budget.buckets import Payer, bucket_ttl_ms, params_of
from proxy.core.bucket import Decision
from proxy.core.errors import StoreError
from proxy.core.fairshare import MAX_TEAMS, ShareParams
from proxy.redis.connection import RedisConnection


def _lua(name: str) -> str:
    return resources.files("proxy").joinpath("lua", name).read_text()


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
