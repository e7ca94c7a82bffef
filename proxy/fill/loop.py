"""The request loop, written once: from what is held, serve it; serve it stale while one background refresh runs;
or fill it once in this process (the fill itself is one across replicas) and answer from what the fill made.

Exact questions (driver.py) and windows (windows/answerer.py) each hand it a `Plan`: how they fill, and how a
fill's value becomes the answer's entry. The decisions are pure (core/lookup.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from prometheus_client import Counter

from proxy.core import lookup
from proxy.core.entry import Entry
from proxy.core.errors import ProxyError
from proxy.core.lookup import Answer, Revalidate, Serve
from proxy.core.outcomes import Filled, Found, PassedOn
from proxy.fill.flights import Flights
from proxy.fill.refreshes import Refreshes
from proxy.obs.metrics import Metrics

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Kept:
    """A fill's entry, and whether a tier kept it for later requests."""

    entry: Entry
    stored: bool


@dataclass(frozen=True, slots=True)
class Plan(Generic[T]):
    """How one question is filled and answered."""

    flight: str  # one fill (and one background refresh) per flight in this process
    team: str  # whose budget decides: a budget refusal is handed only to callers of the same team
    fill: Callable[[], Awaitable[Filled[T]]]
    finish: Callable[[T], Awaitable[Kept | None]]  # a fill's value as the answer's entry; None: ask exactly
    detail: str | None = None  # the Cache-Status detail of a hit
    served: Callable[[Entry, float], None] | None = None  # told of every hit (metrics, the in-process tier)


class RequestLoop(Generic[T]):
    def __init__(self, metrics: Metrics, clock: Callable[[], float], revalidate_seconds: float) -> None:
        self._m = metrics
        self._clock = clock
        self._revalidate = revalidate_seconds
        self._flights: Flights[Filled[T]] = Flights()
        self._refreshes = Refreshes(self._flights, metrics.refreshes)

    async def answer(self, held: Entry | None, plan: Plan[T]) -> Answer | None:
        """The answer from `held` (what the cache holds, fresh or not) or from one fill; None when the plan's
        fill says the question must be asked exactly. Raises ProxyError when there is no answer."""
        now = self._clock()
        step = lookup.next_step(held, now, self._revalidate)
        if isinstance(step, Serve):
            if plan.served is not None:
                plan.served(step.entry, now)
            return lookup.hit(step.entry, now, detail=plan.detail)
        if isinstance(step, Revalidate):
            self.refresh(plan)
            self._m.stale_served.labels("revalidate").inc()
            return lookup.stale(step.entry, now, "stale-while-revalidate")
        try:
            filled, joined = await self._flights.run_for(plan.flight, plan.team, plan.fill)
        except ProxyError as error:
            return stale_if_error(step.stale, error, self._clock(), self._m.stale_served)
        if joined:
            self._m.coalesced.labels("process").inc()
        had_stale = step.stale is not None
        if isinstance(filled, PassedOn):
            return passed_on(filled, joined=joined, had_stale=had_stale)
        kept = await plan.finish(filled.value)
        if kept is None:
            return None
        collapsed = joined or isinstance(filled, Found)
        return lookup.forwarded(kept.entry, had_stale=had_stale, stored=kept.stored, collapsed=collapsed)

    def refresh(self, plan: Plan[T]) -> None:
        """One background refresh per flight (stale-while-revalidate); a fill under way already is one."""
        self._refreshes.start(plan.flight, plan.fill)

    def tasks(self) -> list[Any]:
        """The fills and refreshes still running (for shutdown)."""
        return self._refreshes.tasks()


def stale_if_error(stale: Entry | None, error: ProxyError, now: float, served: Counter) -> Answer:
    """The stale answer that stands in for `error` (counted in `served` by reason); raises `error` when none may."""
    kept = lookup.rescue(stale, error, now)
    if kept is None or error.stale_reason is None:
        raise error
    served.labels(error.stale_reason).inc()
    return lookup.stale(kept, now, "stale-if-error", error.upstream_status)


def passed_on(filled: PassedOn, *, joined: bool, had_stale: bool) -> Answer:
    """Braze's own answer, passed on and never stored (by this fill, a joined one, or a peer's)."""
    return lookup.forwarded(filled.entry, had_stale=had_stale, stored=False, collapsed=joined or filled.by_peer)
