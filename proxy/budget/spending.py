"""What each team spent of each budget this hour, shared by the replicas, and the `X-RateLimit-*` headers of
every team's share, ready for the hot path.

Every upstream call is noted in process (no I/O); once a second the counts go to one Redis hash per hour
(HINCRBY, then HGETALL: every replica's) and each team's headers are rebuilt from it. A hit only looks its
team's headers up: what the replica already knows, at most a second or two old. Without Redis the counts are
this process's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from proxy.budget.buckets import Payer
from proxy.budget.payers import Accounts
from proxy.core.credentials import Authenticator
from proxy.core.endpoints import SERVED, Endpoint
from proxy.core.errors import StoreError
from proxy.core.shares import HOUR, Standing, hour_of, share, standing
from proxy.obs.metrics import Metrics
from proxy.redis.connection import RedisConnection

log = logging.getLogger("braze_proxy.spending")

SYNC_SECONDS = 1.0
Account = tuple[str, str, str]  # workspace, group, team label
RateHeaders = dict[tuple[str, str], dict[str, str]]  # (workspace, team label) -> headers, for one group


class Spending:
    def __init__(
        self,
        *,
        accounts: Accounts,
        auth: Authenticator,
        metrics: Metrics,
        clock: Callable[[], float],
        redis: RedisConnection | None = None,
        prefix: str = "",
        timeout: float = 0.5,
    ) -> None:
        self._accounts = accounts
        self._auth = auth
        self._m = metrics
        self._clock = clock
        self._redis = redis
        self._prefix = prefix
        self._timeout = timeout
        self._pending: Counter[Account] = Counter()  # noted, not yet in Redis
        self._hour = hour_of(clock())
        self._spent: Counter[Account] = Counter()  # this hour, every replica's as last read
        self._by_group: dict[str, RateHeaders] = {}  # mutated in place: handlers keep a reference
        self._task: asyncio.Task[None] | None = None
        self.rebuild()

    def note(self, payer: Payer) -> None:
        """One call made for `payer` (from the fetcher): counted now, shared at the next sync."""
        account = (payer.workspace, payer.group, payer.team_label)
        self._pending[account] += 1
        self._spent[account] += 1

    def headers_for(self, endpoint: Endpoint) -> RateHeaders:
        """The headers of every team for `endpoint`'s budget group (a dict kept up to date in place)."""
        return self._by_group.setdefault(self._accounts.group_of(endpoint), {})

    def standings(self) -> dict[Account, Standing]:
        """Every (workspace, group, team)'s standing now; the team "*" is the whole budget."""
        now = self._clock()
        weights = self._auth.weights()
        found: dict[Account, Standing] = {}
        for workspace, group, limit in self._accounts.budgets(SERVED):
            total = sum(n for (w, g, _), n in self._spent.items() if w == workspace and g == group)
            found[(workspace, group, "*")] = standing(limit.per_hour, total, limit.per_hour, total, now)
            for team, weight in weights.items():
                spent = self._spent.get((workspace, group, team), 0)
                team_share = share(limit.per_hour, weight, weights)
                found[(workspace, group, team)] = standing(team_share, spent, limit.per_hour, total, now)
        return found

    def rebuild(self) -> None:
        """Recompute every team's headers and remaining-share gauge from the counts known now."""
        fresh: dict[str, RateHeaders] = {}
        for (workspace, group, team), held in self.standings().items():
            if team == "*":
                continue
            fresh.setdefault(group, {})[(workspace, team)] = held.headers()
            self._m.team_share_remaining.labels(workspace, group, team).set(held.remaining)
        for group, headers in fresh.items():
            kept = self._by_group.setdefault(group, {})
            kept.update(headers)
            for gone in set(kept) - set(headers):  # a team removed from the tokens file
                del kept[gone]

    async def sync(self) -> None:
        """Share this replica's counts and read every replica's (this process's alone without Redis)."""
        now = self._clock()
        hour = hour_of(now)
        if hour != self._hour:  # a new hour: Braze's window and the shares start again
            self._hour, self._spent, self._pending = hour, Counter(), Counter()
        if self._redis is not None:
            with contextlib.suppress(StoreError):  # the counts wait for the next sync; the headers stay as known
                self._spent = await self._exchange(hour)
        self.rebuild()

    async def _exchange(self, hour: int) -> Counter[Account]:
        assert self._redis is not None
        key = f"{self._prefix}{{spend}}:{hour}"
        pending, self._pending = self._pending, Counter()
        try:
            async with self._redis.translated(self._timeout):
                pipe: Any = self._redis.client.pipeline(transaction=False)
                for account, count in pending.items():
                    pipe.hincrby(key, "\t".join(account), count)
                pipe.expire(key, 2 * HOUR)
                pipe.hgetall(key)
                replies = await pipe.execute()
        except StoreError:
            self._pending.update(pending)
            raise
        spent: Counter[Account] = Counter()
        for field, value in replies[-1].items():
            parts = field.decode(errors="replace").split("\t")
            if len(parts) == 3:
                spent[(parts[0], parts[1], parts[2])] = int(value)
        return spent

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(SYNC_SECONDS)
            try:
                await self.sync()
            except Exception:  # a bug must not end the headers' updates for good
                log.exception("team spending sync failed")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
