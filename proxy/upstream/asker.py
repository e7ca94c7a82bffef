"""Asking Braze one question for one credential: what the exact path, windows and the label probe share.

A refusal Braze gave this credential a moment ago is answered again without a call; a call is paid by the
credential's budget and team (a pass-through key Braze has not yet accepted: by the probation pool first,
probation.py) and made with the canonical parameters; Braze's refusal becomes an entry passed on
as it is (never stored), and a 401/403 is remembered.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import tzinfo
from typing import Protocol

from proxy.budget.buckets import Payer
from proxy.budget.probation import Probation
from proxy.core.credentials import Credential
from proxy.core.endpoints import Routed
from proxy.core.entry import Entry
from proxy.core.outcomes import PassedOn
from proxy.obs.metrics import Metrics
from proxy.upstream.fetcher import Call, Fetcher, Reply
from proxy.upstream.refusals import Refusals


class Asked(Protocol):
    """A question to Braze: a series' (query.py) or an export's (export_query.py)."""

    @property
    def endpoint(self) -> Routed: ...
    @property
    def upstream_path(self) -> str: ...
    def upstream_params(self, zone: tzinfo) -> list[tuple[str, str]]: ...


class Asker:
    def __init__(
        self,
        *,
        fetcher: Fetcher,
        payer: Callable[[Credential, Routed], Payer],
        refusals: Refusals,
        zone: tzinfo,
        metrics: Metrics,
        clock: Callable[[], float],
        probation: Probation | None = None,
    ) -> None:
        self._probation = probation  # None: every key pays as its own team (managed mode has no probation anyway)
        self._accepted = metrics.probation_accepted
        self._fetcher = fetcher
        self._payer = payer
        self._refusals = refusals
        self._zone = zone
        self._remembered = metrics.remembered_refusals
        self._clock = clock

    def payer(self, credential: Credential, endpoint: Routed) -> Payer:
        """Who pays for a call of `credential` to `endpoint`: its workspace's budget group, its team."""
        return self._payer(credential, endpoint)

    async def remembered(self, credential: Credential, endpoint: Routed) -> PassedOn | None:
        """Braze's 401/403 to this credential a moment ago (it would answer the same), or None."""
        entry = await self._refusals.get(credential.scope, endpoint.name)
        if entry is None:
            return None
        self._remembered.inc()
        return PassedOn(entry)

    async def ask(self, question: Asked, credential: Credential, payer: Payer | None = None) -> Reply:
        """Braze's reply to `question` (canonical parameters), paid by `payer` (the credential's by default).
        Raises ProxyError when there is none (budget, timeout, 5xx after retries, malformed)."""
        payer = payer or self.payer(credential, question.endpoint)
        if self._probation is not None:
            payer = await self._probation.payer(credential, payer)
        call = Call(
            question.endpoint,
            question.upstream_params(self._zone),
            credential.upstream_key,
            payer,
            question.upstream_path,
            credential.managed,
        )
        reply = await self._fetcher.fetch(call)
        if reply.kind == "success" and self._probation is not None:
            await self._probation.succeeded(credential)
            if payer.probation is not None:
                self._accepted.inc()
        return reply

    def entry(self, reply: Reply) -> Entry:
        """Braze's answer as an entry that is never fresh (passed on as it is, never stored)."""
        now = self._clock()
        answer = reply.answer
        return Entry(answer.body, answer.status, answer.content_type, now, now, now, answer.link)

    async def refused(self, credential: Credential, endpoint: Routed, reply: Reply) -> PassedOn:
        """Braze's refusal, passed on; remembered for the credential when it is a 401/403."""
        entry = self.entry(reply)
        await self._refusals.remember(credential.scope, endpoint.name, entry)
        return PassedOn(entry)
