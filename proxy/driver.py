"""The request driver: a question is answered from its window's buckets where they check out (windows/), else
as one exact question, each through the one request loop (fill/loop.py: serve, revalidate, or fill once).

The decisions are pure (core/); each resource has one owner that knows how it fails: the tiered cache
(cache/tiered.py), the fill across replicas (fill/cross_replica.py), the budget (budget/gate.py), Braze
(upstream/asker.py over upstream/fetcher.py). What is left here is the order of things.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from proxy.cache.redis import entry_tag
from proxy.cache.tiered import TieredCache
from proxy.core.credentials import Credential
from proxy.core.entry import Entry
from proxy.core.export_query import AnyQuestion, ExportQuestion
from proxy.core.freshness import FreshnessPolicy, decide
from proxy.core.lookup import Answer
from proxy.core.outcomes import Filled, PassedOn
from proxy.core.query import Question
from proxy.fill.cross_replica import Filler
from proxy.fill.loop import Kept, Plan, RequestLoop
from proxy.obs.metrics import Metrics
from proxy.upstream.asker import Asker
from proxy.windows.answerer import Windows

EXACT_MARK = ":exact"  # keys of answers for one instant (windows' fallback), never a bucket's own key


class Service:
    def __init__(
        self,
        *,
        cache: TieredCache,
        filler: Filler,
        asker: Asker,
        freshness: FreshnessPolicy,
        metrics: Metrics,
        clock: Callable[[], float],
        windows: Windows | None = None,
    ) -> None:
        self._cache, self._windows, self._filler, self._asker = cache, windows, filler, asker
        self._freshness, self._m, self._clock = freshness, metrics, clock
        self._loop: RequestLoop[Kept] = RequestLoop(metrics, clock, freshness.revalidate_seconds)

    def hit(self, key: str, now: float) -> Entry | None:
        """The fresh entry this process holds for `key`, or None. No I/O, no await: the hot path."""
        return self._cache.peek(key, now)

    async def answer(
        self, question: Question, credential: Credential, key: str, instant: datetime | None = None
    ) -> Answer:
        """Answer one validated question (`key`: its cache key; `instant`: the client's own `ending_at`, None for
        "now") from its buckets where they check out, else exactly; raises ProxyError when there is no answer."""
        if self._windows is not None and question.endpoint.flat:
            assembled = await self._windows.answer(question, credential, key)
            return assembled if assembled is not None else await self._exact(question, credential, instant)
        if self._windows is not None and not await self._windows.alignment.vouches(question, credential.scope):
            return await self._exact(question, credential, instant)  # our days may not be Braze's there
        return await self._cached(question, credential, key)

    async def answer_export(self, question: ExportQuestion, credential: Credential, key: str) -> Answer:
        """An export row's answer: kept by its class, or (per-user answers, keys) only coalesced, never kept."""
        return await self._cached(question, credential, key, keep=question.endpoint.stored)

    async def _exact(self, question: Question, credential: Credential, instant: datetime | None) -> Answer:
        """As asked: kept under its own instants (never "now"), its key marked `:exact` (never a bucket's own)."""
        at = instant if instant is not None else datetime.fromtimestamp(self._clock(), UTC)
        exact = replace(question, ending_at=at, starting_at=question.asked_start or question.starting_at)
        key = exact.cache_key(credential.scope) + EXACT_MARK
        return await self._cached(exact, credential, key, keep=instant is not None)

    async def _cached(self, question: AnyQuestion, credential: Credential, key: str, keep: bool = True) -> Answer:
        held = await self._cache.get(key, self._clock())
        answer = await self._loop.answer(held, self._plan(key, question, credential, keep))
        if answer is None:  # never: _as_kept always finishes
            raise RuntimeError("an exact question's fill did not finish")
        return answer

    def _plan(self, key: str, question: AnyQuestion, credential: Credential, keep: bool) -> Plan[Kept]:
        return Plan(key, credential.team, lambda: self._fill(key, question, credential, keep), _as_kept)

    async def _fill(self, key: str, question: AnyQuestion, credential: Credential, keep: bool = True) -> Filled[Kept]:
        return await self._filler.fill(
            entry_tag(key),
            produce=lambda: self._produce(key, question, credential, keep),
            recheck=lambda: self._recheck(key),
            team=credential.team,
        )

    async def _produce(self, key: str, question: AnyQuestion, credential: Credential, keep: bool) -> Kept | PassedOn:
        remembered = await self._asker.remembered(credential, question.endpoint)
        if remembered is not None:  # Braze refused this key a moment ago: it would again
            return remembered
        reply = await self._asker.ask(question, credential)
        if reply.kind != "success":
            return await self._asker.refused(credential, question.endpoint, reply)
        if not keep:
            return PassedOn(self._asker.entry(reply))
        now = self._clock()
        answer = reply.answer
        fresh = decide(question, datetime.fromtimestamp(now, UTC), self._freshness)
        entry = Entry(
            answer.body,
            answer.status,
            answer.content_type,
            now,
            now + fresh.ttl,
            now + fresh.ttl + fresh.stale,
            answer.link,
        )
        return Kept(entry, await self._cache.put(key, entry, now))

    async def _recheck(self, key: str) -> Kept | None:
        now = self._clock()
        entry = await self._cache.get(key, now)
        return Kept(entry, stored=False) if entry is not None and entry.is_fresh(now) else None

    async def renew(self, question: AnyQuestion, credential: Credential, key: str) -> None:
        """Fetch `question` again now and keep it, whatever is held (refresh ahead). Raises ProxyError."""
        if self._windows is not None and isinstance(question, Question) and question.endpoint.flat:
            return await self._windows.renew(question, credential)
        await self._produce(key, question, credential, keep=True)

    def tasks(self) -> list[Any]:
        """The fills and background refreshes still running, exact questions' and windows'."""
        return self._loop.tasks() + (self._windows.tasks() if self._windows is not None else [])

    async def close(self, timeout: float) -> None:
        """Cancel the fills still running and give them up to `timeout` to unwind (release their Redis locks)
        while the pools are still open. Called after the server's drain: what still runs is a fill nobody
        waits for, or a background refresh (worth less than a prompt exit)."""
        running = self.tasks()
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=timeout)


async def _as_kept(kept: Kept) -> Kept:
    return kept
