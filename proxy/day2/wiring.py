"""The day-2 parts, built from Settings and the request path's components, started and closed together: teams'
spending and rate-limit headers, refresh ahead, warming (and the warm file's daily schedule), the tokens file,
and what the admin API purges and lists.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Protocol

from proxy.budget.background import Spare
from proxy.budget.buckets import Budget
from proxy.budget.memory import MemoryBudget
from proxy.budget.payers import Accounts
from proxy.budget.spending import Spending
from proxy.cache.memory import MemoryLRU
from proxy.core.credentials import Authenticator, Credential
from proxy.core.day2_files import WarmList, parse_warm_file
from proxy.core.errors import InvalidRequest, StoreError
from proxy.core.query import KeyRules
from proxy.day2.inventory import Inventory
from proxy.day2.tokens_file import TokensFile
from proxy.day2.warm import Warmer, due_between, parse_questions
from proxy.driver import Service
from proxy.fill.refresh_ahead import RefreshAhead
from proxy.fill.wakeups import PubSubWakeups
from proxy.obs.metrics import Metrics
from proxy.redis.connection import RedisConnection
from proxy.settings.model import Settings, Team
from proxy.windows.store import MemorySeriesStore, SeriesStore


class Backed(Protocol):
    """What day-2 work needs of the composition root's backing (components.Backing has it)."""

    @property
    def shared(self) -> Budget: ...
    @property
    def local(self) -> MemoryBudget: ...
    @property
    def redis(self) -> RedisConnection | None: ...
    @property
    def notices(self) -> PubSubWakeups | None: ...


log = logging.getLogger("braze_proxy.day2")

WARM_TICK_SECONDS = 1.0
DAY_MS = 86_400_000


@dataclass(slots=True)
class Day2:
    spending: Spending
    warmer: Warmer
    inventory: Inventory
    auth: Authenticator
    managed: Authenticator | None  # the managed key alone (whose data the warm file and managed warms fetch)
    ahead: RefreshAhead | None  # None with BRAZE_PROXY_REFRESH_AHEAD=false
    rules: KeyRules
    clock: Callable[[], float]
    tokens: TokensFile | None = None  # None without BRAZE_PROXY_CLIENT_TOKENS_FILE
    on_teams: list[Callable[[], None]] = field(default_factory=list)  # told after the teams changed

    def warm_credential(self, api_key: object) -> Credential:
        """Whose data a warm fetches: the managed key's (then `api_key` must be absent), else `api_key`'s.
        Raises InvalidRequest, Unauthorized."""
        if self.managed is not None:
            if api_key is not None:
                raise InvalidRequest("Invalid request: managed-key mode warms with the managed key; drop 'api_key'")
            return self.managed.resolve(None, None)
        if not isinstance(api_key, str) or not api_key:
            raise InvalidRequest("Invalid request: pass-through mode needs 'api_key' (whose data to warm)")
        return self.auth.resolve(f"Bearer {api_key}", None)

    def apply_teams(self, teams: list[Team], metrics: Metrics) -> None:
        """A reloaded tokens file: the new teams resolve from now on, their counters start at zero, shares and
        headers are recomputed, every remembered resolution is forgotten (a removed token is refused at once)."""
        self.auth.set_teams(teams)
        labels = [(label,) for label in self.auth.team_labels()]
        names = ("team_requests", "team_hits", "team_upstream_calls", "team_refusals")
        metrics.initialise({name: labels for name in names})
        self.spending.rebuild()
        for told in self.on_teams:
            told()


class WarmSchedule:
    """The warm file's daily warm, by one replica: whoever first claims the day in Redis (without Redis, this
    process)."""

    def __init__(
        self,
        warm: WarmList,
        day2: Day2,
        rules: KeyRules,
        clock: Callable[[], float],
        redis: RedisConnection | None,
        prefix: str,
    ) -> None:
        self._warm = warm
        self._day2 = day2
        self._rules = rules
        self._clock = clock
        self._redis = redis
        self._prefix = prefix

    async def tick(self, since: float, now: float) -> bool:
        """Warm if the daily time fell in (since, now] and this replica claims it; whether it warmed."""
        zone: tzinfo = self._rules.zone
        if not due_between(self._warm.at, zone, since, now):
            return False
        if not await self._claim(int(now // 86400)):
            log.info("warm file: another replica warms today")
            return False
        questions = parse_questions(self._warm.questions, self._rules, now)
        queued = self._day2.warmer.submit(questions, self._day2.warm_credential(None))
        log.info("warm file: warming", extra={"questions": queued})
        return True

    async def _claim(self, day: int) -> bool:
        if self._redis is None:
            return True
        try:
            async with self._redis.translated(self._redis.timeout):
                return bool(await self._redis.client.set(f"{self._prefix}warm:{day}", b"1", nx=True, px=DAY_MS))
        except StoreError:
            return False  # no claim, no warm: never once per replica

    async def run(self) -> None:
        since = self._clock()
        while True:
            await asyncio.sleep(WARM_TICK_SECONDS)
            now = self._clock()
            try:
                await self.tick(since, now)
            except Exception:  # a bad question (the file changed meaning?) or a bug: logged, tried tomorrow
                log.exception("warm file: warming failed")
            since = now


def read_warm_file(path: str) -> WarmList:
    """The warm file (checked at start: a bad file stops the start-up with the line named)."""
    return parse_warm_file(Path(path).read_text())


async def start_day2(day2: Day2, stack: AsyncExitStack, schedule: WarmSchedule | None) -> None:
    """Start the background loops; each stops when `stack` closes."""
    for part in (day2.spending, day2.warmer, day2.ahead, day2.tokens):
        if part is not None:
            part.start()
            stack.push_async_callback(part.close)
    if schedule is not None:
        task = asyncio.get_running_loop().create_task(schedule.run())
        stack.callback(task.cancel)


def admin_token(s: Settings) -> frozenset[str]:
    """The tokens no team may have: the admin token (empty without one)."""
    return frozenset([s.admin_token.get_secret_value()]) if s.admin_token else frozenset()


async def open_day2(  # the composition root hands each part what it needs
    s: Settings,
    b: Backed,
    accounts: Accounts,
    local: MemoryLRU | None,
    series: SeriesStore | None,
    service: Service,
    auth: Authenticator,
    spending: Spending,
    tokens: TokensFile | None,
    rules: KeyRules,
    metrics: Metrics,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
    stack: AsyncExitStack,
) -> Day2:
    """Build the day-2 parts and start their loops (stopped when `stack` closes)."""
    prefix, timeout, redis = s.redis_key_prefix, s.redis_timeout, b.redis
    spare = Spare(accounts.payer, b.shared, b.local, clock)
    inventory = Inventory(
        local=local,
        series=series if isinstance(series, MemorySeriesStore) else None,
        redis=redis,
        notices=b.notices,
        prefix=prefix,
        timeout=timeout,
    )
    ahead = None
    if s.refresh_ahead:
        ahead = RefreshAhead(renew=service.renew, room=spare.room, metrics=metrics, clock=clock, redis=redis,
                             prefix=prefix, timeout=timeout)  # fmt: skip
    managed = authenticator_of_key(s)
    warmer = Warmer(service.answer, spare.room, metrics, sleep)
    day2 = Day2(spending, warmer, inventory, auth, managed, ahead, rules, clock, tokens)
    if tokens is not None:
        tokens.apply = lambda teams: day2.apply_teams(teams, metrics)
    schedule = None
    if s.warm_file is not None:
        schedule = WarmSchedule(read_warm_file(s.warm_file), day2, rules, clock, redis, prefix)
    await start_day2(day2, stack, schedule)
    return day2


def authenticator_of_key(s: Settings) -> Authenticator | None:
    """The managed key alone (every request resolves to it), or None in pass-through mode."""
    if s.api_key is None:
        return None
    workspaces = {digest: name for name, w in s.workspaces.items() for digest in w.key_sha256}
    return Authenticator(s.api_key.get_secret_value(), (), workspaces, allow_anonymous=True)
