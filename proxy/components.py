"""The composition root: every component built from Settings, opened in order and closed in reverse. The only
place that knows which implementation goes with which setting. A part a setting turns off is None where it is
built (windows' alignment without windows, the Redis parts without Redis), and its users are told so by type.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import tzinfo
from types import MappingProxyType
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import aiohttp

from proxy import __version__
from proxy.budget.buckets import Budget, Payer
from proxy.budget.gate import UpstreamGate
from proxy.budget.memory import MemoryBudget
from proxy.budget.payers import Accounts
from proxy.budget.probation import Accepted, Probation
from proxy.budget.redis import RedisBudget
from proxy.budget.spending import Spending
from proxy.cache.memory import MemoryLRU, MemoryStore
from proxy.cache.redis import RedisStore
from proxy.cache.store import Store
from proxy.cache.tiered import TieredCache
from proxy.core.credentials import Authenticator
from proxy.core.endpoints import SERVED
from proxy.core.exports import EXPORTS
from proxy.core.freshness import FreshnessPolicy
from proxy.core.query import KeyRules
from proxy.day2.tokens_file import TokensFile
from proxy.day2.wiring import Day2, admin_token, open_day2
from proxy.driver import Service
from proxy.fill.cross_replica import Filler, Polling, Wakeups
from proxy.fill.lock import ClusterLock
from proxy.fill.wakeups import PubSubWakeups, channel_of
from proxy.obs.metrics import Metrics
from proxy.redis.connection import RedisConnection, open_connection
from proxy.redis.health import STATES, AlwaysUp, Health, RedisHealth, State
from proxy.redis.url import parse_redis_url
from proxy.settings.model import DEFAULT_WORKSPACE, Settings, Team
from proxy.upstream.asker import Asker
from proxy.upstream.client import UpstreamClient, close_session
from proxy.upstream.fetcher import Fetcher, RetryPolicy
from proxy.upstream.refusals import Refusals, SharedRefusals
from proxy.windows.alignment import Alignment
from proxy.windows.answerer import Windows
from proxy.windows.store import MemorySeriesStore, RedisSeriesStore, SeriesStore
from proxy.windows.verdicts import SharedVerdicts

Clock = Callable[[], float]
NO_ENVIRON: Mapping[str, str] = MappingProxyType({})  # no variable of the process environment
Sleep = Callable[[float], Awaitable[None]]
CLOSE_FILLS_SECONDS = 1.0
OnCall = Callable[[Payer], None]


@dataclass(frozen=True, slots=True)
class Components:
    service: Service
    auth: Authenticator
    rules: KeyRules
    cache: TieredCache
    health: Health
    store: str  # "memory" or "redis"
    ping: Callable[[], Awaitable[None]]  # the store's own check (readiness)
    fail_open: bool
    day2: Day2  # spending and rate headers, refresh ahead, warming, the tokens file, purge (day2.py)
    alignment: Alignment | None = None  # windows' label checks (readiness details); None with windows off


def freshness_policy(s: Settings) -> FreshnessPolicy:
    return FreshnessPolicy(
        zone=ZoneInfo(s.reporting_timezone),
        ttl_open_hour=s.ttl_open_hour,
        ttl_open_day=s.ttl_open_day,
        settle_window_hour=s.settle_window_hour,
        settle_window_day=s.settle_window_day,
        ttl_recent_hour=s.ttl_recent_hour,
        ttl_recent_day=s.ttl_recent_day,
        ttl_settled=s.ttl_settled,
        stale_seconds=s.stale_seconds,
        revalidate_seconds=s.stale_while_revalidate_seconds,
        ttl_lists=s.ttl_lists,
        ttl_details=s.ttl_details,
    )


def authenticator(s: Settings, teams: list[Team] | None = None, anonymous: bool | None = None) -> Authenticator:
    """The settings' authenticator (`teams`: those of the tokens file instead of CLIENT_TOKENS)."""
    api_key = s.api_key.get_secret_value() if s.api_key else None
    workspaces = {digest: name for name, w in s.workspaces.items() for digest in w.key_sha256}
    allow = s.allow_anonymous if anonymous is None else anonymous
    return Authenticator(api_key, s.teams() if teams is None else teams, workspaces, allow)


# Counters whose label values are known up front: created at zero so that rates and alerts see them at once.
KNOWN_LABELS: dict[str, list[tuple[str, ...]]] = {
    "stale_served": [(r,) for r in ("revalidate", "upstream_error", "timeout", "rate_limited", "unavailable")],
    "token_rejections": [(r,) for r in ("tokens", "team_share", "upstream_remaining", "upstream_429", "probation")],
    "coalesced": [("process",), ("cluster",)],
    "refreshes": [("ok",), ("error",)],
    "series_buckets": [("store",), ("fetched",)],
    "label_mismatches": [("day",), ("hour",)],
    "warm_questions": [("ok",), ("skipped",), ("error",)],
    "refresh_ahead": [("ok",), ("skipped",), ("peer",), ("error",)],
    "tokens_file_reloads": [("ok",), ("malformed",)],
    "admin_actions": [
        (a, r) for a in ("purge", "warm", "cache", "teams") for r in ("ok", "invalid", "unauthorized", "error")
    ],
}


def record_known_labels(metrics: Metrics, accounts: Accounts, auth: Authenticator, s: Settings) -> None:
    """The budgets' configured rates, and counters at zero for every label value there can be (teams,
    reasons, the in-process cache's store)."""
    budgets = accounts.budgets((*SERVED, *EXPORTS))
    for workspace, group, limit in budgets:
        metrics.budget_rate.labels(workspace, group).set(limit.per_hour / 3600.0)
    pools = [(workspace, group) for workspace, group, _ in budgets]  # the probation pools: zero in managed mode
    metrics.initialise({"probation_grants": pools, "probation_refusals": pools})
    teams = [(label,) for label in auth.team_labels()]
    for label, weight in auth.team_weights():
        metrics.team_weight.labels(label).set(weight)
    metrics.initialise({name: teams for name in ("team_requests", "team_hits", "team_upstream_calls", "team_refusals")})
    metrics.initialise(KNOWN_LABELS | {"cache_evictions": [("l1",) if s.redis_url else ("memory",)]})
    # Every routed endpoint, and every budget it can spend, from the start (docs/metrics.md says so).
    workspaces = [DEFAULT_WORKSPACE, *sorted(accounts.workspaces)]
    managed = auth.managed_workspace()
    metrics.initialise(
        {
            "requests": [(e.name, cache, "200") for e in SERVED for cache in ("hit", "miss")],
            "upstream_requests": [(e.name, w, accounts.group_of(e), "200") for e in SERVED for w in workspaces],
            "upstream_retries": [(e.name,) for e in SERVED],
            "managed_key_refusals": [(managed,)] if managed is not None else [],
        }
    )


def redis_state_recorder(metrics: Metrics) -> Callable[[State], None]:
    def record(state: State) -> None:
        metrics.redis_up.set(0 if state == "down" else 1)
        for name in STATES:
            metrics.redis_state.labels(name).set(1 if name == state else 0)

    return record


@dataclass(frozen=True, slots=True)
class Backing:
    """What the cache, the locks and the budget live in: Redis (shared by the replicas) or this process."""

    store: Store
    l1: MemoryLRU | None
    health: Health
    shared: Budget  # the same object as `local` without Redis
    local: MemoryBudget
    lock: ClusterLock | None
    refusals: Refusals
    wakeups: Wakeups
    redis: RedisConnection | None = None  # the process's one Redis connection (any topology), None without Redis
    notices: PubSubWakeups | None = None  # the fills' channel: wake-ups, and notices to every replica (purges)


async def open_backing(s: Settings, metrics: Metrics, workers: int, clock: Clock, stack: AsyncExitStack) -> Backing:
    # An in-process bucket holds this process's share: of the whole budget without Redis (one share per
    # --workers process), of a replica's share while Redis is down (replicas x workers shares).
    lru = MemoryLRU(s.memory_max_entries, memory_share(s))
    wait = s.rate_limit_max_wait_seconds
    if s.redis_url is None:
        local = MemoryBudget(workers, wait, clock)
        redis_state_recorder(metrics)("up")
        return Backing(MemoryStore(lru, clock), None, AlwaysUp(), local, local, None, Refusals(clock=clock), Polling())
    conn = await open_redis(s)
    store = RedisStore(conn, s.redis_key_prefix, s.redis_timeout)
    stack.push_async_callback(store.close)
    health = RedisHealth(store.ping, store.probe_write, redis_state_recorder(metrics), reconnect=store.reconnect)
    await health.start()
    stack.push_async_callback(health.close)
    notices = PubSubWakeups(conn, channel_of(s.redis_key_prefix))
    wakeups = notices if s.redis_fill_wakeups else Polling()
    return Backing(
        store=store,
        l1=lru if s.l1_enabled else None,
        health=health,
        shared=RedisBudget(conn, s.redis_key_prefix, wait, s.redis_timeout),
        local=MemoryBudget(s.expected_replicas * workers, wait, clock),
        lock=ClusterLock(conn, s.redis_timeout),
        refusals=Refusals(clock=clock, shared=SharedRefusals(conn, s.redis_key_prefix, s.redis_timeout, health)),
        wakeups=wakeups,
        redis=conn,
        notices=notices,
    )


async def open_redis(s: Settings) -> RedisConnection:
    """The process's Redis connection; an unreachable Redis (any topology) leaves it degraded, never raises."""
    assert s.redis_url is not None  # the caller checked
    target = parse_redis_url(s.redis_url)  # validated by Settings
    return await open_connection(
        target, timeout=s.redis_timeout, max_connections=s.redis_max_connections, ca_file=s.redis_tls_ca_file
    )


def open_windows(
    s: Settings,
    b: Backing,
    cache: TieredCache,
    filler: Filler,
    asker: Asker,
    zone: tzinfo,
    metrics: Metrics,
    clock: Clock,
) -> tuple[Windows | None, Alignment | None]:
    """Windows answered from buckets (and their label checks), unless turned off."""
    if not s.windows:
        return None, None
    shared = SharedVerdicts(b.redis, s.redis_key_prefix, s.redis_timeout, b.health) if b.redis else None
    alignment = Alignment(asker=asker, zone=zone, metrics=metrics, clock=clock, shared=shared)
    windows = Windows(
        store=series_store(s, b.redis),
        health=b.health,
        filler=filler,
        asker=asker,
        alignment=alignment,
        freshness=freshness_policy(s),
        zone=zone,
        widen=s.widen_fetches,
        answers=cache,
        metrics=metrics,
        clock=clock,
    )
    return windows, alignment


def memory_share(s: Settings) -> int:
    """Bytes for each in-process cache: MEMORY_MAX_BYTES bounds them together, so without Redis the entries and
    the windows' buckets (when on) have half each; with Redis the L1 is the only one."""
    return s.memory_max_bytes // 2 if s.redis_url is None and s.windows else s.memory_max_bytes


def series_store(s: Settings, redis: RedisConnection | None) -> SeriesStore:
    """Where windows' buckets live: beside the entries (Redis, shared), or in this process."""
    if redis is None:
        return MemorySeriesStore(memory_share(s))
    return RedisSeriesStore(redis, s.redis_key_prefix, s.redis_timeout)


def egress_proxy(s: Settings, environ: Mapping[str, str]) -> str | None:
    """The proxy the calls to Braze go through: the setting, else HTTPS_PROXY / HTTP_PROXY (either case) for
    Braze's scheme unless NO_PROXY covers its host (its names, domain suffixes or `*`)."""
    if s.upstream_proxy is not None:
        return s.upstream_proxy
    url = urlsplit(s.upstream_url)
    scheme = url.scheme
    found = environ.get(f"{scheme}_proxy") or environ.get(f"{scheme.upper()}_PROXY")
    if not found:
        return None
    host = (url.hostname or "").lower()
    for entry in (environ.get("no_proxy") or environ.get("NO_PROXY") or "").split(","):
        entry = entry.strip().lower().lstrip(".")
        if entry == "*" or (entry and (host == entry or host.endswith("." + entry))):
            return None
    return found


async def open_upstream(s: Settings, stack: AsyncExitStack, environ: Mapping[str, str]) -> UpstreamClient:
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=s.upstream_max_connections, ttl_dns_cache=300),
        auto_decompress=True,
        trust_env=False,  # never read ~/.netrc; the egress proxy is chosen below, from the settings or the env
    )
    stack.push_async_callback(close_session, session)
    return UpstreamClient(
        session,
        s.upstream_url,
        timeout=s.upstream_timeout,
        connect_timeout=s.upstream_connect_timeout,
        max_body_bytes=s.upstream_max_body_bytes,
        user_agent=f"braze-proxy/{__version__}",
        proxy=egress_proxy(s, environ),
    )


def open_fetcher(
    s: Settings, b: Backing, upstream: UpstreamClient, metrics: Metrics, clock: Clock, sleep: Sleep, on_call: OnCall
) -> Fetcher:
    """The Braze calls: through the gate (the shared budget, or this replica's share while Redis is away)."""
    gate = UpstreamGate(
        shared=b.shared,
        local=b.local,
        health=b.health,
        fail_open=s.redis_outage_policy == "open",
        metrics=metrics,
        clock=clock,
        sleep=sleep,
    )
    return Fetcher(
        upstream=upstream,
        gate=gate,
        retry=RetryPolicy(retries=s.upstream_retries, budget=s.upstream_retry_budget_seconds),
        metrics=metrics,
        clock=clock,
        sleep=sleep,
        on_call=on_call,
    )


@asynccontextmanager
async def open_components(
    settings: Settings,
    metrics: Metrics,
    *,
    workers: int = 1,
    clock: Clock = time.time,
    sleep: Sleep = asyncio.sleep,
    environ: Mapping[str, str] = NO_ENVIRON,
) -> AsyncIterator[Components]:
    """Build and open everything the request path needs; close it all on exit. `environ`: the process's
    environment as the CLI read it at start-up (the standard egress-proxy variables)."""
    s = settings
    async with AsyncExitStack() as stack:
        accounts = Accounts.from_settings(s)
        tokens = TokensFile(s.client_tokens_file, metrics, admin_token(s)) if s.client_tokens_file else None
        auth = authenticator(s, tokens.load() if tokens else None)
        record_known_labels(metrics, accounts, auth, s)
        upstream = await open_upstream(s, stack, environ)
        b = await open_backing(s, metrics, workers, clock, stack)
        cache = TieredCache(store=b.store, l1=b.l1, health=b.health, metrics=metrics)
        spending = Spending(accounts=accounts, auth=auth, metrics=metrics, clock=clock, redis=b.redis,
                            prefix=s.redis_key_prefix, timeout=s.redis_timeout)  # fmt: skip
        fail_open = s.redis_outage_policy == "open"
        fetcher = open_fetcher(s, b, upstream, metrics, clock, sleep, on_call=spending.note)
        filler = Filler(
            lock=b.lock,
            health=b.health,
            wakeups=b.wakeups,
            wait_seconds=s.fill_seconds,
            key_prefix=s.redis_key_prefix,
            on_peer=metrics.coalesced.labels("cluster").inc,
        )
        rules = KeyRules(ZoneInfo(s.reporting_timezone))
        accepted = Accepted(clock=clock, conn=b.redis, prefix=s.redis_key_prefix, timeout=s.redis_timeout,
                            health=b.health)  # fmt: skip
        asker = Asker(
            fetcher=fetcher, payer=accounts.payer, refusals=b.refusals, zone=rules.zone, metrics=metrics, clock=clock,
            probation=Probation(s.probation_share, accepted),
        )  # fmt: skip
        windows, alignment = open_windows(s, b, cache, filler, asker, rules.zone, metrics, clock)
        service = Service(
            cache=cache,
            filler=filler,
            asker=asker,
            freshness=freshness_policy(s),
            metrics=metrics,
            clock=clock,
            windows=windows,
        )
        stack.push_async_callback(service.close, CLOSE_FILLS_SECONDS)  # before the pools close
        series = windows.store if windows else None
        day2 = await open_day2(s, b, accounts, cache.local, series, service, auth, spending, tokens, rules, metrics,
                               clock, sleep, stack)  # fmt: skip
        yield Components(
            service=service,
            auth=auth,
            rules=rules,
            cache=cache,
            health=b.health,
            store=b.store.name,
            ping=b.store.ping,
            fail_open=fail_open,
            day2=day2,
            alignment=alignment,
        )
