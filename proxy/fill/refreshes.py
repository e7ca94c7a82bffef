"""Background refreshes (stale-while-revalidate): one per key in this process, counted by result."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import Counter

from proxy.core.errors import ProxyError
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
