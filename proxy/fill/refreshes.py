"""What the exact path and windows do around a fill in this process: background refreshes (stale-while-
revalidate, one per key, counted by result), a stale answer when the fill fails (stale-if-error, counted), and
the answer that passes Braze's refusal on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import Counter

from proxy.core import lookup
from proxy.core.entry import Entry
from proxy.core.errors import ProxyError
from proxy.core.lookup import Answer
from proxy.core.outcomes import PassedOn
from proxy.fill.flights import Flights

log = logging.getLogger("braze_proxy.refresh")


class Refreshes:
    """Background runs of `flights`: a key with a fill under way already has its refresh."""

    def __init__(self, flights: Flights[Any], results: Counter) -> None:
        self._flights = flights
        self._results = results  # labelled by result: ok, error
        self._tasks: set[asyncio.Future[Any]] = set()

    def start(self, key: str, make: Callable[[], Awaitable[Any]]) -> None:
        if self._flights.running(key):
            return
        task = asyncio.ensure_future(self._flights.run(key, make))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        self._results.labels("error" if error is not None else "ok").inc()
        if error is not None and not isinstance(error, ProxyError):  # a bug: Braze's failures are counted above
            log.error("background refresh failed", exc_info=error)

    def tasks(self) -> list[asyncio.Future[Any]]:
        """Every fill still running, waited for or not (for shutdown)."""
        return [*self._flights.tasks(), *self._tasks]


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
