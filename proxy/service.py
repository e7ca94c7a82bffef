"""The request path: question -> cache -> coalesce -> budget -> upstream -> store -> answer.

A thin shell around the pure decisions (query.py, freshness.py, bucket.py): it does the I/O they call
for and records metrics from their results. Redis failures degrade (L1/in-process cache, in-process
budget) instead of failing requests; upstream failures are answered stale where an entry allows.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from proxy.bucket import block_after_429
from proxy.budget import Budget, MemoryBudget
from proxy.cache import MemoryLRU, MemoryStore, Store
from proxy.coalesce import ClusterLock, Flights
from proxy.credentials import Credential
from proxy.entry import Entry
from proxy.errors import (
    ProxyError,
    RateLimited,
    RelayedError,
    StoreError,
    Unavailable,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
)
from proxy.freshness import FreshnessPolicy, decide
from proxy.health import RedisHealth
from proxy.metrics import Metrics
from proxy.query import Question
from proxy.upstream import UpstreamAnswer, UpstreamClient

log = logging.getLogger("braze_proxy.service")

JSON = "application/json"
FAILURE_MARKER_SECONDS = 3.0  # how long other replicas' waiters get a failed fill's answer
# The bucket's refusal reason -> the rejections metric label: our own bucket, Braze's remaining count, a 429 block.
REJECTION_REASONS = {"tokens": "tokens", "braze": "upstream_remaining", "blocked": "upstream_429"}


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    zone: tzinfo
    swr_seconds: float  # past freshness, serve stale and refresh in the background for this long
    retries: int
    retry_budget: float
    coalesce_wait: float
    fail_open: bool


@dataclass(frozen=True, slots=True)
class Answer:
    """What the client gets. `cache` is the metric label, `cache_status` the RFC 9211 header."""

    status: int
    body: bytes
    content_type: str
    cache: str
    cache_status: str
    age: int | None = None
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Filled:
    """The end of one fill: the answer as an entry, whether it was stored, whether a peer made it."""

    entry: Entry
    stored: bool
    by_peer: bool = False


def stale_reason(error: ProxyError) -> str | None:
    """Why an error may be answered from a stale entry (the metric label), or None if it may not."""
    if isinstance(error, UpstreamTimeout):
        return "timeout"
    if isinstance(error, UpstreamRateLimited | RateLimited):
        return "rate_limited"
    if isinstance(error, RelayedError):
        return {429: "rate_limited", 504: "timeout"}.get(error.status, "upstream_error")
    if isinstance(error, UpstreamError):
        return "upstream_error"
    if isinstance(error, Unavailable):
        return "unavailable"
    return None


def is_passed_on(status: int) -> bool:
    """Whether a peer's marker holds Braze's own answer (passed on, never stored) rather than an error.

    A fill ends in an error only as a 429 (the budget, or Braze's) or a 5xx (502, 503, 504): Braze's
    5xx answers are retried and then become 502, its 429s become ours.
    """
    return status != 429 and status < 500


def error_cache_status(error: ProxyError) -> str:
    """The Cache-Status of an error answer."""
    if isinstance(error, UpstreamError) and error.upstream_status is not None:
        return f"braze-proxy; fwd=miss; fwd-status={error.upstream_status}"
    if isinstance(error, UpstreamError):
        return "braze-proxy; fwd=miss; detail=" + ("timeout" if isinstance(error, UpstreamTimeout) else "error")
    if isinstance(error, RateLimited):
        return "braze-proxy; fwd=miss; detail=budget-spent"
    if isinstance(error, Unavailable):
        return "braze-proxy; fwd=miss; detail=unavailable"
    return "braze-proxy; fwd=bypass"


class Service:
    def __init__(
        self,
        *,
        store: Store,
        l1: MemoryLRU | None,
        budget: Budget,
        fallback_budget: MemoryBudget,
        lock: ClusterLock | None,
        health: RedisHealth | None,
        upstream: UpstreamClient,
        policy: FreshnessPolicy,
        metrics: Metrics,
        config: ServiceConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._l1 = l1
        self._budget = budget
        self._fallback = fallback_budget
        self._lock = lock
        self._health = health
        self._upstream = upstream
        self._policy = policy
        self._m = metrics
        self._cfg = config
        self._clock = clock
        self._flights: Flights[Filled] = Flights()
        self._background: set[asyncio.Task[tuple[Filled, bool]]] = set()
        self._streak_429 = 0
        # Pre-bound metric children: the hit path does no label lookups.
        self._l1_hit = metrics.batched_counter(metrics.cache_ops.labels("l1", "get", "hit"))
        self._l1_miss = metrics.cache_ops.labels("l1", "get", "miss")
        self._store_get = {
            result: metrics.cache_ops.labels(store.name, "get", result) for result in ("hit", "miss", "error")
        }
        self._store_set = {result: metrics.cache_ops.labels(store.name, "set", result) for result in ("ok", "error")}
        self._store_get_time = metrics.cache_op_duration.labels(store.name, "get")
        # What `hit` reads without awaiting: the L1, or the memory store's own LRU when it is the store.
        self._local = l1 if l1 is not None else (store.lru if isinstance(store, MemoryStore) else None)
        self._local_hit = self._l1_hit if l1 is not None else metrics.batched_counter(self._store_get["hit"])
        self._store_set_time = metrics.cache_op_duration.labels(store.name, "set")

    # --- the request path -------------------------------------------------------------------------------

    def hit(self, key: str, now: float) -> Entry | None:
        """The fresh entry this process holds for `key` (L1, or the memory store), or None. No I/O, no await.

        The hot path: a None sends the caller to `answer`, which looks further (Redis) and fills.
        """
        local = self._local
        if local is None:
            return None
        entry = local.get(key, now)
        if entry is None or now >= entry.fresh_until:
            return None
        self._local_hit.inc()
        return entry

    async def answer(self, question: Question, credential: Credential, key: str | None = None) -> Answer:
        """Answer one validated question; raises ProxyError when there is no answer to give.

        `key` is `question.cache_key(credential.scope)`, when the caller has it already.
        """
        if key is None:
            key = question.cache_key(credential.scope)
        now = self._clock()
        entry = await self._lookup(key, now)
        if entry is not None:
            if entry.is_fresh(now):
                return Answer(
                    entry.status, entry.body, entry.content_type, "hit",
                    f"braze-proxy; hit; ttl={entry.ttl(now)}", entry.age(now),
                )  # fmt: skip
            if now < entry.fresh_until + self._cfg.swr_seconds:
                self._refresh_in_background(key, question, credential)
                self._m.stale_served.labels("revalidate").inc()
                return self._stale(entry, now, "stale-while-revalidate", None)
        try:
            filled, joined = await self._flights.run(key, lambda: self._fill(key, question, credential))
        except ProxyError as error:
            reason = stale_reason(error)
            now = self._clock()
            if entry is None or reason is None or not entry.is_usable(now):
                raise
            self._m.stale_served.labels(reason).inc()
            return self._stale(entry, now, "stale-if-error", error)
        if joined:
            self._m.coalesced.labels("process").inc()
        forwarded = "stale" if entry is not None else "miss"
        e = filled.entry
        if joined or filled.by_peer:
            return Answer(e.status, e.body, e.content_type, "collapsed",
                          f"braze-proxy; fwd={forwarded}; fwd-status={e.status}; collapsed")  # fmt: skip
        suffix = "; stored" if filled.stored else ""
        return Answer(e.status, e.body, e.content_type, "miss",
                      f"braze-proxy; fwd={forwarded}; fwd-status={e.status}{suffix}")  # fmt: skip

    def _stale(self, entry: Entry, now: float, detail: str, error: ProxyError | None) -> Answer:
        status = ""
        if isinstance(error, UpstreamError) and error.upstream_status is not None:
            status = f"; fwd-status={error.upstream_status}"
        ttl = int(entry.fresh_until - now)
        return Answer(
            entry.status, entry.body, entry.content_type, "stale",
            f"braze-proxy; fwd=stale{status}; ttl={ttl}; detail={detail}", entry.age(now),
        )  # fmt: skip

    # --- cache --------------------------------------------------------------------------------------------

    def _redis_up(self) -> bool:
        return self._health is None or self._health.up

    def _redis_failed(self, error: StoreError) -> None:
        if self._health is not None:
            self._health.failed(error)

    async def _lookup(self, key: str, now: float) -> Entry | None:
        """L1 first (fresh only), then the store; the store's failure falls back to what L1 still holds."""
        kept: Entry | None = None
        if self._l1 is not None:
            kept = self._l1.get(key, now)
            if kept is not None and kept.is_fresh(now):
                self._l1_hit.inc()
                return kept
            self._l1_miss.inc()
        if not self._redis_up():
            return kept
        started = time.perf_counter()
        try:
            entry = await self._store.get(key)
        except StoreError as error:
            self._store_get["error"].inc()
            self._redis_failed(error)
            return kept
        self._store_get_time.observe(time.perf_counter() - started)
        self._store_get["hit" if entry is not None else "miss"].inc()
        if entry is None:
            return kept
        if self._l1 is not None:
            self._l1.put(key, entry, entry.stale_until, now)
        return entry

    async def _save(self, key: str, entry: Entry) -> bool:
        now = self._clock()
        if self._l1 is not None:
            self._l1.put(key, entry, entry.stale_until, now)
        if not self._redis_up():
            return self._l1 is not None
        started = time.perf_counter()
        try:
            await self._store.set(key, entry, now)
        except StoreError as error:
            self._store_set["error"].inc()
            self._redis_failed(error)
            return self._l1 is not None
        self._store_set_time.observe(time.perf_counter() - started)
        self._store_set["ok"].inc()
        return True

    # --- one fill per key -----------------------------------------------------------------------------------

    def _refresh_in_background(self, key: str, question: Question, credential: Credential) -> None:
        if self._flights.running(key):
            return  # the fill under way stores the new entry: one refresh (and one metric count) per key
        task = asyncio.ensure_future(self._flights.run(key, lambda: self._fill(key, question, credential)))
        self._background.add(task)
        task.add_done_callback(self._refreshed)

    def _refreshed(self, task: asyncio.Task[tuple[Filled, bool]]) -> None:
        self._background.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        self._m.refreshes.labels("error" if error is not None else "ok").inc()
        if error is not None and not isinstance(error, ProxyError):
            log.error("background refresh failed", exc_info=error)

    async def _fill(self, key: str, question: Question, credential: Credential) -> Filled:
        token: str | None = None
        if self._lock is not None and self._redis_up():
            try:
                token = await self._lock.acquire(key)
                if token is None:
                    waited = await self._wait_for_peer(key)
                    if isinstance(waited, Filled):
                        return waited
                    token = waited
            except StoreError as error:
                self._redis_failed(error)
                token = None
        try:
            answer = await self._fetch(question, credential)
            now = self._clock()
            if answer.kind() == "success":
                fresh = decide(question, datetime.fromtimestamp(now, UTC), self._policy)
                entry = Entry(answer.body, answer.status, answer.content_type, now,
                              now + fresh.ttl, now + fresh.ttl + fresh.stale)  # fmt: skip
                return Filled(entry, await self._save(key, entry))
            # Passed on as Braze sent it, never stored; waiting replicas get the same answer, not a call each.
            passed = Entry(answer.body, answer.status, answer.content_type, now, now, now)
            if token is not None:
                await self._post_marker(key, passed, FAILURE_MARKER_SECONDS)
            return Filled(passed, False)
        except ProxyError as error:
            if token is not None:
                await self._post_failure(key, error)
            raise
        finally:
            if token is not None and self._lock is not None:
                try:
                    await self._lock.release(key, token)
                except StoreError as error:
                    self._redis_failed(error)

    async def _post_failure(self, key: str, error: ProxyError) -> None:
        now = self._clock()
        retry_after = getattr(error, "retry_after", None)
        until = now + (retry_after if retry_after else 0.0)
        marker = Entry(error.body(), error.status, JSON, now, until, until)
        await self._post_marker(key, marker, max(FAILURE_MARKER_SECONDS, until - now))

    async def _post_marker(self, key: str, marker: Entry, seconds: float) -> None:
        """Tell the replicas waiting on this fill how it ended (an error, or an answer not worth storing)."""
        assert self._lock is not None
        try:
            await self._lock.post_failure(key, marker, seconds)
        except StoreError as error:
            self._redis_failed(error)

    async def _wait_for_peer(self, key: str) -> Filled | str | None:
        """Wait (bounded) for the replica holding `key`'s lock: its entry, its failure, or the lock itself."""
        assert self._lock is not None
        deadline = self._clock() + self._cfg.coalesce_wait
        delay = 0.005
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
            entry, locked, failure = await self._lock.peek(key)
            now = self._clock()
            if entry is not None and entry.is_fresh(now):
                self._m.coalesced.labels("cluster").inc()
                if self._l1 is not None:
                    self._l1.put(key, entry, entry.stale_until, now)
                return Filled(entry, stored=False, by_peer=True)
            if failure is not None:
                self._m.coalesced.labels("cluster").inc()
                if is_passed_on(failure.status):
                    return Filled(failure, stored=False, by_peer=True)
                retry = failure.fresh_until - now if failure.status == 429 else None
                raise RelayedError(failure.status, failure.body, retry)
            if not locked:
                token = await self._lock.acquire(key)
                if token is not None:
                    return token
            if now >= deadline:
                raise UpstreamTimeout("Gateway timeout: another replica's call to the Braze API took too long")

    # --- upstream, within budget ------------------------------------------------------------------------------

    async def _fetch(self, question: Question, credential: Credential) -> UpstreamAnswer:
        """Call Braze, paying a token per attempt; retry 5xx and connection errors, bounded, with jitter."""
        path = question.endpoint.path
        params = question.upstream_params(self._cfg.zone)
        started = self._clock()
        attempt = 0
        while True:
            await self._take_token(credential.scope)
            t0 = time.perf_counter()
            try:
                answer = await self._upstream.fetch(path, params, credential.upstream_key)
            except UpstreamTimeout:
                self._record_upstream(question, "timeout", t0)
                raise
            except UpstreamError as error:
                self._record_upstream(question, "error", t0)
                # Only a failure before any answer is worth another attempt (an oversized answer is not).
                if error.upstream_status is not None or not await self._may_retry(question, attempt, started):
                    raise
                attempt += 1
                continue
            self._record_upstream(question, str(answer.status), t0)
            log.info("upstream call", extra={"team": credential.team, "status": answer.status,
                                             "endpoint": question.endpoint.name})  # fmt: skip
            await self._learn(credential.scope, answer)
            if answer.status == 429:
                raise UpstreamRateLimited(self._blocked_for(answer))
            self._streak_429 = 0
            if answer.status >= 500:
                if await self._may_retry(question, attempt, started):
                    attempt += 1
                    continue
                raise UpstreamError(upstream_status=answer.status)
            if answer.kind() == "malformed":
                raise UpstreamError("Bad gateway: the Braze API sent a malformed answer", upstream_status=answer.status)
            return answer

    def _record_upstream(self, question: Question, code: str, started: float) -> None:
        name = question.endpoint.name
        self._m.upstream_requests.labels(name, code).inc()
        self._m.upstream_duration.labels(name).observe(time.perf_counter() - started)

    async def _may_retry(self, question: Question, attempt: int, started: float) -> bool:
        """Sleep a jittered exponential backoff if another attempt fits the count and time budget."""
        if attempt >= self._cfg.retries:
            return False
        backoff = random.uniform(0.5, 1.0) * min(2.0, 0.1 * 2**attempt)
        if self._clock() + backoff - started > self._cfg.retry_budget:
            return False
        self._m.upstream_retries.labels(question.endpoint.name).inc()
        await asyncio.sleep(backoff)
        return True

    async def _take_token(self, scope: str) -> None:
        unchecked = Unavailable("Service unavailable: the shared upstream budget cannot be checked")
        if not self._redis_up() and not self._cfg.fail_open:
            raise unchecked  # fail-closed: no upstream call while the shared budget is out of reach
        budget: Budget = self._budget if self._redis_up() else self._fallback
        try:
            decision = await budget.reserve(scope)
        except StoreError as error:
            self._redis_failed(error)
            if not self._cfg.fail_open:
                raise unchecked from None
            decision = await self._fallback.reserve(scope)
        self._m.tokens.set(max(0.0, decision.tokens))
        if not decision.allowed:
            self._m.token_rejections.labels(REJECTION_REASONS.get(decision.reason, "tokens")).inc()
            raise RateLimited(decision.wait)
        if decision.wait > 0:
            self._m.token_waits.inc()
            self._m.token_wait_seconds.observe(decision.wait)
            await asyncio.sleep(decision.wait)

    async def _learn(self, scope: str, answer: UpstreamAnswer) -> None:
        """Fold Braze's rate-limit headers (and a 429) into the shared budget."""
        rate = answer.rate
        if rate.remaining is not None:
            self._m.upstream_rate_remaining.set(rate.remaining)
        if rate.limit is not None:
            self._m.upstream_rate_limit.set(rate.limit)
        if rate.reset is not None:
            self._m.upstream_rate_reset.set(rate.reset)
        blocked = None
        if answer.status == 429:
            self._streak_429 += 1
            blocked = block_after_429(rate.reset, rate.retry_after, self._streak_429, self._clock())
        if rate.remaining is None and blocked is None:
            return
        remaining = float(rate.remaining) if rate.remaining is not None else None
        try:
            if self._redis_up():
                await self._budget.observe(scope, remaining, rate.reset, blocked)
        except StoreError as error:
            self._redis_failed(error)
        await self._fallback.observe(scope, remaining, rate.reset, blocked)

    def _blocked_for(self, answer: UpstreamAnswer) -> float:
        now = self._clock()
        return max(1.0, block_after_429(answer.rate.reset, answer.rate.retry_after, self._streak_429, now) - now)

    # --- lifecycle ---------------------------------------------------------------------------------------------

    async def close(self, timeout: float) -> None:
        """Cancel the fills still running and give them up to `timeout` to unwind (release their Redis locks)
        while the pools are still open.

        Called after the server's drain: every handler has answered or been cancelled by then, so what still
        runs is a fill nobody waits for, or a background refresh (worth less than a prompt exit).
        """
        running = [*self._flights.tasks(), *self._background]
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=timeout)
