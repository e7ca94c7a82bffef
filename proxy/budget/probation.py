"""The probation pool (pass-through mode): keys Braze has not yet accepted share a small part of each budget.

A pass-through key is *accepted* once Braze answers it with a success; the proxy remembers that per credential
scope (in process, bounded, and in Redis for every replica, expiring on its own). Until then each of its calls
takes a token first from the pool (a bucket of `share` of its budget's rate and burst, see pool_limit), where
all keys on probation are one team, PROBATION_TEAM, and then a token of the budget itself as its own team, of
the weight `share`. So a flood of invented keys spends at most `share` of the budget however many keys it
invents, and a key Braze accepts weighs 1 in the same team (a key alone stays alone). A key Braze refuses is
remembered by upstream/refusals.py and costs nothing meanwhile.
Redis failures here only mean the replica remembers alone: a key it has not seen accepted stays on probation.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

from proxy.budget.buckets import Limit, Payer
from proxy.core.credentials import Credential
from proxy.core.errors import StoreError
from proxy.redis.connection import RedisConnection
from proxy.redis.health import Health

PROBATION_TEAM = "probation"  # the pool's one team: every key on probation together
POOL_SUFFIX = ":probation"  # the pool's bucket id: "<workspace>:<group>:probation"
ACCEPTED_SECONDS = 86_400.0  # a key Braze accepted stays out of probation this long after its last success
RECHECK_SECONDS = 3_600.0  # a replica trusts its own memory this long before writing or reading Redis again
MAX_ACCEPTED = 10_000  # keys remembered in process
# A few new keys at once may each try (a restart without Redis forgets which keys Braze accepted), even in a
# small group such as events_products (burst 20: 5% would be one token).
MIN_POOL_BURST = 5


def pool_limit(limit: Limit, share: float) -> Limit:
    """The probation pool of a budget of `limit`: `share` of its rate and of its burst, with a burst of at least
    MIN_POOL_BURST (or the budget's whole burst where that is smaller)."""
    return Limit(limit.per_hour * share, max(min(limit.burst, MIN_POOL_BURST), int(limit.burst * share)))


def on_probation(payer: Payer, share: float) -> Payer:
    """`payer` for a key Braze has not yet accepted: it takes a token from the pool first (as PROBATION_TEAM),
    then from the budget as its own team of the weight `share` (the gate sees to the second)."""
    limit = pool_limit(payer.limit, share)
    pool = replace(
        payer, budget=payer.budget + POOL_SUFFIX, limit=limit, team=PROBATION_TEAM, weight=share, probation=None
    )
    return replace(payer, probation=pool)


class Accepted:
    """The credential scopes Braze answered with a success lately: in process (bounded) and in Redis."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        conn: RedisConnection | None = None,
        prefix: str = "",
        timeout: float = 0.5,
        health: Health | None = None,
    ) -> None:
        self._clock = clock
        self._conn = conn
        self._prefix = prefix
        self._timeout = timeout
        self._health = health
        self._local: OrderedDict[str, float] = OrderedDict()  # scope -> until when this process trusts it

    def _key(self, scope: str) -> str:
        return f"{self._prefix}accepted:{scope}"

    def _keep(self, scope: str, until: float) -> None:
        self._local[scope] = until
        self._local.move_to_end(scope)
        while len(self._local) > MAX_ACCEPTED:
            self._local.popitem(last=False)

    async def known(self, scope: str) -> bool:
        """Whether Braze accepted this credential lately (here, or on another replica)."""
        now = self._clock()
        if self._local.get(scope, 0.0) > now:
            return True
        if self._conn is None or self._health is None or not self._health.readable:
            return False
        try:
            async with self._conn.translated(self._timeout):
                found = await self._conn.client.exists(self._key(scope))
        except StoreError as error:
            self._health.failed(error)
            return False
        if found:
            self._keep(scope, now + RECHECK_SECONDS)
        return bool(found)

    async def remember(self, scope: str) -> None:
        """Braze answered this credential with a success: out of probation for ACCEPTED_SECONDS."""
        now = self._clock()
        if self._local.get(scope, 0.0) > now + ACCEPTED_SECONDS - RECHECK_SECONDS:
            return  # written within the last RECHECK_SECONDS: not once a success
        self._keep(scope, now + ACCEPTED_SECONDS)
        if self._conn is None or self._health is None or not self._health.writable:
            return
        try:
            async with self._conn.translated(self._timeout):
                await self._conn.client.set(self._key(scope), b"1", px=int(ACCEPTED_SECONDS * 1000))
        except StoreError as error:
            self._health.failed(error)


class Probation:
    """Who pays for a call of a pass-through key: its own payer once Braze accepted it, else the pool's."""

    def __init__(self, share: float, accepted: Accepted) -> None:
        self._share = share
        self._accepted = accepted

    async def payer(self, credential: Credential, payer: Payer) -> Payer:
        """`payer`, on probation when `credential` is a pass-through key Braze has not yet accepted."""
        if credential.managed or await self._accepted.known(credential.scope):
            return payer
        return on_probation(payer, self._share)

    async def succeeded(self, credential: Credential) -> None:
        """Braze answered `credential` with a success."""
        if not credential.managed:
            await self._accepted.remember(credential.scope)
